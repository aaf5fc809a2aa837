// CSV reader and writer, and datasets built from tables.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>

#include "datasets/datasets.hpp"
#include "datasets/fixture_mnist.hpp"
#include "datasets/loader_helpers.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"
#include "train/fit.hpp"

using namespace tapegrad;
using namespace tapegrad::datasets;
using tapegrad::testing::error_of;
using tapegrad::testing::TempDir;

namespace {
void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("csv: header detection, quotes, delimiters, blank lines, CRLF and a byte order mark") {
  CsvTable t = parse_csv("a,b,c\n1,2,3\n4.5,-6e1,+7\n");
  CHECK(t.names == std::vector<std::string>{"a", "b", "c"});
  CHECK(t.rows == 2);
  CHECK(t.cols == 3);
  CHECK(t.values == std::vector<double>{1, 2, 3, 4.5, -60, 7});
  CHECK(t.lines == std::vector<int64_t>{2, 3});
  CHECK(t.column("c") == 2);
  // no header: every field of the first row is a number
  t = parse_csv("1,2\n3,4");
  CHECK(t.names.empty());
  CHECK(t.values == std::vector<double>{1, 2, 3, 4});
  // declared header of numbers, and declared absence
  t = parse_csv("1,2\n3,4\n", {.header = CsvHeader::present});
  CHECK(t.names == std::vector<std::string>{"1", "2"});
  CHECK(t.rows == 1);
  CHECK(error_of([] {
          parse_csv("x,y\n1,2\n", {.header = CsvHeader::absent});
        }).find("line 1, column 1: 'x' is not a number") != std::string::npos);
  // quoted fields: the delimiter, doubled quotes and a line break inside; spaces around fields;
  // blank lines (counted in line numbers); CRLF; a BOM; ';' as the delimiter
  t = parse_csv("\xEF\xBB\xBF\"name; \"\"quoted\"\"\";\"line\nbreak\"\r\n\r\n  \" 1.5 \" ; 2 \r\n\n3;4",
                {.delimiter = ';'});
  CHECK(t.names == std::vector<std::string>{"name; \"quoted\"", "line\nbreak"});
  CHECK(t.values == std::vector<double>{1.5, 2, 3, 4});
  CHECK(t.lines == std::vector<int64_t>{4, 6});
  // tabs as the delimiter keep empty fields apart
  t = parse_csv("1\t\t3\n", {.delimiter = '\t', .missing = -1.0});
  CHECK(t.values == std::vector<double>{1, -1, 3});
  // missing values: NaN on request
  t = parse_csv("a,b\n1,\n,nan\n", {.missing = std::nan("")});
  CHECK(t.at(0, 0) == 1);
  CHECK(std::isnan(t.at(0, 1)));
  CHECK(std::isnan(t.at(1, 0)));
  CHECK(std::isnan(t.at(1, 1)));
  CHECK(parse_csv("").rows == 0);
  CHECK(parse_csv("a,b\n").rows == 0);
  // a pandas index column's empty header name
  CHECK(parse_csv(",a\n0,1.5\n").names == std::vector<std::string>{"", "a"});
}

TEST_CASE("csv: bad values name the line and the column") {
  auto msg = [](const std::string& text, CsvOptions o = {}) { return error_of([&] { parse_csv(text, o, "t.csv"); }); };
  CHECK(msg("a,b,c\n1,2,3\n\n4,x5,6\n") == "t.csv, line 4, column 2 ('b'): 'x5' is not a number");
  CHECK(msg("1,2\n3,\n") == "t.csv, line 2, column 2: an empty field (set CsvOptions::missing to allow it)");
  CHECK(msg("a,b\n1,2\n3\n") == "t.csv, line 3: 1 fields, but the first row (line 1) has 2");
  CHECK(msg("a,b\n1,2\n3,4,5\n").find("line 3: 3 fields") != std::string::npos);
  CHECK(msg("a,b\n1,\"2\n") == "t.csv, line 2: a quoted field is never closed");
  CHECK(msg("a,b\n1,\"2\"x\n").find("line 2, column 2: text after the closing quote") != std::string::npos);
  CHECK(msg("a,b\n1,2\"\n").find("line 2, column 2: a quote inside an unquoted field") != std::string::npos);
  CHECK(msg("1,+-2\n") == "t.csv, line 1, column 2: '+-2' is not a number");  // a mixed first row is data
  CHECK(msg("a\n+\n") == "t.csv, line 2, column 1 ('a'): '+' is not a number");
  CHECK(msg("a,b\n1,1e999\n").find("'1e999' is not a number") != std::string::npos);
  CHECK(msg("1,2\n", {.delimiter = '"'}).find("delimiter") != std::string::npos);
  CHECK(msg(std::string("a,b\n1,") + std::string(100, 'z') + "\n").find("(100 characters)") != std::string::npos);
}

TEST_CASE("csv: read_csv and load_csv on files, with the file named in errors") {
  TempDir dir("csv");
  write_text(dir.file("t.csv"), "x,y\n1,2\n3,4\n");
  Tensor t = load_csv(dir.file("t.csv"));
  CHECK(t.shape() == Shape{2, 2});
  CHECK(t.dtype() == DType::f32);
  CHECK(t.to_vector() == std::vector<double>{1, 2, 3, 4});
  CHECK(load_csv(dir.file("t.csv"), {}, DType::i64).dtype() == DType::i64);
  write_text(dir.file("bad.csv"), "x,y\n1,2\n3,four\n");
  CHECK(error_of([&] { read_csv(dir.file("bad.csv")); }) ==
        "CSV file '" + dir.file("bad.csv") + "', line 3, column 2 ('y'): 'four' is not a number");
  CHECK(error_of([&] { read_csv(dir.file("t.csv"), {.max_bytes = 10}); }).find("over the limit of 10") !=
        std::string::npos);
  CHECK(error_of([&] { read_csv(dir.file("nope.csv")); }).find("No such file or directory") != std::string::npos);
  CHECK(error_of([&] { load_csv(dir.file("t.csv"), {}, DType::b8); }).find("bool") != std::string::npos);
}

TEST_CASE("csv: write_csv round-trips float32, float64, int64 and bool tables exactly") {
  TempDir dir("csv_rt");
  Generator gen(11);
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor t = randn({50, 3}, dtype, gen) * 1e3;
    write_csv(dir.file("r.csv"), t, {"a", "b,c", "d \"e\""});
    const CsvTable back = read_csv(dir.file("r.csv"));
    CHECK(back.names == std::vector<std::string>{"a", "b,c", "d \"e\""});
    CHECK(back.to_tensor(dtype).to_vector() == t.to_vector());  // bit for bit
  }
  write_csv(dir.file("i.csv"), index_tensor({1, -2, 3, 1LL << 40}, {2, 2}));
  CHECK(read_text(dir.file("i.csv")) == "1,-2\n3,1099511627776\n");
  write_csv(dir.file("b.csv"), tensor({1, 0, 1}, DType::b8), {}, ';');
  CHECK(read_text(dir.file("b.csv")) == "1\n0\n1\n");
  CHECK(error_of([&] { write_csv(dir.file("x.csv"), zeros({2, 2, 2})); }).find("1-D or 2-D") != std::string::npos);
  CHECK(error_of([&] {
          write_csv(dir.file("x.csv"), zeros({2, 2}), {"a"});
        }).find("1 names for 2 columns") != std::string::npos);
}

