#include <gtest/gtest.h>
#include <torch/torch.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Tests are small; one intra-op thread keeps them deterministic and lets ctest run two at once.
  torch::set_num_threads(1);
  return RUN_ALL_TESTS();
}
