#include "datasets/text.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "autograd/functions.hpp"
#include "autograd/file_io.hpp"
#include "datasets/idx.hpp"

namespace tapegrad::datasets {
namespace {

constexpr char32_t kMaxCodePoint = 0x10FFFF;
constexpr const char* kVocabFormat = "tapegrad-char-vocab";
constexpr uint64_t kMaxVocabFileBytes = uint64_t{64} << 20;

std::string hex_byte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", b);
  return buf;
}

bool is_scalar_value(char32_t c) { return c <= kMaxCodePoint && (c < 0xD800 || c > 0xDFFF); }

// Decodes the character starting at bytes[pos] into `c` and advances `pos`. On invalid UTF-8 it
// returns the reason (pos unchanged); nullptr on success. Strict RFC 3629, table 3-7 of Unicode.
const char* next_char(std::string_view bytes, size_t& pos, char32_t& c, std::string& reason) {
  const auto b0 = static_cast<unsigned char>(bytes[pos]);
  if (b0 < 0x80) {
    c = b0;
    ++pos;
    return nullptr;
  }
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b0 < 0xC0) {
    reason = "continuation byte " + hex_byte(b0) + " where a character should start";
    return reason.c_str();
  } else if (b0 < 0xC2) {
    reason = "overlong encoding (lead byte " + hex_byte(b0) + " of a 2-byte form of a code point below U+0080)";
    return reason.c_str();
  } else if (b0 < 0xE0) {
    len = 2;
  } else if (b0 < 0xF0) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 < 0xF5) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    reason = "byte " + hex_byte(b0) + " never occurs in UTF-8";
    return reason.c_str();
  }
  char32_t value = b0 & (0xFF >> (len + 1));
  for (int k = 1; k < len; ++k) {
    if (pos + k >= bytes.size()) {
      reason = "truncated: the text ends inside a " + std::to_string(len) + "-byte character (lead byte " +
               hex_byte(b0) + ", " + std::to_string(bytes.size() - pos) + " byte(s) left)";
      return reason.c_str();
    }
    const auto b = static_cast<unsigned char>(bytes[pos + k]);
    const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      if (b >= 0x80 && b <= 0xBF) {  // a continuation byte, but out of range after this lead
        reason = b0 == 0xE0 || b0 == 0xF0 ? "overlong encoding"
                 : b0 == 0xED             ? "surrogate (U+D800..U+DFFF)"
                                          : "code point above U+10FFFF";
        reason += " (bytes " + hex_byte(b0) + " " + hex_byte(b) + ")";
      } else {
        reason = "bad continuation byte " + hex_byte(b) + " at byte " + std::to_string(k + 1) + " of a " +
                 std::to_string(len) + "-byte character (lead byte " + hex_byte(b0) + ")";
      }
      return reason.c_str();
    }
    value = (value << 6) | (b & 0x3F);
  }
  c = value;
  pos += len;
  return nullptr;
}

[[noreturn]] void throw_invalid_utf8(std::string_view source, size_t offset, const std::string& reason) {
  throw DatasetError(std::string(source) + ": invalid UTF-8 at byte offset " + std::to_string(offset) + ": " + reason);
}

// Calls f(c, char_index, byte_offset) for every character of `bytes`.
template <class F>
void for_each_char(std::string_view bytes, std::string_view source, F&& f) {
  std::string reason;
  size_t pos = 0;
  int64_t index = 0;
  while (pos < bytes.size()) {
    const size_t start = pos;
    char32_t c;
    if (next_char(bytes, pos, c, reason)) throw_invalid_utf8(source, start, reason);
    f(c, index++, start);
  }
}

