#include "metadistill/data/table.h"

#include <gtest/gtest.h>

#include "metadistill/data/npy.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// 40 rows: two features, the class ("a"/"b") decided by the first; a constant third column.
std::string csv_rows() {
  std::string s = "x1, x2,species,const\n";
  for (int i = 0; i < 40; ++i)
    s += fmt::format("{},{},{},7\n", i * 0.5, 100 + (i % 7), i < 20 ? "a" : "b");
  return s;
}

}  // namespace

TEST(Table, CsvBecomesAStandardizedBundle) {
  TempDir dir("table");
  write_file_atomic(dir / "rows.csv", csv_rows() + "\n");  // a trailing blank line is fine
  TableOptions o(dir / "rows.csv", "species");
  o.test_rows(8).val_rows(4).seeded(3);
  const DataBundle b = load_table(o);
  EXPECT_EQ(b.num_classes, 2);
  EXPECT_EQ(b.pool.size(), 32);
  EXPECT_EQ(b.test.size(), 8);
  EXPECT_EQ(b.val_idx.numel(), 4);
  EXPECT_EQ(b.pool.x.sizes(), (std::vector<int64_t>{32, 3}));
  EXPECT_EQ(b.pool.x.scalar_type(), torch::kFloat);
  // Standardized on D_train: mean 0, std 1 there, not on the other rows; the constant column
  // only centred.
  const auto train_x = b.pool.x.index_select(0, b.train_idx);
  EXPECT_LT(train_x.mean(0).abs().max().item<double>(), 1e-5);
  EXPECT_NEAR(train_x.select(1, 0).std(/*unbiased=*/false).item<double>(), 1.0, 1e-5);
  EXPECT_EQ(b.pool.x.select(1, 2).abs().max().item<float>(), 0.0f);
  // Labels follow the feature: "a" = 0 where x1 < 10.
  const auto all_x1 = torch::cat({b.pool.x.select(1, 0), b.test.x.select(1, 0)});
  const auto all_y = torch::cat({b.pool.y, b.test.y});
  const auto order = std::get<1>(all_x1.sort());
  EXPECT_TRUE(all_y.index_select(0, order).slice(0, 0, 20).eq(0).all().item<bool>());
  EXPECT_TRUE(all_y.index_select(0, order).slice(0, 20).eq(1).all().item<bool>());
  // Same seed, same bundle.
  EXPECT_EQ(load_table(o).fingerprint, b.fingerprint);
}

TEST(Table, NpyWithALabelColumnAndASeparateTestFile) {
  TempDir dir("tablenpy");
  auto rows = torch::randn({30, 4}, torch::kDouble);
  rows.select(1, 2).copy_((rows.select(1, 0) > 0).to(torch::kDouble) * 3 + 1);  // labels 1, 4
  write_npy(rows.to(torch::kFloat), dir / "train.npy");
  write_npy(rows.slice(0, 0, 6).to(torch::kFloat), dir / "test.npy");
  TableOptions o(dir / "train.npy", "2");
  o.tested_on(dir / "test.npy").val_rows(3);
  const DataBundle b = load_table(o);
  EXPECT_EQ(b.num_classes, 2);
  EXPECT_EQ(b.pool.size(), 30);
  EXPECT_EQ(b.test.size(), 6);
  EXPECT_TRUE(b.test.y.equal((rows.select(1, 0).slice(0, 0, 6) > 0).to(torch::kLong)));
  expect_error([&] { load_table(TableOptions(dir / "train.npy", "label")); },
               {"train.npy", "data.label 'label'", "column index in [0, 4)"});
  rows[5][1] = std::nan("");
  write_npy(rows, dir / "nan.npy");
  expect_error([&] { load_table(TableOptions(dir / "nan.npy", "2")); },
               {"nan.npy", "row 5, column 1: nan"});
  rows[5][1] = 0.0;
  rows[4][2] = 1.5;
  write_npy(rows, dir / "half.npy");
  expect_error([&] { load_table(TableOptions(dir / "half.npy", "2")); },
               {"half.npy", "row 4: label 1.5", "not a whole number"});
}

TEST(Table, CsvErrorsNameTheLine) {
  TempDir dir("tablebad");
  const auto with_line = [&](const std::string& name, int line, const std::string& text) {
    std::string s = csv_rows();
    size_t pos = 0;
    for (int i = 1; i < line; ++i) pos = s.find('\n', pos) + 1;
    s.replace(pos, s.find('\n', pos) - pos, text);
    write_file_atomic(dir / name, s);
    return (dir / name).string();
  };
  const auto word = with_line("word.csv", 5, "1.5,abc,a,7");
  expect_error([&] { read_csv_table(word, "species"); },
               {word, "line 5, column 'x2': 'abc' is not a number"});
  const auto cells = with_line("cells.csv", 9, "1.5,2,a");
  expect_error([&] { read_csv_table(cells, "species"); }, {cells, "line 9: 3 cells, the header has 4"});
  const auto nan = with_line("nan.csv", 12, "nan,2,a,7");
  expect_error([&] { read_csv_table(nan, "species"); },
               {nan, "line 12, column 'x1': nan", "finite"});
  write_file_atomic(dir / "rows.csv", csv_rows());
  expect_error([&] { read_csv_table(dir / "rows.csv", "kind"); },
               {"rows.csv", "no label column 'kind'", "x1, x2, species, const"});
  write_file_atomic(dir / "test.csv", "x1,x2,species,const\n1,2,a,7\n3,4,c,7\n");
  TableOptions o(dir / "rows.csv", "species");
  o.tested_on(dir / "test.csv");
  expect_error([&] { load_table(o); }, {"test.csv", "line 3", "label 'c' is not a class"});
  expect_error([&] { load_table(TableOptions(dir / "rows.txt", "species")); },
               {"rows.txt", "expected .csv or .npy"});
}
