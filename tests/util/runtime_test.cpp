#include "metadistill/util/runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "test_util.h"

namespace metadistill {
namespace {

// Each test runs in its own process (ctest), so the environment changes stay here.
class RankDevice : public ::testing::Test {
 protected:
  void TearDown() override { ::unsetenv("LOCAL_RANK"); }
};

TEST_F(RankDevice, CudaBecomesTheLocalRanksGpuAndEverythingElseStays) {
  ::unsetenv("LOCAL_RANK");
  EXPECT_EQ(rank_device("cuda"), "cuda");
  ::setenv("LOCAL_RANK", "3", 1);
  EXPECT_EQ(rank_device("cuda"), "cuda:3");
  EXPECT_EQ(rank_device("cuda:1"), "cuda:1");  // an explicit GPU is the user's choice
  EXPECT_EQ(rank_device("cpu"), "cpu");
}

TEST_F(RankDevice, ALocalRankThatIsNotAnIndexIsAnErrorNamingIt) {
  for (const char* bad : {"x", "-1", "2a"}) {
    ::setenv("LOCAL_RANK", bad, 1);
    testing::expect_error([] { rank_device("cuda"); }, {"LOCAL_RANK", bad});
  }
}

TEST(ParseDevice, RejectsUnknownNamesNamingThem) {
  EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU));
  testing::expect_error([] { parse_device("tpu"); }, {"'tpu'", "cpu, cuda or cuda:N"});
  if (!torch::cuda::is_available())
    testing::expect_error([] { parse_device("cuda"); }, {"no CUDA device", "--device cpu"});
}

}  // namespace
}  // namespace metadistill