bool has_suffix(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Reads the whole of `path` (a regular file) and checks it is UTF-8.
void append_file(std::string& out, const std::string& path, uint64_t& budget, uint64_t max_bytes) {
  io::ReadFile in(path);
  if (!in.ok()) throw DatasetError("tapegrad::datasets::load_text: " + in.error());
  if (in.size() > budget)
    throw DatasetError("tapegrad::datasets::load_text: '" + path + "' has " + std::to_string(in.size()) + " bytes, " +
                       std::to_string(max_bytes - budget) + " read before it: over the limit of " +
                       std::to_string(max_bytes) + " bytes (TextLoadOptions::max_bytes)");
  const size_t start = out.size();
  out.resize(start + in.size());
  if (!in.read_at(0, out.data() + start, in.size())) throw DatasetError("tapegrad::datasets::load_text: " + in.error());
  budget -= in.size();
  for_each_char(std::string_view(out).substr(start), "tapegrad::datasets::load_text: '" + path + "'",
                [](char32_t, int64_t, size_t) {});
}

[[noreturn]] void bad_vocab(const std::string& path, const std::string& what) {
  throw DatasetError("tapegrad::datasets::CharTokenizer::load: '" + path + "' is not a valid vocabulary file: " + what);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// UTF-8

std::vector<char32_t> utf8_decode(std::string_view bytes, std::string_view source) {
  std::vector<char32_t> out;
  out.reserve(bytes.size());
  for_each_char(bytes, source, [&](char32_t c, int64_t, size_t) { out.push_back(c); });
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (!is_scalar_value(c))
    throw std::invalid_argument("tapegrad::datasets::utf8_append: " + describe_char(c) +
                                " is not a Unicode scalar value");
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string describe_char(char32_t c) {
  char code[16];
  std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
  const bool control = c < 0x20 || (c >= 0x7F && c < 0xA0);
  if (control || !is_scalar_value(c)) return code;
  std::string s = "'";
  utf8_append(s, c);
  return s + "' (" + code + ")";
}

// ---------------------------------------------------------------------------------------------
// Loading text

std::vector<std::string> text_files(const std::string& dir, const TextLoadOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw DatasetError("tapegrad::datasets::text_files: cannot read folder '" + dir + "': " + ec.message());
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    // symlink_status: a link is skipped whatever it points to.
    const fs::file_status st = it->symlink_status(ec);
    if (ec)
      throw DatasetError("tapegrad::datasets::text_files: cannot stat '" + it->path().string() + "': " + ec.message());
    if (!fs::is_regular_file(st)) continue;
    const std::string name = it->path().filename().string();
    const bool excluded = std::any_of(options.exclude_extensions.begin(), options.exclude_extensions.end(),
                                      [&](const std::string& ext) { return has_suffix(name, ext); });
    if (!excluded) names.push_back(name);
  }
  if (ec) throw DatasetError("tapegrad::datasets::text_files: cannot read folder '" + dir + "': " + ec.message());
  if (names.empty())
    throw DatasetError("tapegrad::datasets::text_files: folder '" + dir +
                       "' holds no regular file that is not excluded (symbolic links and sub-folders are skipped)");
  std::sort(names.begin(), names.end());
  std::vector<std::string> paths;
  for (const auto& name : names) paths.push_back((fs::path(dir) / name).string());
  return paths;
}

std::string load_text(const std::string& path, const TextLoadOptions& options) {
  std::error_code ec;
  const bool is_dir = std::filesystem::is_directory(path, ec);
  const std::vector<std::string> files = is_dir ? text_files(path, options) : std::vector<std::string>{path};
  std::string text;
  uint64_t budget = options.max_bytes;
  for (const auto& file : files) append_file(text, file, budget, options.max_bytes);
  return text;
}

// ---------------------------------------------------------------------------------------------
// CharTokenizer

CharTokenizer::CharTokenizer(std::vector<char32_t> chars) : chars_(std::move(chars)), ascii_(128, -1) {
  for (size_t i = 0; i < chars_.size(); ++i) {
    if (!is_scalar_value(chars_[i]))
      throw std::invalid_argument("tapegrad::datasets::CharTokenizer: character " + std::to_string(i) + ", " +
                                  describe_char(chars_[i]) + ", is not a Unicode scalar value");
    by_value_id_.push_back(static_cast<int32_t>(i));
  }
  std::sort(by_value_id_.begin(), by_value_id_.end(), [&](int32_t a, int32_t b) { return chars_[a] < chars_[b]; });
  for (size_t k = 0; k < by_value_id_.size(); ++k) {
    const int32_t id = by_value_id_[k];
    if (k > 0 && chars_[by_value_id_[k - 1]] == chars_[id])
      throw std::invalid_argument("tapegrad::datasets::CharTokenizer: character " + describe_char(chars_[id]) +
                                  " appears twice, as ids " + std::to_string(std::min(id, by_value_id_[k - 1])) +
                                  " and " + std::to_string(std::max(id, by_value_id_[k - 1])));
    by_value_.push_back(chars_[id]);
    if (chars_[id] < 128) ascii_[chars_[id]] = id;
  }
}

CharTokenizer CharTokenizer::from_text(std::string_view text, std::string_view source) {
  std::vector<bool> seen(kMaxCodePoint + 1, false);
  for_each_char(text, source, [&](char32_t c, int64_t, size_t) { seen[c] = true; });
  std::vector<char32_t> chars;
  for (char32_t c = 0; c <= kMaxCodePoint; ++c)
    if (seen[c]) chars.push_back(c);
  return CharTokenizer(std::move(chars));
}

int64_t CharTokenizer::lookup(char32_t c) const {
  if (c < 128) return ascii_.empty() ? -1 : ascii_[c];
  auto it = std::lower_bound(by_value_.begin(), by_value_.end(), c);
  return it != by_value_.end() && *it == c ? by_value_id_[it - by_value_.begin()] : -1;
}

bool CharTokenizer::contains(char32_t c) const { return lookup(c) >= 0; }

int64_t CharTokenizer::id(char32_t c) const {
  const int64_t i = lookup(c);
  if (i < 0)
    throw std::invalid_argument("tapegrad::datasets::CharTokenizer::id: character " + describe_char(c) +
                                " is not in the vocabulary (" + std::to_string(vocab_size()) + " characters)");
  return i;
}

std::vector<int64_t> CharTokenizer::encode_ids(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for_each_char(text, "tapegrad::datasets::CharTokenizer::encode", [&](char32_t c, int64_t index, size_t offset) {
    const int64_t i = lookup(c);
    if (i < 0)
      throw std::invalid_argument("tapegrad::datasets::CharTokenizer::encode: character " + describe_char(c) +
                                  " at position " + std::to_string(index) + " (byte offset " + std::to_string(offset) +
                                  ") is not in the vocabulary (" + std::to_string(vocab_size()) + " characters)");
    ids.push_back(i);
  });
  return ids;
}

Tensor CharTokenizer::encode(std::string_view text) const {
  const std::vector<int64_t> ids = encode_ids(text);
  Tensor t = Tensor::empty({static_cast<int64_t>(ids.size())}, DType::i64);
  std::copy(ids.begin(), ids.end(), t.mutable_data<int64_t>());
  return t;
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] >= vocab_size())
      throw std::invalid_argument("tapegrad::datasets::CharTokenizer::decode: id " + std::to_string(ids[k]) +
                                  " at position " + std::to_string(k) + " is outside the vocabulary [0, " +
                                  std::to_string(vocab_size()) + ")");
    utf8_append(out, chars_[ids[k]]);
  }
  return out;
}

