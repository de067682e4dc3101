#include "metadistill/experiment/sweep.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "metadistill/util/files.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

// Synthetic data, a logistic-regression teacher and student, 200 full-batch steps per run.
const std::string kSweepConfig = metadistill::testing::synthetic_config(
    "logreg", 200, 1.0, 50, 0, "{val_temperature: 0.1, gamma: 0.1}", "preset: sweep-test\n");

// A point per e1 = e2 value and per e2 value at the fixed e1, each R runs of `proposed`, whose
// hyper-steps fall in the e1 phases only: the share of hyper-steps is e1 / (e1 + e2). The tables
// are written, a second call reuses the stored runs, and bad values stop it before training.
TEST(Sweep, IntegrationPointsAreProposedRunsWithTheirHyperStepShare) {
  TempDir dir("sweep");
  write_file_atomic(dir / "c.yaml", kSweepConfig);
  Config c = load_config(dir / "c.yaml");
  c.out = (dir / "out").string();
  c.resolve_paths();
  SweepOptions o;
  o.equal = {4, 10};
  o.e2_values = {6};
  o.fixed_e1 = 4;
  o.runs = 2;
  const auto points = run_sweep(c, o);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0].curve, "e1=e2");
  EXPECT_EQ(points[0].e1, 4);
  EXPECT_EQ(points[0].e2, 4);
  EXPECT_EQ(points[1].e1, 10);
  EXPECT_EQ(points[2].curve, "e2 (e1=4)");
  EXPECT_EQ(points[2].e1, 4);
  EXPECT_EQ(points[2].e2, 6);
  for (const auto& p : points) {
    EXPECT_EQ(p.final_accuracy.n, 2) << p.curve << " " << p.e2;
    EXPECT_GT(p.final_accuracy.mean, 0.3) << p.curve << " " << p.e2;
    EXPECT_NEAR(p.hyper_step_share, static_cast<double>(p.e1) / static_cast<double>(p.e1 + p.e2),
                0.02)
        << p.curve << " " << p.e2;
  }
  const auto sweep = dir / "out" / "sweep";
  EXPECT_TRUE(std::filesystem::exists(sweep / "sweep.csv"));
  EXPECT_NE(read_file(sweep / "sweep.md").find("e2 (e1=4)"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(sweep / "e1-4-e2-6" / "seed1" / "result.json"));

  const auto again = run_sweep(c, o);
  ASSERT_EQ(again.size(), points.size());
  for (size_t k = 0; k < points.size(); ++k)
    EXPECT_EQ(again[k].final_accuracy.mean, points[k].final_accuracy.mean) << k;

  SweepOptions bad = o;
  bad.equal = {1};
  expect_error([&] { run_sweep(c, bad); }, {"e1 = e2 = 1", ">= 2"});
  bad = o;
  bad.e2_values = {-3};
  expect_error([&] { run_sweep(c, bad); }, {"e2 = -3"});
}

}  // namespace
}  // namespace metadistill
