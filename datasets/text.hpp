#pragma once
/// \file text.hpp
/// Text data for character-level language models (nanoGPT's shakespeare_char, done in C++): load
/// a UTF-8 file or folder, build a character vocabulary, encode it to int64 ids, and cut random
/// fixed-length windows out of a 90 / 10 train / validation split.
///
///     TextCorpus corpus = load_text_corpus("/usr/share/games/fortunes");  // Debian's fortunes
///     int64_t vocab = corpus.tokenizer.vocab_size();                       // 113
///     Generator gen(1337);
///     Batch b = corpus.data.get_batch(TextSplit::train, 12, 64, gen);      // x, y: int64 [12, 64]
///     std::string s = corpus.tokenizer.decode(b.x);                        // back to UTF-8
///     corpus.tokenizer.save(out + "/vocab.json");                          // beside the weights
///     // resuming or sampling later:
///     CharTokenizer saved = CharTokenizer::load(out + "/vocab.json");
///     saved.check_matches(corpus.tokenizer, "resuming from " + out);       // throws on a mismatch
///
/// Characters are Unicode code points decoded strictly (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF); bytes are never reinterpreted, a byte-order mark is an ordinary
/// character and "\r\n" stays two characters.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "datasets/dataset.hpp"

namespace tapegrad::datasets {

// ---------------------------------------------------------------------------------------------
// UTF-8

/// Decodes UTF-8 `bytes` into code points. Throws DatasetError "<source>: invalid UTF-8 at byte
/// offset <n>: <reason>" where n is the offset of the first byte of the bad character and the
/// reason is one of: a continuation byte where a character should start, a byte that never occurs
/// in UTF-8 (0xF5..0xFF), a lead byte not followed by enough continuation bytes ("bad
/// continuation byte"), a sequence cut off by the end of the text ("truncated"), an overlong form,
/// a surrogate (U+D800..U+DFFF) or a code point above U+10FFFF.
std::vector<char32_t> utf8_decode(std::string_view bytes, std::string_view source = "text");

/// Appends the UTF-8 form of `c` to `out`. Throws std::invalid_argument for a surrogate or a
/// value above U+10FFFF.
void utf8_append(std::string& out, char32_t c);

/// A character for messages: "'é' (U+00E9)" when printable, "U+000A" for a control character.
std::string describe_char(char32_t c);

// ---------------------------------------------------------------------------------------------
// Loading text

/// Where Debian's `fortunes` package installs its cookie files (scripts/fetch_text.sh installs it).
inline constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

/// How a folder is read by text_files / load_text.
struct TextLoadOptions {
  /// File name endings that are skipped (compared to the end of the name, case-sensitive). The
  /// default skips ".dat": the binary indexes that strfile writes beside each fortune file, so a
  /// fortunes folder (Debian's, or any fortune-mod one) loads as its plain files only.
  std::vector<std::string> exclude_extensions = {".dat"};
  /// Refuse more bytes than this in all (checked from the file sizes, before anything is read).
  uint64_t max_bytes = uint64_t{1} << 30;
};

/// The files a folder contributes, in the order they are concatenated: every regular file directly
/// in `dir` (not in sub-folders), sorted by name byte by byte, except symbolic links (fortunes'
/// "*.u8" links repeat their targets), other non-regular entries and names ending in one of
/// `options.exclude_extensions`. Throws DatasetError when `dir` is not a readable folder or holds
/// no such file.
std::vector<std::string> text_files(const std::string& dir, const TextLoadOptions& options = {});

/// The text of `path`: a UTF-8 file, or a folder whose text_files are concatenated in order (no
/// separator added). Every file is checked to be valid UTF-8; DatasetError names the file and the
/// byte offset in it (see utf8_decode), or the sizes when the total exceeds options.max_bytes. A
/// path given directly may be a symbolic link to a file.
std::string load_text(const std::string& path, const TextLoadOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Character tokenizer

/// A character-level vocabulary: id i is the i-th character of chars(). Built from a text it is
/// the sorted distinct code points of the text (nanoGPT's `sorted(list(set(data)))`).
class CharTokenizer {
 public:
  /// An empty vocabulary.
  CharTokenizer() = default;
  /// The vocabulary `chars`, ids in that order. Throws std::invalid_argument for a repeated
  /// character (naming it and both ids) or one that is not a Unicode scalar value.
  explicit CharTokenizer(std::vector<char32_t> chars);
  /// The sorted distinct code points of UTF-8 `text`; invalid UTF-8 throws DatasetError naming
  /// `source` and the byte offset.
  static CharTokenizer from_text(std::string_view text, std::string_view source = "text");

  /// Number of characters (the embedding table's rows).
  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()); }
  /// The characters, by id.
  const std::vector<char32_t>& chars() const { return chars_; }
  /// True when `c` has an id.
  bool contains(char32_t c) const;
  /// The id of `c`; std::invalid_argument naming the character when it has none.
  int64_t id(char32_t c) const;

