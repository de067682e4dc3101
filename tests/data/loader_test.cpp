#include "metadistill/data/loader.h"

#include <gtest/gtest.h>

#include <set>

using namespace metadistill;

namespace {
DataSet numbered(int64_t n) {
  DataSet d;
  d.x = torch::arange(n, torch::kFloat).unsqueeze(1) * 10;  // row id recoverable from x
  d.y = torch::arange(n, torch::kLong) % 3;
  return d;
}
}  // namespace

TEST(Loader, EpochCoversEveryIdOnceAndCarriesIds) {
  auto d = numbered(103);
  auto ids = torch::arange(3, 100, torch::kLong);
  BatchLoader loader(d, ids, LoaderOptions().batch(10).seeded(5));
  EXPECT_EQ(loader.batches_per_epoch(), 10);
  std::set<int64_t> seen;
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    auto batch = loader.batch(b);
    for (int64_t i = 0; i < batch.idx.numel(); ++i) {
      const int64_t id = batch.idx[i].item<int64_t>();
      EXPECT_EQ(batch.x[i][0].item<float>(), 10.f * id);
      EXPECT_EQ(batch.y[i].item<int64_t>(), id % 3);
      EXPECT_TRUE(seen.insert(id).second);
    }
  }
  EXPECT_EQ(seen.size(), 97u);
  EXPECT_EQ(*seen.begin(), 3);
}

TEST(Loader, ShufflingIsSeededPerEpoch) {
  auto d = numbered(50);
  auto ids = torch::arange(50, torch::kLong);
  BatchLoader a(d, ids, LoaderOptions().batch(50).seeded(1));
  BatchLoader b(d, ids, LoaderOptions().batch(50).seeded(1));
  BatchLoader c(d, ids, LoaderOptions().batch(50).seeded(2));
  EXPECT_TRUE(a.batch(0).idx.equal(b.batch(0).idx));
  EXPECT_FALSE(a.batch(0).idx.equal(c.batch(0).idx));
  a.start_epoch(1);
  EXPECT_FALSE(a.batch(0).idx.equal(b.batch(0).idx));
  b.start_epoch(3);
  b.start_epoch(1);  // an epoch's order does not depend on what ran before
  EXPECT_TRUE(a.batch(0).idx.equal(b.batch(0).idx));
}

TEST(Loader, FullBatchAndCycling) {
  auto d = numbered(7);
  BatchLoader loader(d, torch::arange(7, torch::kLong), LoaderOptions().batch(0));
  EXPECT_EQ(loader.batches_per_epoch(), 1);
  EXPECT_EQ(loader.batch(0).idx.numel(), 7);
  BatchLoader cyc(d, torch::arange(7, torch::kLong), LoaderOptions().batch(3));
  int64_t total = 0;
  for (int i = 0; i < 6; ++i) total += cyc.next_cycling().idx.numel();
  EXPECT_EQ(total, 3 + 3 + 1 + 3 + 3 + 1);
}
