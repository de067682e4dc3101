#pragma once
/// Table data (issue 15): a user's own rows of numeric features with a class label, from a CSV
/// file or a .npy array, for the zoo's vector students (logreg, mlp) — the synthetic
/// experiment's kind of problem on one's own data.
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/data/dataset.h"

namespace metadistill {

/// Rows as read from one file: features and raw labels, before any split or scaling.
struct TableRows {
  /// Feature column names (CSV header; "c<i>" for .npy), without the label column.
  std::vector<std::string> columns;
  torch::Tensor x;                  // [N, F] float64
  std::vector<std::string> labels;  // [N] the label cells as text ("3", "setosa")
  /// Line of each row in the file (CSV: 1-based, the header is line 1; .npy: the row index).
  std::vector<int64_t> lines;
};

/// Reads a CSV file: a header row of column names, then one row per line, comma-separated,
/// every cell numeric except the label column's (any text: a class name or number). Blank lines
/// are skipped. Throws `Error` naming the file and line: a wrong cell count, a non-numeric or
/// NaN/Inf cell (with its column), a label column missing from the header, quoted cells.
TableRows read_csv_table(const std::filesystem::path& path, const std::string& label);

/// Reads a 2-D numeric .npy array; `label` is a column index. Throws `Error` naming the file and
/// the row for a NaN/Inf, or a label that is not a whole number.
TableRows read_npy_table(const std::filesystem::path& path, const std::string& label);

/// Reads either kind by the file's extension (.csv, .npy).
TableRows read_table(const std::filesystem::path& path, const std::string& label);

/// How a table becomes a data bundle.
struct TableOptions {
  /// The file of rows and its label column (a CSV header name; for .npy a column index).
  std::filesystem::path file;
  std::string label;
  /// Rows of the test set from a second file of the same columns; empty = `test_size` rows of
  /// `file`, drawn with `split_seed`.
  std::filesystem::path test_file;
  /// Test rows drawn from `file` when there is no test file; -1 = a fifth of the rows.
  int64_t test_size = -1;
  /// Validation rows drawn from the rest (the pool); -1 = a tenth of the pool.
  int64_t val_size = -1;
  uint64_t split_seed = 0;
  /// Use only the first N pool / test rows (0 = all).
  int64_t limit_train = 0, limit_test = 0;

  explicit TableOptions(std::filesystem::path f, std::string l)
      : file(std::move(f)), label(std::move(l)) {}
  /// A separate file of test rows.
  TableOptions& tested_on(std::filesystem::path f) { test_file = std::move(f); return *this; }
  TableOptions& test_rows(int64_t n) { test_size = n; return *this; }
  TableOptions& val_rows(int64_t n) { val_size = n; return *this; }
  TableOptions& seeded(uint64_t s) { split_seed = s; return *this; }
};

/// The bundle of a table: classes are the distinct labels of the training file (numerically
/// sorted when all are numbers, else by text); features standardized with the mean and standard
/// deviation of D_train (a constant column is only centred); the teacher sees the same features
/// and trains on D_train. Throws `Error` naming the file and line of a test label the training
/// file lacks, and for too few rows for the splits.
DataBundle load_table(const TableOptions& options);

}  // namespace metadistill
