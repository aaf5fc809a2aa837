// Text data: UTF-8 decoding, the character tokenizer and its vocabulary file, folder loading, and
// the windows of TextDataset.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "autograd/autograd.hpp"
#include "datasets/datasets.hpp"
#include "fixture_mnist.hpp"

using namespace tapegrad;
using namespace tapegrad::datasets;
using tapegrad::testing::TempDir;

namespace {
void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}
std::vector<int64_t> values(const Tensor& t) { return {t.data<int64_t>(), t.data<int64_t>() + t.numel()}; }
}  // namespace

TEST_CASE("text: utf8_decode of 1- to 4-byte characters") {
  // "aé€😀": U+0061, U+00E9, U+20AC, U+1F600
  auto cs = utf8_decode("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK(cs == std::vector<char32_t>{0x61, 0xE9, 0x20AC, 0x1F600});
  // the edges of each length
  CHECK(utf8_decode("\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF") ==
        std::vector<char32_t>{0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF});
  std::string s;
  for (char32_t c : {0x61, 0xE9, 0x20AC, 0x1F600}) utf8_append(s, c);
  CHECK(s == "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK_THROWS_AS(utf8_append(s, 0xD800), std::invalid_argument);
  CHECK_THROWS_AS(utf8_append(s, 0x110000), std::invalid_argument);
  CHECK(describe_char(U'é') == "'\xC3\xA9' (U+00E9)");
  CHECK(describe_char(U'\n') == "U+000A");
}

TEST_CASE("text: invalid UTF-8 names the source, the byte offset and the reason") {
  struct Case {
    std::string bytes;
    int offset;
    std::string reason;
  };
  const Case cases[] = {
      {"ab\xE2\x82", 2, "truncated"},                 // 3-byte character cut off
      {"abc\xC3", 3, "truncated"},                    // 2-byte cut off
      {"x\xC0\xAF", 1, "overlong"},                   // '/' in two bytes
      {"xy\xE0\x80\xAF", 2, "overlong"},              // '/' in three bytes
      {"\xF0\x80\x80\xAF", 0, "overlong"},            // '/' in four bytes
      {"ok \xC3(", 3, "bad continuation byte 0x28"},  // '(' is not a continuation
      {"\xE2\x82Z", 0, "bad continuation byte 0x5A at byte 3"},
      {"a\x80", 1, "continuation byte 0x80 where a character should start"},
      {"a\xED\xA0\x80", 1, "surrogate"},
      {"\xF4\x90\x80\x80", 0, "above U+10FFFF"},
      {"abcd\xFF", 4, "0xFF never occurs"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    const std::string msg = message_of([&] { utf8_decode(c.bytes, "my.txt"); });
    CHECK(msg.find("my.txt: invalid UTF-8 at byte offset " + std::to_string(c.offset) + ": ") == 0);
    CHECK(msg.find(c.reason) != std::string::npos);
    CHECK_THROWS_AS(utf8_decode(c.bytes), DatasetError);
  }
}

TEST_CASE("text: a tokenizer from a text is its sorted distinct characters, and encode and decode round trip") {
  const std::string text = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC\xF0\x9F\x98\x80!\n";  // héllo wörld €😀!
  CharTokenizer tok = CharTokenizer::from_text(text);
  CHECK(tok.chars() ==
        std::vector<char32_t>{'\n', ' ', '!', 'd', 'h', 'l', 'o', 'r', 'w', 0xE9, 0xF6, 0x20AC, 0x1F600});
  CHECK(tok.vocab_size() == 13);
  Tensor ids = tok.encode(text);
  CHECK(ids.dtype() == DType::i64);
  CHECK(ids.shape() == Shape{16});  // characters, not bytes (the text has 23 bytes)
  CHECK(values(ids) == std::vector<int64_t>{4, 9, 5, 5, 6, 1, 8, 10, 7, 5, 3, 1, 11, 12, 2, 0});
  CHECK(tok.decode(ids) == text);
  CHECK(tok.decode(reshape(ids, {2, 8})) == text);  // any shape, row-major
  CHECK(tok.id(U'€') == 11);
  CHECK(tok.contains(U'l'));
  CHECK_FALSE(tok.contains(U'z'));
  CHECK(tok.encode("").numel() == 0);
}

TEST_CASE("text: encode and decode errors name the character, id and position") {
  CharTokenizer tok = CharTokenizer::from_text("abc\xC3\xA9");
  std::string msg = message_of([&] { tok.encode("ab\xC3\xA9z"); });
  CHECK(msg.find("CharTokenizer::encode: character 'z' (U+007A) at position 3 (byte offset 4) is not in the vocabulary "
                 "(4 characters)") != std::string::npos);
  CHECK_THROWS_AS(tok.encode("abz"), std::invalid_argument);
  msg = message_of([&] { tok.encode("ab\xC3"); });
  CHECK(msg.find("invalid UTF-8 at byte offset 2") != std::string::npos);
  msg = message_of([&] { tok.decode(std::vector<int64_t>{0, 1, 4}); });
  CHECK(msg.find("id 4 at position 2 is outside the vocabulary [0, 4)") != std::string::npos);
  CHECK_THROWS_AS(tok.decode(std::vector<int64_t>{-1}), std::invalid_argument);
  CHECK_THROWS_AS(tok.decode(tensor({0.0, 1.0})), std::invalid_argument);  // float32 ids
  CHECK(message_of([&] { tok.id(U'\n'); }).find("character U+000A is not in the vocabulary") != std::string::npos);
  msg = message_of([] { CharTokenizer({'a', 'b', 'a'}); });
  CHECK(msg.find("'a' (U+0061) appears twice, as ids 0 and 2") != std::string::npos);
  CHECK_THROWS_AS(CharTokenizer({0xD800}), std::invalid_argument);
}

TEST_CASE("text: vocabulary save and load round trip, including control and multibyte characters") {
  TempDir dir("text_vocab");
  // Not sorted on purpose: a vocabulary keeps its ids in the order given.
  CharTokenizer tok({'z', '\n', '"', '\\', 0x01, 0xE9, 0x1F600, ' '});
  tok.save(dir.file("vocab.json"));
  CharTokenizer back = CharTokenizer::load(dir.file("vocab.json"));
  CHECK(back == tok);
  CHECK(back.chars() == tok.chars());
  back.check_matches(tok, "same");  // no throw
  // the file is the documented JSON
  std::ifstream in(dir.file("vocab.json"));
  const std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(json.find("\"format\": \"tapegrad-char-vocab\"") != std::string::npos);
  CHECK(json.find("\"vocab_size\": 8") != std::string::npos);
  CHECK(json.find("\xF0\x9F\x98\x80") != std::string::npos);  // written as itself, not escaped
  // an empty vocabulary is a valid one
  CharTokenizer().save(dir.file("empty.json"));
  CHECK(CharTokenizer::load(dir.file("empty.json")).vocab_size() == 0);
}

TEST_CASE("text: loading a vocabulary file validates its format") {
  TempDir dir("text_vocab_bad");
  const std::string head = R"({"format": "tapegrad-char-vocab", "version": 1, )";
  struct Case {
    std::string json, expect;
  };
  const Case cases[] = {
      {head + R"("vocab_size": 3, "chars": ["a", "b", "a"]})", "'a' (U+0061) appears twice, as ids 0 and 2"},
      {head + R"("vocab_size": 2, "chars": ["a", "bc"]})",
       "chars[1] must be a string of exactly one character, got \"bc\""},
      {head + R"("vocab_size": 2, "chars": ["a", ""]})", "chars[1] must be a string of exactly one character"},
      {head + R"("vocab_size": 2, "chars": ["a", 7]})", "chars[1] must be a string of exactly one character, got 7"},
      {head + R"("vocab_size": 3, "chars": ["a", "b"]})", "\"vocab_size\" must be the number of chars, 2, got 3"},
      {head + R"("chars": ["a"]})", "\"vocab_size\" must be the number of chars, 1, got nothing"},
      {R"({"format": "other", "version": 1, "vocab_size": 0, "chars": []})",
       "\"format\" must be \"tapegrad-char-vocab\""},
      {R"({"format": "tapegrad-char-vocab", "version": 2, "vocab_size": 0, "chars": []})",
       "\"version\" must be 1, got 2"},
      {head + R"("vocab_size": 0, "chars": [], "extra": 1})", "unknown key \"extra\""},
      {head + R"("vocab_size": 0, "chars": [], "chars": ["a"]})", "key \"chars\" appears twice"},
      {head + R"("vocab_size": 1, "chars": [["a"]]})", "nested deeper"},
      {head + R"("vocab_size": 1, "chars": ["a")", "not valid JSON"},
      {"[1, 2]", "expected a JSON object, got array"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    write(dir.file("v.json"), c.json);
    const std::string msg = message_of([&] { CharTokenizer::load(dir.file("v.json")); });
    CHECK(msg.find("tapegrad::datasets::CharTokenizer::load: '" + dir.file("v.json") +
                   "' is not a valid vocabulary file: ") == 0);
    CHECK(msg.find(c.expect) != std::string::npos);
  }
  write(dir.file("v.json"), "{\"chars\": [\"\xC3\"]}");  // invalid UTF-8 in the JSON itself
  CHECK_THROWS_AS(CharTokenizer::load(dir.file("v.json")), DatasetError);
  CHECK(message_of([&] { CharTokenizer::load(dir.file("missing.json")); }).find("No such file") != std::string::npos);
}

TEST_CASE("text: check_matches names the first difference") {
  CharTokenizer a({'a', 'b', 'c'}), b({'a', 'x', 'c'}), c({'a', 'b'});
  std::string msg = message_of([&] { a.check_matches(b, "resuming from out/gpt"); });
  CHECK(msg ==
        "vocabulary mismatch on load: resuming from out/gpt: the loaded vocabulary has 3 characters, the "
        "expected one 3; first difference at id 1: 'b' (U+0062) loaded, 'x' (U+0078) expected");
  CHECK_THROWS_AS(a.check_matches(b, ""), std::runtime_error);
  msg = message_of([&] { a.check_matches(c, "ctx"); });
  CHECK(msg.find("has 3 characters, the expected one 2; first difference at id 2: 'c' (U+0063) loaded, nothing "
                 "expected") != std::string::npos);
  msg = message_of([&] { c.check_matches(a, "ctx"); });
  CHECK(msg.find("id 2: nothing loaded, 'c' (U+0063) expected") != std::string::npos);
  a.check_matches(CharTokenizer({'a', 'b', 'c'}), "equal");
}

TEST_CASE("text: TextDataset splits 90/10 by position and windows are shifted by one") {
  std::vector<int64_t> ids(1000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);  // id = position
  TextDataset data(ids);
  CHECK(data.size() == 1000);
  CHECK(data.split_size(TextSplit::train) == 900);
  CHECK(data.split_size(TextSplit::val) == 100);
  CHECK(values(data.split_ids(TextSplit::val)).front() == 900);
  CHECK(TextDataset(std::vector<int64_t>(2576674, 0)).split_size(TextSplit::train) == 2319006);  // int(0.9 * n)

  for (TextSplit split : {TextSplit::train, TextSplit::val}) {
    CAPTURE(text_split_name(split));
    Generator gen(42);
    Batch b = data.get_batch(split, 12, 16, gen);
    CHECK(b.x.shape() == Shape{12, 16});
    CHECK(b.y.shape() == Shape{12, 16});
    CHECK(b.x.dtype() == DType::i64);
    const auto x = values(b.x), y = values(b.y);
    const int64_t lo = split == TextSplit::train ? 0 : 900, hi = split == TextSplit::train ? 900 : 1000;
    std::set<int64_t> starts;
    for (int64_t r = 0; r < 12; ++r) {
      starts.insert(x[r * 16]);
      for (int64_t t = 0; t < 16; ++t) {
        CHECK(x[r * 16 + t] == x[r * 16] + t);      // a contiguous window
        CHECK(y[r * 16 + t] == x[r * 16 + t] + 1);  // the targets: the next token
      }
      CHECK(x[r * 16] >= lo);
      CHECK(y[r * 16 + 15] < hi);  // y's last token is still inside the split
    }
    CHECK(starts.size() > 6);  // random offsets, not one repeated
    // deterministic for a seed, different for another
    Generator same(42), other(43);
    CHECK(values(data.get_batch(split, 12, 16, same).x) == x);
    CHECK(values(data.get_batch(split, 12, 16, other).x) != x);
  }
}

TEST_CASE("text: every offset of a small split is reachable, the last window ends at the split's end") {
  TextDataset data(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 0.5);  // train 0..4, val 5..9
  Generator gen(7);
  std::set<int64_t> starts;
  for (int i = 0; i < 200; ++i) starts.insert(values(data.get_batch(TextSplit::val, 1, 3, gen).x)[0]);
  CHECK(starts == std::set<int64_t>{5, 6});  // windows of 3 + 1 in 5 tokens: offsets 0 and 1
  Batch b = data.batch_at(TextSplit::train, {1, 0}, 3);
  CHECK(values(b.x) == std::vector<int64_t>{1, 2, 3, 0, 1, 2});
  CHECK(values(b.y) == std::vector<int64_t>{2, 3, 4, 1, 2, 3});
  const std::string msg = message_of([&] { data.batch_at(TextSplit::train, {0, 2}, 3); });
  CHECK(msg.find("offset 2 (row 1) is outside [0, 1] for windows of 3 + 1 tokens in the train split of 5 tokens") !=
        std::string::npos);
}

TEST_CASE("text: a window longer than a split is an error naming the sizes, with nothing drawn") {
  TextDataset data(std::vector<int64_t>(100, 3));  // train 90, val 10
  Generator gen(1), untouched(1);
  std::string msg = message_of([&] { data.get_batch(TextSplit::val, 4, 10, gen); });
  CHECK(msg ==
        "tapegrad::datasets::TextDataset::get_batch: a window of block_size + 1 = 11 tokens does not fit in "
        "the val split of 10 tokens (100 tokens in all)");
  CHECK(gen.state() == untouched.state());
  CHECK_NOTHROW(data.get_batch(TextSplit::val, 4, 9, gen));  // 9 + 1 fits exactly
  CHECK_THROWS_AS(data.get_batch(TextSplit::train, 4, 90, gen), std::invalid_argument);
  CHECK(message_of([&] { data.get_batch(TextSplit::train, 0, 8, gen); }).find("batch_size must be > 0, got 0") !=
        std::string::npos);
  CHECK(message_of([&] { data.get_batch(TextSplit::train, 2, 0, gen); }).find("block_size must be > 0, got 0") !=
        std::string::npos);
  // the whole text in train: the val split is empty
  TextDataset all(std::vector<int64_t>(10, 0), 1.0);
  CHECK(all.split_size(TextSplit::val) == 0);
  CHECK(message_of([&] { all.get_batch(TextSplit::val, 1, 1, gen); }).find("val split of 0 tokens") !=
        std::string::npos);
  CHECK_THROWS_AS(TextDataset(std::vector<int64_t>{1}, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(TextDataset(std::vector<int64_t>{1}, 1.5), std::invalid_argument);
  CHECK(message_of([] {
          TextDataset(tensor({1.0, 2.0}));
        }).find("must be an int64 tensor of shape [N], got float32") != std::string::npos);
}

TEST_CASE("text: a folder loads its regular files in name order, skipping links, sub-folders and excluded names") {
  TempDir dir("text_folder");
  write(dir.file("b"), "B\xC3\xA9\n");
  write(dir.file("a"), "A\n");
  write(dir.file("c.txt"), "C\n");
  write(dir.file("a.dat"), std::string("\x00\x01\xFF\xFE", 4));  // binary: excluded by default
  std::filesystem::create_symlink(dir.file("a"), dir.file("a.u8"));
  std::filesystem::create_symlink(dir.file("nowhere"), dir.file("dangling"));
  std::filesystem::create_directory(dir.file("sub"));
  write(dir.file("sub/z"), "Z\n");

  const auto files = text_files(dir.path.string());
  CHECK(files == std::vector<std::string>{dir.file("a"), dir.file("b"), dir.file("c.txt")});
  CHECK(load_text(dir.path.string()) == "A\nB\xC3\xA9\nC\n");
  CHECK(load_text(dir.path.string(), {.exclude_extensions = {".dat", ".txt"}}) == "A\nB\xC3\xA9\n");
  // a link named directly is followed
  CHECK(load_text(dir.file("a.u8")) == "A\n");
  // without the exclusion the binary index is read, and its invalid UTF-8 is reported in it
  std::string msg = message_of([&] { load_text(dir.path.string(), {.exclude_extensions = {}}); });
  CHECK(msg == "tapegrad::datasets::load_text: '" + dir.file("a.dat") +
                   "': invalid UTF-8 at byte offset 2: byte 0xFF never occurs in UTF-8");
  // the size limit is checked before reading
  msg = message_of([&] { load_text(dir.path.string(), {.max_bytes = 5}); });
  CHECK(msg.find(dir.file("b") + "' has 4 bytes, 2 read before it: over the limit of 5 bytes") != std::string::npos);

  TextCorpus corpus = load_text_corpus(dir.path.string());
  CHECK(corpus.bytes == 8);
  CHECK(corpus.tokenizer.chars() == std::vector<char32_t>{'\n', 'A', 'B', 'C', 0xE9});
  CHECK(corpus.data.size() == 7);
  CHECK(corpus.tokenizer.decode(corpus.data.ids()) == "A\nB\xC3\xA9\nC\n");

  TempDir empty("text_empty");
  std::filesystem::create_symlink(dir.file("a"), empty.file("link"));
  CHECK(message_of([&] { text_files(empty.path.string()); }).find("holds no regular file") != std::string::npos);
  CHECK(message_of([&] { load_text(dir.file("missing")); }).find("No such file or directory") != std::string::npos);
  CHECK_THROWS_AS(text_files(dir.file("missing")), DatasetError);
}

TEST_CASE("text: Debian's fortunes corpus has 2,576,674 bytes and 113 distinct characters") {
  if (!std::filesystem::is_directory(kFortunesDir)) {
    MESSAGE("skipped: ", kFortunesDir, " is absent (scripts/fetch_text.sh installs Debian's fortunes)");
    return;
  }
  const auto files = text_files(kFortunesDir);
  CHECK(files.size() == 43);
  CHECK(files.front() == std::string(kFortunesDir) + "/art");
  TextCorpus corpus = load_text_corpus(kFortunesDir);
  CHECK(corpus.bytes == 2576674);
  CHECK(corpus.tokenizer.vocab_size() == 113);
  CHECK(corpus.data.split_size(TextSplit::train) == static_cast<int64_t>(0.9 * corpus.data.size()));
  // the corpus starts with the first file
  const Tensor art = corpus.tokenizer.encode(load_text(files.front()));
  CHECK(values(slice(corpus.data.ids(), 0, 0, art.numel())) == values(art));
}
