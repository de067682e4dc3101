#include "metadistill/data/table.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>

#include "metadistill/data/npy.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) cells.push_back(trim(cell));
  if (!line.empty() && line.back() == ',') cells.push_back("");
  return cells;
}

// A whole cell as a number; false when anything but the number is in it.
bool parse_number(const std::string& cell, double& out) {
  if (cell.empty()) return false;
  char* end = nullptr;
  out = std::strtod(cell.c_str(), &end);
  return end == cell.c_str() + cell.size();
}

}  // namespace

TableRows read_csv_table(const fs::path& path, const std::string& label) {
  const std::string file = path.string();
  check(fs::exists(path), "table {}: no such file", file);
  std::istringstream in(read_file(path));
  std::string line;
  int64_t line_no = 0;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    ++line_no;
    if (!trim(line).empty()) header = split_cells(line);
  }
  check(!header.empty(), "table {}: empty file; expected a header row of column names", file);
  for (const auto& h : header)
    check(h.find('"') == std::string::npos,
          "table {}: line {}: quoted cells are not supported ({})", file, line_no, h);
  const auto label_it = std::find(header.begin(), header.end(), label);
  check(label_it != header.end(), "table {}: no label column '{}' in the header ({})", file, label,
        fmt::join(header, ", "));
  const size_t label_col = static_cast<size_t>(label_it - header.begin());
  TableRows t;
  for (size_t c = 0; c < header.size(); ++c)
    if (c != label_col) t.columns.push_back(header[c]);
  std::vector<double> values;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const auto cells = split_cells(line);
    check(cells.size() == header.size(), "table {}: line {}: {} cells, the header has {}", file,
          line_no, cells.size(), header.size());
    for (size_t c = 0; c < cells.size(); ++c) {
      check(cells[c].find('"') == std::string::npos,
            "table {}: line {}: quoted cells are not supported ({})", file, line_no, cells[c]);
      if (c == label_col) {
        check(!cells[c].empty(), "table {}: line {}: empty label in column '{}'", file, line_no,
              label);
        t.labels.push_back(cells[c]);
        continue;
      }
      double v = 0;
      check(parse_number(cells[c], v), "table {}: line {}, column '{}': '{}' is not a number",
            file, line_no, header[c], cells[c]);
      check(std::isfinite(v), "table {}: line {}, column '{}': {} (expected a finite number)",
            file, line_no, header[c], cells[c]);
      values.push_back(v);
    }
    t.lines.push_back(line_no);
  }
  const int64_t n = static_cast<int64_t>(t.labels.size());
  check(n > 0, "table {}: a header but no rows", file);
  t.x = torch::from_blob(values.data(), {n, static_cast<int64_t>(t.columns.size())},
                         torch::kDouble)
            .clone();
  return t;
}

TableRows read_npy_table(const fs::path& path, const std::string& label) {
  const std::string file = path.string();
  torch::Tensor a = read_npy(path);
  check(a.dim() == 2 && a.size(0) > 0 && a.size(1) >= 2,
        "table {}: shape {}: expected a 2-D array of rows, a label column and features", file,
        a.sizes());
  a = a.to(torch::kDouble);
  char* end = nullptr;
  const long col = std::strtol(label.c_str(), &end, 10);
  check(!label.empty() && end == label.c_str() + label.size() && col >= 0 && col < a.size(1),
        "table {}: data.label '{}': for a .npy table, expected a column index in [0, {})", file,
        label, a.size(1));
  TableRows t;
  std::vector<int64_t> keep;
  for (int64_t c = 0; c < a.size(1); ++c)
    if (c != col) {
      keep.push_back(c);
      t.columns.push_back(fmt::format("c{}", c));
    }
  const auto bad = torch::nonzero(~torch::isfinite(a));
  if (bad.size(0) > 0)
    fail("table {}: row {}, column {}: {} (expected finite numbers)", file,
         bad[0][0].item<int64_t>(), bad[0][1].item<int64_t>(),
         a[bad[0][0].item<int64_t>()][bad[0][1].item<int64_t>()].item<double>());
  t.x = a.index_select(1, torch::tensor(keep, torch::kLong)).contiguous();
  const auto labels = a.select(1, col);
  for (int64_t i = 0; i < a.size(0); ++i) {
    const double v = labels[i].item<double>();
    check(v == std::floor(v), "table {}: row {}: label {} in column {} is not a whole number",
          file, i, v, col);
    t.labels.push_back(fmt::format("{}", static_cast<int64_t>(v)));
    t.lines.push_back(i);
  }
  return t;
}

TableRows read_table(const fs::path& path, const std::string& label) {
  const std::string ext = path.extension().string();
  if (ext == ".csv") return read_csv_table(path, label);
  if (ext == ".npy") return read_npy_table(path, label);
  fail("table {}: unknown extension '{}': expected .csv or .npy", path.string(), ext);
}

