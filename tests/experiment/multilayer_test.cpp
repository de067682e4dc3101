#include "metadistill/experiment/multilayer.h"

#include <gtest/gtest.h>

namespace metadistill {
namespace {

MultiLayerRun run(const std::string& method, uint64_t seed, double accuracy,
                  std::vector<double> lambda) {
  MultiLayerRun r;
  r.method = method;
  r.seed = seed;
  r.result.method = method;
  r.result.final_test_accuracy = r.result.best_test_accuracy = accuracy;
  r.result.beta = 0.5;
  if (!lambda.empty())
    r.result.pairs = {{"t1", "s1"}, {"t1", "s2"}, {"t2", "s1"}, {"t2", "s2"}};
  r.result.lambda = std::move(lambda);
  return r;
}

TEST(MultiLayerTable, RowsGiveMeanAndMaxAndPairMethodsTheirWeightMatrix) {
  MultiLayerExperimentResult r;
  r.data = "fmnist";
  r.preset = "quick";
  r.teacher_model = "conv-tiny";
  r.student_model = "conv-very-tiny";
  r.methods = {"none", "all-pairs-fd"};
  r.runs = {run("none", 0, 0.80, {}), run("none", 1, 0.90, {}),
            run("all-pairs-fd", 0, 0.70, {0.1, 0.2, 0.3, 0.4}),
            run("all-pairs-fd", 1, 0.72, {0.3, 0.2, 0.1, 0.4})};
  const auto t = multilayer_table(r);
  // The experiment table every experiment shares: mean (max) ± std, a dash for p against a
  // method the table lacks ("gradient").
  EXPECT_NE(t.find("| none | 2 | 0.850 (0.900) ± 0.071 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| all-pairs-fd | 2 | 0.710 (0.720) ± 0.014 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| none | 2 | 0.850 (0.900) ± 0.071 | 0.850 (0.900) | — | — |"),
            std::string::npos) << t;
  EXPECT_NE(t.find("D_train only"), std::string::npos) << t;
  EXPECT_EQ(t.find("D_train ∪ D_val"), std::string::npos) << t;
  // Paired by seed against the reference (none by default): (0.70 − 0.80 + 0.72 − 0.90) / 2.
  EXPECT_NE(t.find("Paired by seed against `none`"), std::string::npos) << t;
  EXPECT_NE(t.find("| all-pairs-fd | 2 | -0.1400 |"), std::string::npos) << t;
  EXPECT_EQ(t.find("none: final lambda_ij"), std::string::npos) << t;
  EXPECT_NE(t.find("all-pairs-fd: final lambda_ij"), std::string::npos) << t;
  EXPECT_NE(t.find("| teacher \\ student | s1 | s2 |\n|---|---|---|\n"), std::string::npos) << t;
  EXPECT_NE(t.find("| t1 | 0.200 | 0.200 |\n| t2 | 0.200 | 0.400 |"), std::string::npos) << t;
  EXPECT_NE(t.find("| method | beta |"), std::string::npos) << t;
  EXPECT_NE(t.find("| all-pairs-fd | 0.500 |"), std::string::npos) << t;
  // No run logged its last epoch's measurements: no measurement table.
  EXPECT_EQ(t.find("| method | val CE |"), std::string::npos) << t;

  // Another reference: the differences are taken against it.
  r.reference = "all-pairs-fd";
  const auto u = multilayer_table(r);
  EXPECT_NE(u.find("Paired by seed against `all-pairs-fd`"), std::string::npos) << u;
  EXPECT_NE(u.find("| none | 2 | +0.1400 |"), std::string::npos) << u;
}

// The effective learning rate column: the mean over runs of the last epoch's value.
TEST(MultiLayerTable, EffectiveLearningRateIsTheMeanOfTheLastEpochs) {
  MultiLayerExperimentResult r;
  r.methods = {"all-pairs-fd"};
  r.runs = {run("all-pairs-fd", 0, 0.70, {0.1, 0.2, 0.3, 0.4}),
            run("all-pairs-fd", 1, 0.72, {0.3, 0.2, 0.1, 0.4})};
  for (size_t k = 0; k < 2; ++k) {
    MultiLayerEpoch first, last;
    first.epoch = 1;
    first.effective_lr = 9.0;  // not the last epoch: not counted
    last.epoch = 2;
    last.effective_lr = k == 0 ? 0.02 : 0.04;
    r.runs[k].result.history = {first, last};
  }
  const auto t = multilayer_table(r);
  EXPECT_NE(t.find("| all-pairs-fd | — | — | — | 0.03 |"), std::string::npos) << t;
}

}  // namespace
}  // namespace metadistill
