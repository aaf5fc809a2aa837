#include "datasets/csv.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <set>

#include "autograd/file_io.hpp"

namespace tapegrad::datasets {
namespace {

// One field as read: its text (quotes removed) and whether it was quoted.
struct Field {
  std::string text;
  bool quoted = false;
};

std::string quote_excerpt(const std::string& s) {
  std::string out = "'";
  out.append(s, 0, 40);
  if (s.size() > 40)
    out.append("...' (").append(std::to_string(s.size())).append(" characters)");
  else
    out += '\'';
  return out;
}

class Parser {
 public:
  Parser(const std::string& text, const CsvOptions& options, const std::string& source)
      : s_(text), o_(options), source_(source) {
    if (o_.delimiter == '"' || o_.delimiter == '\n' || o_.delimiter == '\r')
      throw DatasetError(source_ + ": the delimiter cannot be a quote or a line break");
    if (s_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
  }

  // The next non-empty record and the line it starts on; false at the end.
  bool next(std::vector<Field>& fields, int64_t& line) {
    while (pos_ < s_.size()) {
      fields.clear();
      line = line_;
      read_record(fields);
      const bool blank = fields.size() == 1 && !fields[0].quoted && fields[0].text.empty();
      if (!blank) return true;
    }
    return false;
  }

 private:
  bool space(char c) const { return (c == ' ' || c == '\t') && c != o_.delimiter; }

  void read_record(std::vector<Field>& fields) {
    for (;;) {
      Field f;
      while (pos_ < s_.size() && space(s_[pos_])) ++pos_;
      if (pos_ < s_.size() && s_[pos_] == '"') {
        f.quoted = true;
        const int64_t start = line_;
        for (++pos_;; ++pos_) {
          if (pos_ >= s_.size())
            throw DatasetError(source_ + ", line " + std::to_string(start) + ": a quoted field is never closed");
          if (s_[pos_] == '"') {
            if (pos_ + 1 < s_.size() && s_[pos_ + 1] == '"') {
              f.text += '"';
              ++pos_;
            } else {
              ++pos_;
              break;
            }
          } else {
            if (s_[pos_] == '\n') ++line_;
            f.text += s_[pos_];
          }
        }
        while (pos_ < s_.size() && (space(s_[pos_]) || s_[pos_] == '\r')) ++pos_;
        if (pos_ < s_.size() && s_[pos_] != o_.delimiter && s_[pos_] != '\n')
          throw DatasetError(source_ + ", line " + std::to_string(line_) + ", column " +
                             std::to_string(fields.size() + 1) + ": text after the closing quote of a field");
      } else {
        const size_t begin = pos_;
        while (pos_ < s_.size() && s_[pos_] != o_.delimiter && s_[pos_] != '\n') {
          if (s_[pos_] == '"')
            throw DatasetError(source_ + ", line " + std::to_string(line_) + ", column " +
                               std::to_string(fields.size() + 1) +
                               ": a quote inside an unquoted field (quote the whole field and double the quote)");
          ++pos_;
        }
        size_t end = pos_;
        while (end > begin && (space(s_[end - 1]) || s_[end - 1] == '\r')) --end;
        f.text = s_.substr(begin, end - begin);
      }
      fields.push_back(std::move(f));
      if (pos_ >= s_.size()) return;
      if (s_[pos_] == '\n') {
        ++pos_;
        ++line_;
        return;
      }
      ++pos_;  // the delimiter
    }
  }

  const std::string& s_;
  const CsvOptions& o_;
  const std::string& source_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

// A number as std::from_chars reads it, with an optional '+' and spaces around it (inside quotes).
bool parse_number(const std::string& text, double& out) {
  const char* b = text.data();
  const char* e = b + text.size();
  while (b != e && (*b == ' ' || *b == '\t')) ++b;
  while (e != b && (e[-1] == ' ' || e[-1] == '\t')) --e;
  if (b != e && *b == '+' && ++b != e && *b == '-') return false;  // "+-1"
  const auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e;
}

std::string where(const CsvTable& t, int64_t line, int64_t col) {
  std::string w = t.source + ", line " + std::to_string(line) + ", column " + std::to_string(col + 1);
  if (!t.names.empty()) w += " ('" + t.names[static_cast<size_t>(col)] + "')";
  return w;
}

void check_floating(DType d, const char* what) {
  if (d != DType::f32 && d != DType::f64)
    throw DatasetError(std::string("csv_dataset: ") + what + " must be float32 or float64, not " + dtype_name(d));
}

// Columns `cols` of every row of `t` into `out` ([rows, cols.size()] of any dtype but bool), checking
// that int64 values are whole numbers.
void fill(const CsvTable& t, const std::vector<int64_t>& cols, Tensor& out) {
  const size_t k = cols.size();
  for (int64_t r = 0; r < t.rows; ++r) {
    for (size_t j = 0; j < k; ++j) {
      const double v = t.at(r, cols[j]);
      const size_t i = static_cast<size_t>(r) * k + j;
      switch (out.dtype()) {
        case DType::f32:
          out.mutable_data<float>()[i] = static_cast<float>(v);
          break;
        case DType::f64:
          out.mutable_data<double>()[i] = v;
          break;
        case DType::i64:
          if (!(std::isfinite(v) && v == std::floor(v) && std::fabs(v) <= 9007199254740992.0))
            throw DatasetError(where(t, t.lines[static_cast<size_t>(r)], cols[j]) + ": " + std::to_string(v) +
                               " is not an integer (int64 values, e.g. class labels, must be whole numbers)");
          out.mutable_data<int64_t>()[i] = static_cast<int64_t>(v);
          break;
        case DType::b8:
          throw DatasetError("csv: cannot convert a table to bool");
      }
    }
  }
}

}  // namespace

CsvTable parse_csv(const std::string& text, const CsvOptions& options, const std::string& source) {
  Parser parser(text, options, source);
  CsvTable t;
  t.source = source;
  std::vector<Field> fields;
  int64_t line = 0, first_line = 0;
  bool first = true;
  while (parser.next(fields, line)) {
    if (first) {
      first = false;
      first_line = line;
      t.cols = static_cast<int64_t>(fields.size());
      // auto_detect: a header when no field is a number; a row mixing names and numbers is data,
      // so that a typo in the first row is reported instead of taken for column names.
      bool header = options.header == CsvHeader::present;
      if (options.header == CsvHeader::auto_detect) {
        header = true;
        bool column_indices = fields.size() >= 2;  // "0,1,…,n−1": pandas' default column names
        for (size_t c = 0; c < fields.size(); ++c) {
          double v;
          if (parse_number(fields[c].text, v)) header = false;
          column_indices = column_indices && fields[c].text == std::to_string(c);
        }
        // Names or data, both silently wrong if guessed: a header of pandas' default names (e.g.
        // DataFrame(array).to_csv(index=False)) would become a sample, a data row 0, 1, … a header.
        if (column_indices)
          throw DatasetError(source + ", line " + std::to_string(line) + ": the first row is 0, 1, …, " +
                             std::to_string(fields.size() - 1) +
                             ", which may be column names (pandas' default) or data; say which with "
                             "CsvOptions::header = CsvHeader::present or CsvHeader::absent");
      }
      if (header) {
        for (const Field& f : fields) t.names.push_back(f.text);
        continue;
      }
    }
    if (static_cast<int64_t>(fields.size()) != t.cols)
      throw DatasetError(source + ", line " + std::to_string(line) + ": " + std::to_string(fields.size()) +
                         " fields, but the first row (line " + std::to_string(first_line) + ") has " +
                         std::to_string(t.cols));
    for (size_t c = 0; c < fields.size(); ++c) {
      double v;
      if (fields[c].text.empty() && options.missing) {
        v = *options.missing;
      } else if (!parse_number(fields[c].text, v)) {
        throw DatasetError(where(t, line, static_cast<int64_t>(c)) + ": " +
                           (fields[c].text.empty() ? std::string("an empty field (set CsvOptions::missing to allow it)")
                                                   : quote_excerpt(fields[c].text) + " is not a number"));
      }
      t.values.push_back(v);
    }
    t.lines.push_back(line);
    ++t.rows;
  }
  return t;
}

CsvTable read_csv(const std::string& path, const CsvOptions& options) {
  io::ReadFile file(path);
  if (!file.ok()) throw DatasetError("tapegrad::datasets::read_csv: " + file.error());
  const std::string source = "CSV file '" + path + "'";
  if (file.size() > options.max_bytes)
    throw DatasetError(source + ": " + std::to_string(file.size()) + " bytes, over the limit of " +
                       std::to_string(options.max_bytes) + " (CsvOptions::max_bytes)");
  std::string text(static_cast<size_t>(file.size()), '\0');
  if (!text.empty() && !file.read_at(0, text.data(), text.size())) throw DatasetError(source + ": " + file.error());
  return parse_csv(text, options, source);
}

Tensor load_csv(const std::string& path, const CsvOptions& options, DType dtype) {
  return read_csv(path, options).to_tensor(dtype);
}

int64_t CsvTable::column(const std::string& name) const {
  int64_t found = -1;
  std::string all;
  for (size_t c = 0; c < names.size(); ++c) {
    all += (all.empty() ? "'" : ", '") + names[c] + "'";
    if (names[c] != name) continue;
    if (found >= 0)
      throw DatasetError(source + ": two columns are called '" + name + "' (" + std::to_string(found + 1) + " and " +
                         std::to_string(c + 1) + "); choose by index");
    found = static_cast<int64_t>(c);
  }
  if (found < 0)
    throw DatasetError(source + ": no column '" + name + "' " +
                       (names.empty() ? std::string("(the file has no header row; choose columns by index)")
                                      : "(the columns are " + all + ")"));
  return found;
}

Tensor CsvTable::to_tensor(DType dtype) const {
  Tensor out = Tensor::empty({rows, cols}, dtype);
  std::vector<int64_t> all(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) all[static_cast<size_t>(c)] = c;
  fill(*this, all, out);
  return out;
}

int64_t CsvColumn::resolve(const CsvTable& table) const {
  if (!name.empty()) return table.column(name);
  const int64_t c = index < 0 ? index + table.cols : index;
  if (c < 0 || c >= table.cols)
    throw DatasetError(table.source + ": column index " + std::to_string(index) + " is out of range for " +
                       std::to_string(table.cols) + " columns");
  return c;
}

std::shared_ptr<TensorDataset> csv_dataset(const CsvTable& table, const CsvDatasetOptions& options) {
  if (table.rows == 0) throw DatasetError(table.source + ": no data rows");
  check_floating(options.feature_dtype, "feature_dtype");
  if (options.target_dtype != DType::i64) check_floating(options.target_dtype, "target_dtype (or int64)");
  const int64_t target = options.target.resolve(table);
  std::vector<int64_t> features;
  if (options.features.empty()) {
    for (int64_t c = 0; c < table.cols; ++c)
      if (c != target) features.push_back(c);
  } else {
    std::set<int64_t> seen;
    for (const CsvColumn& col : options.features) {
      const int64_t c = col.resolve(table);
      if (c == target)
        throw DatasetError(table.source + ": the target column " + std::to_string(c + 1) + " is also a feature");
      if (!seen.insert(c).second)
        throw DatasetError(table.source + ": column " + std::to_string(c + 1) + " is chosen twice");
      features.push_back(c);
    }
  }
  if (features.empty()) throw DatasetError(table.source + ": no feature columns (the table has one column)");
  Tensor x = Tensor::empty({table.rows, static_cast<int64_t>(features.size())}, options.feature_dtype);
  fill(table, features, x);
  Tensor y = Tensor::empty({table.rows, 1}, options.target_dtype);
  fill(table, {target}, y);
  return std::make_shared<TensorDataset>(x, y.reshape({table.rows}));
}

std::shared_ptr<TensorDataset> load_csv_dataset(const std::string& path, const CsvDatasetOptions& options,
                                                const CsvOptions& csv) {
  return csv_dataset(read_csv(path, csv), options);
}

void write_csv(const std::string& path, const Tensor& table, const std::vector<std::string>& names, char delimiter) {
  const std::string who = "tapegrad::datasets::write_csv '" + path + "'";
  if (table.dim() != 1 && table.dim() != 2)
    throw DatasetError(who + ": expected a 1-D or 2-D tensor, got shape " + tapegrad::to_string(table.shape()));
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r')
    throw DatasetError(who + ": the delimiter cannot be a quote or a line break");
  const int64_t rows = table.size(0), cols = table.dim() == 2 ? table.size(1) : 1;
  if (cols == 0)
    throw DatasetError(who + ": the table has no columns (shape " + tapegrad::to_string(table.shape()) + ")");
  if (!names.empty() && static_cast<int64_t>(names.size()) != cols)
    throw DatasetError(who + ": " + std::to_string(names.size()) + " names for " + std::to_string(cols) + " columns");
  std::string out;
  for (size_t c = 0; c < names.size(); ++c) {
    const std::string& n = names[c];
    const bool quote = n.find_first_of(std::string("\"\r\n") + delimiter) != std::string::npos || n.empty() ||
                       n.front() == ' ' || n.back() == ' ';
    if (c) out += delimiter;
    if (!quote) {
      out += n;
      continue;
    }
    out += '"';
    for (char ch : n) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    out += '"';
  }
  if (!names.empty()) out += '\n';
  char buf[64];
  for (int64_t i = 0; i < rows * cols; ++i) {
    std::to_chars_result r{};
    switch (table.dtype()) {
      case DType::f32:
        r = std::to_chars(buf, buf + sizeof buf, table.data<float>()[i]);
        break;
      case DType::f64:
        r = std::to_chars(buf, buf + sizeof buf, table.data<double>()[i]);
        break;
      case DType::i64:
        r = std::to_chars(buf, buf + sizeof buf, table.data<int64_t>()[i]);
        break;
      case DType::b8:
        r = std::to_chars(buf, buf + sizeof buf, int{table.data<bool>()[i]});
        break;
    }
    out.append(buf, r.ptr);
    out += (i + 1) % cols == 0 ? '\n' : delimiter;
  }
  try {
    io::atomic_write(path, {{out.data(), out.size()}}, "tapegrad::datasets::write_csv");
  } catch (const std::runtime_error& e) {
    throw DatasetError(e.what());
  }
}

}  // namespace tapegrad::datasets