  /// The ids of UTF-8 `text`, as an int64 tensor of shape [number of characters]. Throws
  /// DatasetError for invalid UTF-8 (offset named) and std::invalid_argument for a character not
  /// in the vocabulary, naming it, its position (character index) and its byte offset.
  Tensor encode(std::string_view text) const;
  /// The same as a vector.
  std::vector<int64_t> encode_ids(std::string_view text) const;
  /// The UTF-8 text of `ids`: an int64 tensor of any shape, read in row-major order (a [1, T]
  /// sample decodes as its T characters). std::invalid_argument for another dtype, or for an id
  /// outside [0, vocab_size()) naming the id and its position.
  std::string decode(const Tensor& ids) const;
  /// The same for a vector of ids.
  std::string decode(const std::vector<int64_t>& ids) const;

  /// Writes the vocabulary as JSON, atomically (io::atomic_write):
  /// {"format": "tapegrad-char-vocab", "version": 1, "vocab_size": V, "chars": ["\n", " ", ...]},
  /// one string of exactly one character per id.
  void save(const std::string& path) const;
  /// Reads a file written by save. Throws DatasetError naming the file for anything else: not
  /// JSON, a repeated key, another format or version, a missing or extra key, a "chars" entry that
  /// is not a one-character string, a repeated character (both ids named), vocab_size ≠ the
  /// number of chars, or a file over 64 MiB.
  static CharTokenizer load(const std::string& path);

  /// Throws std::runtime_error "vocabulary mismatch on load: <context>: ..." unless this (loaded)
  /// vocabulary equals `expected`, naming both sizes and the first id whose character differs
  /// (or the first id present in only one of them).
  void check_matches(const CharTokenizer& expected, std::string_view context) const;

  /// Same vocabulary, same ids.
  bool operator==(const CharTokenizer& other) const { return chars_ == other.chars_; }

 private:
  std::vector<char32_t> chars_;
  std::vector<int32_t> ascii_;        // id of each code point < 128, -1 when absent (the fast path)
  std::vector<char32_t> by_value_;    // the characters sorted, for lookups above ASCII
  std::vector<int32_t> by_value_id_;  // their ids
  int64_t lookup(char32_t c) const;   // -1 when absent
};

// ---------------------------------------------------------------------------------------------
// Windows of a token stream

/// Which part of a TextDataset.
enum class TextSplit {
  train,  ///< the first floor(train_fraction · N) tokens
  val,    ///< the remaining tokens
};

/// "train" or "val".
const char* text_split_name(TextSplit split);

/// A token stream cut by position into a train part (the first floor(train_fraction · N) tokens,
/// computed in double as nanoGPT's `int(0.9 * len(data))`) and a validation part (the rest), from
/// which windows are drawn as nanoGPT's get_batch does: a window at offset i gives x = ids[i, i+T)
/// and y = ids[i+1, i+T+1), the targets being the inputs shifted by one.
class TextDataset {
 public:
  /// `ids`: int64 [N] (copied into a tensor of its own). 0 < train_fraction ≤ 1, else
  /// std::invalid_argument.
  explicit TextDataset(std::vector<int64_t> ids, double train_fraction = 0.9);
  /// The same from an int64 tensor of shape [N] (std::invalid_argument otherwise); the tensor is
  /// shared, not copied.
  explicit TextDataset(Tensor ids, double train_fraction = 0.9);

  /// N, all tokens.
  int64_t size() const { return ids_.numel(); }
  /// Tokens in `split`.
  int64_t split_size(TextSplit split) const { return split == TextSplit::train ? train_size_ : size() - train_size_; }
  /// All ids, int64 [N].
  const Tensor& ids() const { return ids_; }
  /// The ids of `split`, int64 [split_size] (a view).
  Tensor split_ids(TextSplit split) const;

  /// `batch_size` windows of `block_size` tokens at offsets drawn uniformly from
  /// [0, split_size − block_size) with gen.below (so deterministic for a seeded Generator):
  /// x and y int64 [batch_size, block_size], y = x shifted by one. std::invalid_argument for
  /// batch_size or block_size ≤ 0, and when block_size + 1 exceeds the split's length (naming
  /// both), before anything is drawn or allocated.
  Batch get_batch(TextSplit split, int64_t batch_size, int64_t block_size, Generator& gen) const;
  /// The windows at the given `offsets` (one row each), for fixed batches shared with a reference
  /// run. Each offset must satisfy 0 ≤ offset and offset + block_size + 1 ≤ split_size (else
  /// std::invalid_argument naming it).
  Batch batch_at(TextSplit split, const std::vector<int64_t>& offsets, int64_t block_size) const;

 private:
  Tensor ids_;
  int64_t train_size_ = 0;
  void check_window(const char* who, TextSplit split, int64_t block_size) const;
};

/// Everything a character-level model needs from one text: where it came from, its size, the
/// vocabulary built from it and the encoded, split token stream.
struct TextCorpus {
  std::string path;         ///< as given to load_text_corpus
  int64_t bytes = 0;        ///< UTF-8 bytes of the text
  CharTokenizer tokenizer;  ///< sorted distinct characters of the text
  TextDataset data;         ///< the text's ids, split train / val
};

/// load_text(path, options), then CharTokenizer::from_text and encode, split at train_fraction.
TextCorpus load_text_corpus(const std::string& path, double train_fraction = 0.9, const TextLoadOptions& options = {});

}  // namespace tapegrad::datasets
