#include "metadistill/experiment/distill.h"

#include <gtest/gtest.h>

#include <fstream>

#include "metadistill/data/image_codec.h"
#include "metadistill/data/npy.h"
#include "metadistill/util/files.h"
#include "metadistill/util/error.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {
Config quick_synthetic(const TempDir& dir) {
  Config c = default_config();
  c.out = dir.path().string();
  c.teacher.trainer.epochs = 5000;
  c.student.trainer.epochs = 400;
  c.resolve_paths();
  return c;
}
}  // namespace

// End to end on the authors' synthetic data: teacher trained when missing, cached logits,
// `none` and a distilling method, result files written.
TEST(Distill, IntegrationSyntheticEndToEnd) {
  TempDir dir("e2e");
  Config c = quick_synthetic(dir);
  Prepared p = prepare(c);
  EXPECT_TRUE(std::filesystem::exists(c.teacher_file));
  EXPECT_GT(p.teacher_test_accuracy, 0.6);
  auto none = run_distill(c, p, "none", 0, dir / "none");
  auto naive = run_distill(c, p, "fixed", 0, dir / "fixed");
  EXPECT_TRUE(std::filesystem::exists(dir / "none" / "result.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "none" / "metrics.csv"));
  EXPECT_TRUE(std::filesystem::exists(dir / "fixed" / "student.pt"));
  // The paper's numbers on this data: none 0.63; λ1 = 0.5, T = 1 gives 0.77 (DESIGN.md 3.7).
  EXPECT_NEAR(none.train.final_test_accuracy, 0.63, 0.04);
  EXPECT_GT(naive.train.final_test_accuracy, none.train.final_test_accuracy + 0.05);
  // A second prepare reuses the teacher file and its cache.
  Prepared again = prepare(c);
  EXPECT_TRUE(again.teacher_logits.equal(p.teacher_logits));
}

// A user's own image folder through the config: classes by folder name, the configured size,
// bad files skipped or fatal as the config says, odd sizes resized or rejected.
TEST(Distill, LoadsAGeneralImageFolderWithTheConfiguredPolicies) {
  TempDir dir("folderdata");
  const auto root = dir / "pets";
  for (const std::string split : {"train", "test"})
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < 6; ++i) {
        auto img = torch::full({3, 12, 10}, 40 * c + 5 * i, torch::kUInt8);
        write_image(img, root / split / (c == 0 ? "cat" : "dog") / fmt::format("{}.png", i));
      }
  write_image(torch::zeros({3, 20, 20}, torch::kUInt8), root / "train" / "dog" / "big.png");
  {
    std::ofstream junk(root / "train" / "cat" / "notes.txt");
    junk << "not an image";
  }
  DataConfig c;
  c.name = "folder";
  c.root = root.string();
  c.image_size = {12, 10};
  c.val_size = 2;
  expect_error([&] { load_data(c, (dir / "cache").string()); }, {"notes.txt"});
  c.on_bad_image = "fail";
  c.on_size_mismatch = "reject";
  std::filesystem::remove(root / "train" / "cat" / "notes.txt");
  expect_error([&] { load_data(c, (dir / "cache").string()); }, {"big.png", "20x20"});
  {
    std::ofstream junk(root / "train" / "cat" / "notes.txt");
    junk << "not an image";
  }
  c.on_bad_image = "skip";  // a rejected size is a bad image too: skipped
  EXPECT_EQ(load_data(c, (dir / "cache").string()).pool.size(), 12);
  c.on_size_mismatch = "resize";
  DataBundle b = load_data(c, (dir / "cache").string());
  EXPECT_EQ(b.num_classes, 2);
  EXPECT_EQ(b.pool.size(), 13);  // 12 + the resized one; notes.txt skipped
  EXPECT_EQ(b.val_idx.numel(), 2);
  EXPECT_EQ(b.test.size(), 12);
  EXPECT_EQ(b.pool.x.sizes(), (std::vector<int64_t>{13, 3, 12, 10}));
  // Normalization from D_train: the training rows have mean ~0 per channel.
  auto train_x = b.pool.x.index_select(0, b.train_idx);
  EXPECT_NEAR(train_x.mean().item<double>(), 0.0, 1e-4);
  c.mean = {0.5, 0.5, 0.5};
  c.std = {0.25, 0.25, 0.25};
  DataBundle given = load_data(c, (dir / "cache").string());
  const double first = given.test.x[0][0][0][0].item<double>();
  EXPECT_NEAR(first, (0.0 / 255.0 - 0.5) / 0.25, 1e-5);
}

// `teacher: {logits: FILE}`: the file's rows are the teacher's outputs (pool, then test), its
// hash the teacher's identity; no zoo teacher is trained.
TEST(Distill, PrecomputedTeacherLogitsReplaceTheTeacher) {
  TempDir dir("logits-teacher");
  Config c = quick_synthetic(dir);
  const DataBundle data = load_data(c.data);
  const int64_t pool = data.pool.size(), test = data.test.size();
  auto logits = torch::randn({pool + test, 2});
  // The test rows' teacher is right on the first 10 test rows, wrong on the rest.
  for (int64_t i = 0; i < test; ++i) {
    const int64_t y = data.test.y[i].item<int64_t>();
    logits[pool + i][y] = i < 10 ? 5.0 : -5.0;
    logits[pool + i][1 - y] = 0.0;
  }
  c.teacher_logits = (dir / "teacher-logits.npy").string();
  write_npy(logits, c.teacher_logits);
  Prepared p = prepare(c);
  EXPECT_FALSE(std::filesystem::exists(c.teacher_file));
  EXPECT_TRUE(p.teacher_logits.equal(logits.slice(0, 0, pool)));
  EXPECT_NEAR(p.teacher_test_accuracy, 10.0 / test, 1e-12);
  EXPECT_EQ(p.teacher_hash, hash_string(read_file(c.teacher_logits)));
  const auto r = run_distill(c, p, "fixed", 0, dir / "fixed");
  EXPECT_TRUE(std::isfinite(r.train.final_test_accuracy));

  // Another file: another teacher identity, so stored runs are not reused for it.
  write_npy(logits * 2, c.teacher_logits);
  EXPECT_NE(prepare(c).teacher_hash, p.teacher_hash);

  // Both kinds of external teacher at once, or a missing file, fail before any work.
  c.teacher_torchscript = (dir / "teacher.ts").string();
  expect_error([&] { c.validate(); }, {"teacher.torchscript and teacher.logits"});
  c.teacher_logits.clear();
  expect_error([&] { check_before_start(c, {"fixed"}); }, {"teacher.torchscript", "teacher.ts", "no such file"});
}

// `data: {name: table, ...}` from a YAML config to a distilled student: the zoo's vector
// students on a user's CSV rows, teacher trained on D_train.
TEST(Distill, TableDataFromAConfig) {
  TempDir dir("table-config");
  std::string csv = "a,b,label\n";
  for (int i = 0; i < 60; ++i)
    csv += fmt::format("{},{},{}\n", (i * 37 % 60) / 10.0, (i * 11 % 7) - 3.0,
                       (i * 37 % 60) < 30 ? "low" : "high");
  write_file_atomic(dir / "rows.csv", csv);
  write_file_atomic(dir / "table.yaml", R"(threads: 1
data: {name: table, file: )" + (dir / "rows.csv").string() + R"(, label: label, test_size: 12, val_size: 6}
teacher:
  model: mlp
  train: {epochs: 30, batch_size: 0, lr: 0.5, lr_step: 0, checkpoint_every: 0}
student:
  model: logreg
  train: {epochs: 30, batch_size: 0, lr: 0.5, lr_step: 0, eval_every: 10, checkpoint_every: 0}
)");
  Config c = load_config(dir / "table.yaml");
  c.out = (dir / "out").string();
  c.resolve_paths();
  EXPECT_EQ(c.to_json()["data"]["label"], "label");
  Prepared p = prepare(c);
  EXPECT_EQ(p.data.num_classes, 2);
  EXPECT_EQ(p.data.test.size(), 12);
  EXPECT_EQ(p.data.pool.x.size(1), 2);
  EXPECT_GT(p.teacher_test_accuracy, 0.75);  // a threshold on the first column
  const auto r = run_distill(c, p, "fixed", 0, dir / "fixed");
  EXPECT_GT(r.train.final_test_accuracy, 0.7);

  c.data.label = "";
  expect_error([&] { c.validate(); }, {"data.file", "data.label"});
}