std::string CharTokenizer::decode(const Tensor& ids) const {
  if (ids.dtype() != DType::i64)
    throw std::invalid_argument(std::string("tapegrad::datasets::CharTokenizer::decode: ids must be int64, got ") +
                                dtype_name(ids.dtype()));
  const int64_t* p = ids.data<int64_t>();
  return decode(std::vector<int64_t>(p, p + ids.numel()));
}

void CharTokenizer::save(const std::string& path) const {
  nlohmann::ordered_json j;
  j["format"] = kVocabFormat;
  j["version"] = 1;
  j["vocab_size"] = vocab_size();
  j["chars"] = nlohmann::ordered_json::array();
  for (char32_t c : chars_) {
    std::string s;
    utf8_append(s, c);
    j["chars"].push_back(s);
  }
  const std::string text = j.dump(1) + "\n";
  io::atomic_write(path, {{text.data(), text.size()}}, "tapegrad::datasets::CharTokenizer::save");
}

CharTokenizer CharTokenizer::load(const std::string& path) {
  io::ReadFile in(path);
  if (!in.ok()) throw DatasetError("tapegrad::datasets::CharTokenizer::load: " + in.error());
  if (in.size() > kMaxVocabFileBytes)
    bad_vocab(path, std::to_string(in.size()) + " bytes, over the limit of " + std::to_string(kMaxVocabFileBytes));
  std::string text(in.size(), '\0');
  if (!in.read_at(0, text.data(), text.size()))
    throw DatasetError("tapegrad::datasets::CharTokenizer::load: " + in.error());
  // The format is one object holding one array of strings: anything nested deeper, and a key
  // repeated in the top object (which nlohmann would silently resolve to the last), is refused.
  std::set<std::string> keys;
  auto screen = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth > 1)
      throw std::invalid_argument("arrays or objects nested deeper than the format allows");
    if (event == E::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second)
      throw std::invalid_argument("key \"" + parsed.get<std::string>() + "\" appears twice");
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, screen);
  } catch (const nlohmann::json::exception& e) {
    bad_vocab(path, std::string("not valid JSON (") + e.what() + ")");
  } catch (const std::invalid_argument& e) {
    bad_vocab(path, e.what());
  }
  if (!j.is_object()) bad_vocab(path, "expected a JSON object, got " + std::string(j.type_name()));
  for (auto& [key, value] : j.items())
    if (key != "format" && key != "version" && key != "vocab_size" && key != "chars")
      bad_vocab(path, "unknown key \"" + key + "\"");
  if (!j.contains("format") || j["format"] != kVocabFormat)
    bad_vocab(path, std::string("\"format\" must be \"") + kVocabFormat + "\", got " +
                        (j.contains("format") ? j["format"].dump() : "nothing"));
  if (!j.contains("version") || j["version"] != 1)
    bad_vocab(path, "\"version\" must be 1, got " + (j.contains("version") ? j["version"].dump() : "nothing"));
  if (!j.contains("chars") || !j["chars"].is_array()) bad_vocab(path, "\"chars\" must be an array of strings");
  const auto& list = j["chars"];
  if (!j.contains("vocab_size") || !j["vocab_size"].is_number_integer() || j["vocab_size"] != list.size())
    bad_vocab(path, "\"vocab_size\" must be the number of chars, " + std::to_string(list.size()) + ", got " +
                        (j.contains("vocab_size") ? j["vocab_size"].dump() : "nothing"));
  std::vector<char32_t> chars;
  for (size_t i = 0; i < list.size(); ++i) {
    std::vector<char32_t> cs;
    if (list[i].is_string()) cs = utf8_decode(list[i].get<std::string>(), path);  // nlohmann checked it already
    if (cs.size() != 1)
      bad_vocab(path,
                "chars[" + std::to_string(i) + "] must be a string of exactly one character, got " + list[i].dump());
    chars.push_back(cs[0]);
  }
  try {
    return CharTokenizer(std::move(chars));
  } catch (const std::invalid_argument& e) {
    bad_vocab(path, std::string(e.what()).substr(std::string("tapegrad::datasets::CharTokenizer: ").size()));
  }
}

