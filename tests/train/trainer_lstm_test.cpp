// The trainer with the learned optimizer (meta/lstm_optimizer.h): optimizer "lstm" + a file.
#include <gtest/gtest.h>

#include "metadistill/data/synthetic.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/train/trainer.h"
#include "metadistill/util/runtime.h"
#include "test_util.h"
#include "train/train_student.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;
using metadistill::testing::train_and_resume;
using metadistill::testing::train_student;

namespace {

std::unique_ptr<MetaOptimizer> gradient_method(const std::string& order) {
  MethodOptions mo;
  mo.method = "gradient";
  mo.fixed = {0.5, 2.0};
  mo.given_initial = true;
  mo.extra = {{"hypergradient", "exact"}, {"order", order}, {"gamma", 0.05}, {"val_temperature", 0.1}};
  return make_meta_optimizer(mo);
}

}  // namespace

// With optimizer "lstm" the trainer takes the learned steps; a run checkpointed after 5 epochs
// and resumed (LSTM states in the checkpoint) ends where the uninterrupted run ends, bit for bit,
// with the greedy hypergradient moving λ through the LSTM's step in both orders.
TEST(TrainerLstm, GreedyGradientThroughLstmResumesBitIdentically) {
  TempDir files("lstm-trainer");
  torch::manual_seed(21);
  save_lstm_optimizer(*LstmOptimizerNet(LstmOptimizerNetOptions{}), files / "opt.pt");
  auto b = make_synthetic(SyntheticOptions());
  auto logits = 3 * torch::randn({b.pool.size(), 2});
  for (std::string order : {"before", "lagged"}) {
    SCOPED_TRACE(order);
    TempDir d1("full"), d2("part");
    auto o = TrainerOptions().with_epochs(8).with_batch_size(4).with_lr(1.0).with_lr_step(3, 0.5)
                 .with_optimizer("lstm").with_optimizer_file(files / "opt.pt").with_seed(4);
    auto runs = train_and_resume(b, logits, [&] { return gradient_method(order); }, o, 5,
                                 d1.path(), d2.path());
    const auto& r_full = runs.full;
    const auto& r_part = runs.resumed;
    const auto& full = runs.full_model;
    const auto& part = runs.resumed_model;
    const auto& m_full = runs.full_method;
    const auto& m_part2 = runs.resumed_method;
    EXPECT_TRUE(r_part.resumed);
    EXPECT_GT(r_full.hyper_steps, 0);
    EXPECT_NE(m_full->current().lambda1, 0.5) << "the gradient method never moved λ1";
    EXPECT_EQ(m_full->current().lambda1, m_part2->current().lambda1);
    auto pa = full->parameters(), pb = part->parameters();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i])) << i;

    // The learned steps are not SGD's: the same run with sgd ends elsewhere.
    auto m_sgd = gradient_method(order);
    Classifier sgd;
    train_student(b, logits, *m_sgd, TrainerOptions(o).with_optimizer("sgd"), &sgd);
    EXPECT_FALSE(sgd->parameters()[0].equal(pa[0]));
  }
}

TEST(TrainerLstm, MissingFileAndOnlineHypergradientAreRefusedClearly) {
  TempDir files("lstm-trainer-err");
  auto b = make_synthetic(SyntheticOptions());
  auto logits = torch::randn({b.pool.size(), 2});
  FixedMetaOptimizer fixed("naive", {0.5, 1.0});
  const auto missing = (files / "none.pt").string();
  expect_error(
      [&] {
        train_student(b, logits, fixed,
                      TrainerOptions().with_epochs(1).with_optimizer("lstm").with_optimizer_file(missing));
      },
      {missing, "not found"});
  torch::manual_seed(2);
  save_lstm_optimizer(*LstmOptimizerNet(LstmOptimizerNetOptions{}), files / "opt.pt");
  MethodOptions mo;
  mo.method = "gradient";
  mo.extra = {{"hypergradient", "online"}, {"val_temperature", 0.1}};
  auto online = make_meta_optimizer(mo);
  expect_error(
      [&] {
        train_student(b, logits, *online,
                      TrainerOptions().with_epochs(2).with_batch_size(4).with_optimizer("lstm")
                          .with_optimizer_file(files / "opt.pt"));
      },
      {"online hypergradient", "lstm", "not carried"});
}