TEST_CASE("csv: csv_dataset picks the target and feature columns, and checks class labels") {
  const CsvTable t = parse_csv("f1,label,f2,f3\n0.5,1,2,3\n1.5,0,4,5\n2.5,2,6,7\n", {}, "t.csv");
  auto d = csv_dataset(t, {.target = "label"});
  CHECK(d->size() == 3);
  CHECK(d->x().shape() == Shape{3, 3});
  CHECK(d->x().dtype() == DType::f32);
  CHECK(d->x().to_vector() == std::vector<double>{0.5, 2, 3, 1.5, 4, 5, 2.5, 6, 7});
  CHECK(d->y().dtype() == DType::i64);
  CHECK(d->y().to_vector() == std::vector<double>{1, 0, 2});
  // by index, the features chosen and ordered, float64 regression targets
  d = csv_dataset(t, {.target = -1, .target_dtype = DType::f64, .features = {2, "f1"}, .feature_dtype = DType::f64});
  CHECK(d->x().to_vector() == std::vector<double>{2, 0.5, 4, 1.5, 6, 2.5});
  CHECK(d->y().dtype() == DType::f64);
  CHECK(d->y().to_vector() == std::vector<double>{3, 5, 7});
  // a label that is not a whole number: its line and column
  CHECK(error_of([&] { csv_dataset(t, {.target = 0}); }) ==
        "t.csv, line 2, column 1 ('f1'): 0.500000 is not an integer (int64 values, e.g. class labels, must be whole "
        "numbers)");
  CHECK(error_of([&] { csv_dataset(t, {.target = "labels"}); }) ==
        "t.csv: no column 'labels' (the columns are 'f1', 'label', 'f2', 'f3')");
  CHECK(error_of([&] { csv_dataset(t, {.target = 4}); }).find("column index 4 is out of range for 4 columns") !=
        std::string::npos);
  CHECK(error_of([&] {
          csv_dataset(t, {.features = {"f1", 0}});
        }).find("column 1 is chosen twice") != std::string::npos);
  CHECK(error_of([&] { csv_dataset(t, {.target = 1, .features = {"label"}}); }).find("also a feature") !=
        std::string::npos);
  CHECK(error_of([&] { csv_dataset(t, {.feature_dtype = DType::i64}); }).find("float32 or float64") !=
        std::string::npos);
  CHECK(error_of([&] { csv_dataset(parse_csv("a,b\n"), {}); }).find("no data rows") != std::string::npos);
  CHECK(error_of([&] { csv_dataset(parse_csv("a,a\n1,2\n"), {.target = "a"}); }).find("two columns are called 'a'") !=
        std::string::npos);
}