void CharTokenizer::check_matches(const CharTokenizer& expected, std::string_view context) const {
  if (*this == expected) return;
  const size_t common = std::min(chars_.size(), expected.chars_.size());
  size_t i = 0;
  while (i < common && chars_[i] == expected.chars_[i]) ++i;
  std::string diff = "first difference at id " + std::to_string(i) + ": ";
  if (i < common)
    diff += describe_char(chars_[i]) + " loaded, " + describe_char(expected.chars_[i]) + " expected";
  else if (i < chars_.size())
    diff += describe_char(chars_[i]) + " loaded, nothing expected";
  else
    diff += "nothing loaded, " + describe_char(expected.chars_[i]) + " expected";
  throw std::runtime_error("vocabulary mismatch on load: " + std::string(context) + ": the loaded vocabulary has " +
                           std::to_string(vocab_size()) + " characters, the expected one " +
                           std::to_string(expected.vocab_size()) + "; " + diff);
}

// ---------------------------------------------------------------------------------------------
// TextDataset

const char* text_split_name(TextSplit split) { return split == TextSplit::train ? "train" : "val"; }

TextDataset::TextDataset(std::vector<int64_t> ids, double train_fraction)
    : TextDataset(index_tensor(ids), train_fraction) {}

TextDataset::TextDataset(Tensor ids, double train_fraction) : ids_(std::move(ids)) {
  if (!ids_.defined() || ids_.dtype() != DType::i64 || ids_.dim() != 1)
    throw std::invalid_argument("tapegrad::datasets::TextDataset: ids must be an int64 tensor of shape [N], got " +
                                (ids_.defined()
                                     ? std::string(dtype_name(ids_.dtype())) + " of shape " + to_string(ids_.shape())
                                     : std::string("an undefined tensor")));
  if (!(train_fraction > 0.0 && train_fraction <= 1.0))
    throw std::invalid_argument("tapegrad::datasets::TextDataset: train_fraction must be in (0, 1], got " +
                                std::to_string(train_fraction));
  train_size_ = static_cast<int64_t>(train_fraction * static_cast<double>(ids_.numel()));
}

