// libFuzzer harness for the CSV reader (datasets/csv.cpp). The first byte picks the options (bits
// 0-1: delimiter ',', ';', '\t' or ' '; bits 2-3: header auto-detected, present or absent; bit 4:
// empty fields allowed as NaN); the rest is the file. Any input must either give a table whose sizes
// agree (rows · cols values, one line number per row, increasing; names empty or one per column)
// and that converts to a tensor and, when it has two columns or more, to a dataset — or throw
// DatasetError.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "datasets/csv.hpp"
#include "tests/fuzz/scratch.hpp"

using namespace tapegrad::datasets;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  CsvOptions options;
  options.delimiter = ",;\t "[data[0] & 3];
  const int header = (data[0] >> 2) & 3;
  options.header = header == 1 ? CsvHeader::present : header == 2 ? CsvHeader::absent : CsvHeader::auto_detect;
  if (data[0] & 16) options.missing = std::nan("");
  const std::string& path = tapegrad::fuzz::write_scratch("csv", data + 1, size - 1);
  try {
    const CsvTable t = read_csv(path, options);
    if (t.values.size() != static_cast<size_t>(t.rows * t.cols)) std::abort();
    if (t.lines.size() != static_cast<size_t>(t.rows)) std::abort();
    if (!t.names.empty() && t.names.size() != static_cast<size_t>(t.cols)) std::abort();
    for (size_t i = 1; i < t.lines.size(); ++i)
      if (t.lines[i] <= t.lines[i - 1]) std::abort();
    if (t.to_tensor().numel() != t.rows * t.cols) std::abort();
    if (t.rows > 0 && t.cols >= 2) {
      auto d = csv_dataset(t, {.target = 0, .target_dtype = tapegrad::DType::f64});
      if (d->size() != t.rows || d->x().size(1) != t.cols - 1) std::abort();
      try {
        csv_dataset(t, {.target = -1});  // int64 labels: refused unless every value is a whole number
      } catch (const DatasetError&) {
      }
    }
  } catch (const DatasetError&) {
    // rejected with a message: the expected outcome for a malformed table
  }
  return 0;
}
