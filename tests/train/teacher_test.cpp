// Teachers (train/teacher.h): their training with checkpoints, and the cache of their outputs.
#include "metadistill/train/teacher.h"

#include <gtest/gtest.h>

#include "metadistill/data/synthetic.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/train/teacher.h"
#include "metadistill/util/files.h"
#include "metadistill/util/runtime.h"
#include "test_util.h"
#include "train/train_student.h"

using namespace metadistill;
using metadistill::testing::small_synthetic;
using metadistill::testing::TempDir;

TEST(TeacherCache, KeyedByTeacherAndDataAndReused) {
  auto b = small_synthetic();
  TempDir dir("cache");
  auto o = TrainerOptions().with_epochs(50).with_batch_size(0).with_lr(0.1).with_lr_step(0, 1.0);
  auto t1 = train_teacher(b, ModelSpec("logreg", 2, {3}), o, dir / "t1.pt");
  auto l1 = cached_teacher_logits(*t1.model, dir / "t1.pt", b, dir / "cache");
  EXPECT_EQ(l1.sizes(), (std::vector<int64_t>{b.pool.size(), 2}));
  // Row i is the teacher's output on sample i, computed on the teacher's features.
  auto direct = predict_logits(*t1.model, b.pool.x_teacher);
  EXPECT_TRUE(torch::allclose(l1, direct));
  // Same teacher and data: read from the cache (one file).
  auto again = cached_teacher_logits(*t1.model, dir / "t1.pt", b, dir / "cache");
  EXPECT_TRUE(again.equal(l1));
  // Cache entries (the '.lock' files beside them, which let one process make a missing entry
  // while others wait, are not entries).
  const auto entries = [&] {
    size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator(dir / "cache"))
      n += e.is_regular_file() && e.path().extension() == ".pt";
    return n;
  };
  EXPECT_EQ(entries(), 1u);
  // A different teacher gets its own entry, never the stale one.
  auto t2 = train_teacher(b, ModelSpec("logreg", 2, {3}), TrainerOptions(o).with_epochs(5), dir / "t2.pt");
  auto l2 = cached_teacher_logits(*t2.model, dir / "t2.pt", b, dir / "cache");
  EXPECT_FALSE(l2.equal(l1));
  // Different data with the first teacher: another entry too.
  auto other = make_synthetic(SyntheticOptions().seeded(3));
  auto l3 = cached_teacher_logits(*t1.model, dir / "t1.pt", other, dir / "cache");
  EXPECT_TRUE(torch::allclose(l3, predict_logits(*t1.model, other.pool.x_teacher)));
  EXPECT_EQ(entries(), 3u);
}

// A teacher training keeps its checkpoints beside the teacher file while it runs and removes
// them once the teacher is saved; an interrupted one resumes to the same weights.
TEST(TeacherTraining, CheckpointFolderResumesAndGoes) {
  auto b = small_synthetic();
  TempDir dir("teachertrain");
  const ModelSpec spec("logreg", 2, {3});
  auto o = TrainerOptions().with_epochs(40).with_batch_size(4).with_lr(0.1).with_seed(2);
  auto full = train_teacher(b, spec, o, dir / "full.pt");
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename(), "full.pt");
  // What a training killed after 15 of its 40 epochs leaves behind ...
  const auto folder = teacher_training_folder(dir / "resumed.pt", spec, b, o);
  EXPECT_NE(folder, teacher_training_folder(dir / "resumed.pt", spec, b,
                                            TrainerOptions(o).with_epochs(41)));
  {
    seed_everything(o.seed);
    auto model = make_model(spec);
    FitData fit;
    fit.train_set = &b.teacher_train;
    fit.train_ids = torch::arange(b.teacher_train.size(), torch::kLong);
    DataSet test = teacher_view(b.test);
    fit.test_set = &test;
    FixedMetaOptimizer plain("teacher", Metaparameters{1.0, 1.0});
    Trainer(TrainerOptions(o).with_epochs(15).with_out_dir(folder)).fit(*model, fit, plain);
  }
  ASSERT_TRUE(std::filesystem::exists(folder / "checkpoint.pt"));
  // ... is resumed: the final weights equal the uninterrupted training's, and the folder goes.
  auto resumed = train_teacher(b, spec, o, dir / "resumed.pt");
  EXPECT_FALSE(std::filesystem::exists(folder));
  auto pf = full.model->parameters(), pr = resumed.model->parameters();
  ASSERT_EQ(pf.size(), pr.size());
  for (size_t i = 0; i < pf.size(); ++i) EXPECT_TRUE(pf[i].equal(pr[i]));
}