Tensor TextDataset::split_ids(TextSplit split) const {
  return split == TextSplit::train ? slice(ids_, 0, 0, train_size_) : slice(ids_, 0, train_size_, size());
}

void TextDataset::check_window(const char* who, TextSplit split, int64_t block_size) const {
  if (block_size <= 0)
    throw std::invalid_argument(std::string("tapegrad::datasets::TextDataset::") + who +
                                ": block_size must be > 0, got " + std::to_string(block_size));
  if (block_size >= split_size(split))
    throw std::invalid_argument(std::string("tapegrad::datasets::TextDataset::") + who +
                                ": a window of block_size + 1 = " + std::to_string(block_size + 1) +
                                " tokens does not fit in the " + text_split_name(split) + " split of " +
                                std::to_string(split_size(split)) + " tokens (" + std::to_string(size()) +
                                " tokens in all)");
}

Batch TextDataset::get_batch(TextSplit split, int64_t batch_size, int64_t block_size, Generator& gen) const {
  if (batch_size <= 0)
    throw std::invalid_argument("tapegrad::datasets::TextDataset::get_batch: batch_size must be > 0, got " +
                                std::to_string(batch_size));
  check_window("get_batch", split, block_size);
  std::vector<int64_t> offsets(batch_size);
  for (auto& o : offsets) o = static_cast<int64_t>(gen.below(static_cast<uint64_t>(split_size(split) - block_size)));
  return batch_at(split, offsets, block_size);
}

Batch TextDataset::batch_at(TextSplit split, const std::vector<int64_t>& offsets, int64_t block_size) const {
  check_window("batch_at", split, block_size);
  const int64_t last = split_size(split) - block_size - 1;  // the largest valid offset
  for (size_t b = 0; b < offsets.size(); ++b)
    if (offsets[b] < 0 || offsets[b] > last)
      throw std::invalid_argument("tapegrad::datasets::TextDataset::batch_at: offset " + std::to_string(offsets[b]) +
                                  " (row " + std::to_string(b) + ") is outside [0, " + std::to_string(last) +
                                  "] for windows of " + std::to_string(block_size) + " + 1 tokens in the " +
                                  text_split_name(split) + " split of " + std::to_string(split_size(split)) +
                                  " tokens");
  const auto rows = static_cast<int64_t>(offsets.size());
  Tensor x = Tensor::empty({rows, block_size}, DType::i64), y = Tensor::empty({rows, block_size}, DType::i64);
  const int64_t* src = ids_.data<int64_t>() + (split == TextSplit::train ? 0 : train_size_);
  int64_t *px = x.mutable_data<int64_t>(), *py = y.mutable_data<int64_t>();
  for (int64_t b = 0; b < rows; ++b) {
    std::copy_n(src + offsets[b], block_size, px + b * block_size);
    std::copy_n(src + offsets[b] + 1, block_size, py + b * block_size);
  }
  return {x, y};
}

TextCorpus load_text_corpus(const std::string& path, double train_fraction, const TextLoadOptions& options) {
  const std::string text = load_text(path, options);
  CharTokenizer tokenizer = CharTokenizer::from_text(text, path);
  TextDataset data(tokenizer.encode(text), train_fraction);
  return TextCorpus{path, static_cast<int64_t>(text.size()), std::move(tokenizer), std::move(data)};
}

}  // namespace tapegrad::datasets
