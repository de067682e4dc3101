#include "metadistill/experiment/trajectory_summary.h"

#include <gtest/gtest.h>

#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {
const char* kHeader =
    "step,lambda1,temperature,hypergradient_lambda1,hypergradient_temperature,r2_lambda1,"
    "r2_temperature,phase\n";
}

TEST(TrajectorySummary, StartEndBoundsAndPhases) {
  TempDir dir("trajsum");
  write_file_atomic(dir / "runs/gradient/seed0/trajectory.csv",
                    std::string(kHeader) + "0,0.5,2,0.1,0.1,,,hyper\n1,0.8,5,0.1,0.1,,,hyper\n"
                                           "2,1,10,0.1,0.1,,,hyper\n3,1,10,,,0.9,0.8,predict\n");
  write_file_atomic(dir / "runs/gradient/seed1/trajectory.csv",
                    std::string(kHeader) + "0,0.3,1,0.1,0.1,,,hyper\n1,0.2,0.1,0.1,0.1,,,hyper\n");
  write_file_atomic(dir / "runs/none/seed0/metrics.csv", "epoch\n");  // no trajectory: left out
  auto rows = summarize_trajectories(dir.path());
  ASSERT_EQ(rows.size(), 1u);
  const auto& r = rows[0];
  EXPECT_EQ(r.method, "gradient");
  EXPECT_EQ(r.runs, 2);
  EXPECT_DOUBLE_EQ(r.lambda1_start, 0.4);
  EXPECT_DOUBLE_EQ(r.lambda1_end, 0.6);
  EXPECT_DOUBLE_EQ(r.lambda1_end_min, 0.2);
  EXPECT_DOUBLE_EQ(r.lambda1_end_max, 1.0);
  EXPECT_DOUBLE_EQ(r.temperature_start, 1.5);
  EXPECT_DOUBLE_EQ(r.temperature_end, 5.05);
  EXPECT_DOUBLE_EQ(r.lambda1_at_bound, 2.0 / 6.0);      // λ1 = 1 twice
  EXPECT_DOUBLE_EQ(r.temperature_at_bound, 3.0 / 6.0);  // T = 10 twice, 0.1 once
  ASSERT_EQ(r.phases.size(), 2u);
  EXPECT_EQ(r.phases[0].first, "hyper");
  EXPECT_DOUBLE_EQ(r.phases[0].second, 5.0 / 6.0);
  auto md = trajectory_table(rows);
  EXPECT_TRUE(contains_all(md, {"| gradient | 2 |", "0.400 → 0.600", "33.3%", "predict 17%"})) << md;
}

TEST(TrajectorySummary, MalformedFilesNameTheFileAndLine) {
  TempDir dir("trajbad");
  write_file_atomic(dir / "runs/gradient/seed0/trajectory.csv",
                    std::string(kHeader) + "0,0.5,2,0.1,0.1,,,hyper\n1,abc,2,0.1,0.1,,,hyper\n");
  expect_error([&] { summarize_trajectories(dir.path()); }, {"seed0/trajectory.csv", "line 3", "abc"});
  write_file_atomic(dir / "runs/gradient/seed0/trajectory.csv", "step,lambda1\n0,0.5\n");
  expect_error([&] { summarize_trajectories(dir.path()); }, {"trajectory.csv", "temperature"});
}