TEST_CASE("csv: a table trains directly (load_csv_dataset + fit learns a separable problem)") {
  TempDir dir("csv_train");
  // two classes split by x0 + x1 > 0, with a third, irrelevant column
  std::string text = "x0;x1;noise;class\n";
  Generator gen(5);
  const Tensor points = randn({200, 3}, DType::f64, gen);
  for (int64_t i = 0; i < 200; ++i) {
    const double a = points.at({i, 0}), b = points.at({i, 1}), c = points.at({i, 2});
    text +=
        std::to_string(a) + ";" + std::to_string(b) + ";" + std::to_string(c) + ";" + (a + b > 0 ? "1" : "0") + "\n";
  }
  write_text(dir.file("train.csv"), text);
  auto train = load_csv_dataset(dir.file("train.csv"), {.target = "class"}, {.delimiter = ';'});
  REQUIRE(train->x().shape() == Shape{200, 3});
  manual_seed(3);
  auto model = std::make_shared<nn::Sequential>(nn::Linear(3, 16), nn::ReLU(), nn::Linear(16, 2));
  optim::Adam optimizer(model->parameters(), optim::AdamOptions(1e-2));
  auto loss = [](const Tensor& out, const Tensor& y) { return nn::F::cross_entropy(out, y); };
  train::fit(*model, optimizer, loss, train, {.epochs = 20, .batch_size = 32, .quiet = true});
  CHECK(train::evaluate(*model, loss, *train).accuracy() > 0.95);
}

TEST_CASE("csv: a first row 0, 1, ..., n-1 (pandas' default column names, or data) must be declared") {
  // DataFrame(array).to_csv(index=False) writes this header; guessing either way loses or adds a row
  const std::string text = "0,1,2\n5,6,7\n8,9,10\n";
  CHECK_THROWS_WITH_AS(parse_csv(text), doctest::Contains("CsvHeader::present or CsvHeader::absent"), DatasetError);
  CsvTable named = parse_csv(text, {.header = CsvHeader::present});
  CHECK(named.names == std::vector<std::string>{"0", "1", "2"});
  CHECK(named.rows == 2);
  CHECK(parse_csv(text, {.header = CsvHeader::absent}).rows == 3);
  CHECK(parse_csv("0,1,3\n5,6,7\n").rows == 2);  // other numbers: data, as before
  CHECK(parse_csv("0\n1\n").rows == 2);          // one column: 0 is far more often a label than a name
}