DataBundle load_table(const TableOptions& o) {
  const std::string file = o.file.string();
  TableRows rows = read_table(o.file, o.label);
  const int64_t n = rows.x.size(0);

  // Classes: the training file's distinct labels, numerically sorted when all are numbers.
  std::vector<std::string> classes = rows.labels;
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  const bool numeric = std::all_of(classes.begin(), classes.end(), [](const std::string& s) {
    double v = 0;
    return parse_number(s, v);
  });
  if (numeric)
    std::sort(classes.begin(), classes.end(), [](const std::string& a, const std::string& b) {
      return std::strtod(a.c_str(), nullptr) < std::strtod(b.c_str(), nullptr);
    });
  check(classes.size() >= 2, "table {}: label column '{}' has one class ({}); expected >= 2",
        file, o.label, classes.empty() ? "" : classes[0]);
  std::map<std::string, int64_t> class_of;
  for (size_t i = 0; i < classes.size(); ++i) class_of[classes[i]] = static_cast<int64_t>(i);
  const auto labels_of = [&](const TableRows& r, const std::string& where) {
    std::vector<int64_t> y;
    for (size_t i = 0; i < r.labels.size(); ++i) {
      const auto it = class_of.find(r.labels[i]);
      check(it != class_of.end(), "table {}: line {}: label '{}' is not a class of {} ({})",
            where, r.lines[i], r.labels[i], file, fmt::join(classes, ", "));
      y.push_back(it->second);
    }
    return torch::tensor(y, torch::kLong);
  };
  const torch::Tensor y_all = labels_of(rows, file);

  torch::Tensor pool_x, pool_y, test_x, test_y;
  if (!o.test_file.empty()) {
    TableRows test = read_table(o.test_file, o.label);
    check(test.columns == rows.columns, "table {}: columns ({}) differ from {}'s ({})",
          o.test_file.string(), fmt::join(test.columns, ", "), file, fmt::join(rows.columns, ", "));
    pool_x = rows.x;
    pool_y = y_all;
    test_x = test.x;
    test_y = labels_of(test, o.test_file.string());
  } else {
    const int64_t n_test = o.test_size >= 0 ? o.test_size : n / 5;
    check(n_test >= 1 && n_test < n,
          "table {}: test_size {} must lie in [1, {}) ({} rows, no test_file)", file, n_test, n, n);
    // Its own stream of the seed, so that the test rows do not move with val_size.
    auto [pool_ids, test_ids] = random_split(n, n_test, o.split_seed + 0x7e57);
    pool_x = rows.x.index_select(0, pool_ids);
    pool_y = y_all.index_select(0, pool_ids);
    test_x = rows.x.index_select(0, test_ids);
    test_y = y_all.index_select(0, test_ids);
  }
  if (o.limit_train > 0 && o.limit_train < pool_x.size(0)) {
    pool_x = pool_x.slice(0, 0, o.limit_train);
    pool_y = pool_y.slice(0, 0, o.limit_train);
  }
  if (o.limit_test > 0 && o.limit_test < test_x.size(0)) {
    test_x = test_x.slice(0, 0, o.limit_test);
    test_y = test_y.slice(0, 0, o.limit_test);
  }
  const int64_t n_pool = pool_x.size(0);
  const int64_t n_val = o.val_size >= 0 ? o.val_size : n_pool / 10;
  check(n_val >= 0 && n_val < n_pool, "table {}: val_size {} must lie in [0, {}) (the pool holds {} rows)",
        file, n_val, n_pool, n_pool);

  DataBundle b;
  b.name = "table:" + o.file.filename().string();
  b.num_classes = static_cast<int64_t>(classes.size());
  std::tie(b.train_idx, b.val_idx) = random_split(n_pool, n_val, o.split_seed);
  // Standardization from D_train only: validation and test rows stay unseen.
  const auto train_x = pool_x.index_select(0, b.train_idx);
  const auto mean = train_x.mean(0);
  auto scale = (train_x - mean).pow(2).mean(0).sqrt();  // population standard deviation
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  b.pool.x = ((pool_x - mean) / scale).to(torch::kFloat).contiguous();
  b.pool.y = pool_y.contiguous();
  b.test.x = ((test_x - mean) / scale).to(torch::kFloat).contiguous();
  b.test.y = test_y.contiguous();
  b.teacher_train = b.pool.select(b.train_idx);
  b.pool.validate(b.num_classes, file);
  b.test.validate(b.num_classes, o.test_file.empty() ? file : o.test_file.string());
  b.finalize();
  return b;
}

}  // namespace metadistill
