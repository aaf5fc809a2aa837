#pragma once
/// \file csv.hpp
/// Numeric tables in CSV files (a spreadsheet's "Save as CSV", pandas' to_csv(index=False)), read
/// into a table of numbers, a tensor, or a dataset that trains directly:
///
///     // iris.csv: sepal_length,sepal_width,petal_length,petal_width,species   (species 0, 1, 2)
///     auto train = datasets::load_csv_dataset("iris.csv", {.target = "species"});
///     // x: [N, 4] float32, y: [N] int64 — ready for train::fit with cross_entropy
///
/// The format read (RFC 4180, plus what spreadsheets write):
///   - fields separated by CsvOptions::delimiter (',' by default; ';' or a tab for other locales);
///   - a field may be quoted ("1,5" or "a ""quoted"" name"), and may then hold the delimiter, quotes
///     written twice, and line breaks; spaces around a field are ignored;
///   - records end at `"\n"` or `"\r\n"`; empty (or all-blank) lines are skipped; a UTF-8 byte order
///     mark at the start is skipped;
///   - a header row of column names is detected (CsvHeader::auto_detect: the first row is a header
///     when none of its fields is a number; a row mixing names and numbers is data, so that a typo
///     in the first row is reported rather than taken for a header), or declared present / absent;
///     a first row of exactly 0, 1, …, n−1 (n ≥ 2; pandas' default column names, or data) is an
///     error under auto_detect: declare the header present or absent for such a file;
///   - every other field is a number as std::from_chars reads it ("1", "-2.5e3", "nan", "inf"; a
///     leading '+' is allowed); an empty field is an error unless CsvOptions::missing gives it a value.
/// Every row must have as many fields as the first. Errors are DatasetError naming the file, the
/// line (1-based, of the file, counting skipped lines) and the column (1-based, and its name when
/// there is a header): "CSV file 'x.csv', line 7, column 3 ('age'): 'abc' is not a number".
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "datasets/dataset.hpp"
#include "datasets/idx.hpp"  // DatasetError

namespace tapegrad::datasets {

/// Whether the first row holds column names.
enum class CsvHeader {
  auto_detect,  ///< a header when none of the first row's fields is a number
  present,      ///< the first row holds the names
  absent,       ///< every row is data
};

/// How to read a CSV file.
struct CsvOptions {
  char delimiter = ',';                          ///< the field separator; not a quote, LF or CR
  CsvHeader header = CsvHeader::auto_detect;     ///< see the file comment
  std::optional<double> missing = std::nullopt;  ///< the value of an empty field (e.g. NaN); none: an error
  uint64_t max_bytes = uint64_t{1} << 31;        ///< files larger than this are refused before reading
};

/// A table of numbers read from a CSV file.
struct CsvTable {
  std::vector<std::string> names;  ///< the header's column names; empty without a header
  int64_t rows = 0;  ///< data rows (the header is not one)
  int64_t cols = 0;  ///< fields per row
  std::vector<double> values;  ///< rows · cols values, row-major
  std::vector<int64_t> lines;  ///< the file line of each row (for messages)
  std::string source;          ///< "CSV file '<path>'" (or what parse_csv was given): the messages' prefix

  /// Value of row r, column c.
  double at(int64_t r, int64_t c) const { return values[static_cast<size_t>(r * cols + c)]; }
  /// The index of the column called `name`; throws DatasetError listing the names when there is no
  /// such column, or when two columns have that name.
  int64_t column(const std::string& name) const;
  /// The whole table as a [rows, cols] tensor of `dtype` (float32 or float64; int64 when every value
  /// is an integer, see csv_dataset's targets).
  Tensor to_tensor(DType dtype = DType::f32) const;
};

/// Parses CSV text; `source` prefixes the error messages.
CsvTable parse_csv(const std::string& text, const CsvOptions& options = {}, const std::string& source = "CSV text");
/// Reads a CSV file (a regular file of at most options.max_bytes bytes).
CsvTable read_csv(const std::string& path, const CsvOptions& options = {});
/// read_csv(path, options).to_tensor(dtype).
Tensor load_csv(const std::string& path, const CsvOptions& options = {}, DType dtype = DType::f32);

/// A column chosen by name, or by index (negative counts from the end: -1 is the last).
struct CsvColumn {
  /// The column at `index` (implicit, so that `{.target = 0}` or `{.target = "species"}` reads naturally).
  ///@{
  CsvColumn(int index) : index(index) {}                  // NOLINT: implicit, so that {.target = 0} reads naturally
  CsvColumn(int64_t index) : index(index) {}              // NOLINT
  ///@}
  /// The column called `name` (implicit).
  ///@{
  CsvColumn(std::string name) : name(std::move(name)) {}  // NOLINT
  CsvColumn(const char* name) : name(name) {}             // NOLINT
  ///@}
  int64_t index = 0;  ///< used when `name` is empty; negative counts from the end
  std::string name;  ///< when non-empty, the column is looked up by name
  /// The column's index in `table` (checked); throws DatasetError.
  int64_t resolve(const CsvTable& table) const;
};

/// Which columns of a table become a dataset's targets and features.
struct CsvDatasetOptions {
  CsvColumn target = -1;              ///< the target column (default: the last)
  DType target_dtype = DType::i64;    ///< int64 class labels (each value must be an integer), or f32 / f64
  std::vector<CsvColumn> features{};  ///< the feature columns in this order; empty: all but the target
  DType feature_dtype = DType::f32;   ///< f32 or f64
};

/// A dataset of x [rows, features] and y [rows] from a table. Class labels (int64 targets) must be
/// integers; the error names the line and column of the first that is not. Throws DatasetError for
/// a table without rows, an unknown or repeated column, or a target among the features.
std::shared_ptr<TensorDataset> csv_dataset(const CsvTable& table, const CsvDatasetOptions& options = {});
/// csv_dataset(read_csv(path, csv), options).
std::shared_ptr<TensorDataset> load_csv_dataset(const std::string& path, const CsvDatasetOptions& options = {},
                                                const CsvOptions& csv = {});

/// Writes a 1-D ([rows]) or 2-D ([rows, cols]) tensor as CSV, atomically, with a header row when
/// `names` is given (one name per column; names holding the delimiter, quotes or line breaks are
/// quoted; names that all read as numbers need CsvHeader::present to be read back as a header). Values are written so that read_csv gives them back exactly: the shortest text that
/// round-trips (float32 as float32), int64 as integers, bool as 0 / 1.
void write_csv(const std::string& path, const Tensor& table, const std::vector<std::string>& names = {},
               char delimiter = ',');

}  // namespace tapegrad::datasets
