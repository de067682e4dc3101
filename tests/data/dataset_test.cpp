#include "metadistill/data/dataset.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "metadistill/util/error.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;

// Strictly increasing ids (sorted, no repeats).
bool strictly_increasing(const torch::Tensor& ids) {
  auto a = ids.accessor<int64_t, 1>();
  for (int64_t i = 1; i < a.size(0); ++i)
    if (a[i - 1] >= a[i]) return false;
  return true;
}

// A small labelled set: row i of x is filled with i, labels i % k, teacher rows with -i.
DataSet numbered(int64_t n, int64_t k, bool with_teacher) {
  DataSet d;
  d.x = torch::arange(0, n, torch::kFloat).view({n, 1, 1}).expand({n, 2, 3}).contiguous();
  d.y = torch::arange(0, n, torch::kLong).remainder(k);
  if (with_teacher) d.x_teacher = -torch::arange(0, n, torch::kFloat).view({n, 1}).repeat({1, 4});
  return d;
}

// A bundle drawn from the seed of the global generator.
DataBundle bundle(uint64_t seed) {
  torch::manual_seed(seed);
  DataBundle b;
  b.name = "unit-set";
  b.num_classes = 3;
  b.pool.x = torch::randn({40, 2, 2});
  b.pool.y = torch::randint(0, 3, {40}, torch::kLong);
  auto split = random_split(40, 10, seed);
  b.train_idx = split.first;
  b.val_idx = split.second;
  b.test.x = torch::randn({12, 2, 2});
  b.test.y = torch::randint(0, 3, {12}, torch::kLong);
  b.teacher_train = b.pool.select(b.train_idx);
  return b;
}

// Sizes are (n - n_val, n_val); both parts are int64, strictly increasing, disjoint, and together
// cover 0..n-1.
TEST(RandomSplit, SizesSortedDisjointAndCovering) {
  const std::vector<std::pair<int64_t, int64_t>> cases = {{50, 12}, {7, 1}, {9, 0}};
  for (const auto& [n, n_val] : cases) {
    const auto [train, val] = random_split(n, n_val, 3);
    ASSERT_EQ(train.dim(), 1);
    ASSERT_EQ(val.dim(), 1);
    EXPECT_EQ(train.scalar_type(), torch::kLong);
    EXPECT_EQ(val.scalar_type(), torch::kLong);
    EXPECT_EQ(train.size(0), n - n_val);
    EXPECT_EQ(val.size(0), n_val);
    EXPECT_TRUE(strictly_increasing(train));
    EXPECT_TRUE(strictly_increasing(val));
    std::set<int64_t> seen;
    for (const auto& part : {train, val}) {
      auto a = part.accessor<int64_t, 1>();
      for (int64_t i = 0; i < a.size(0); ++i) {
        EXPECT_TRUE(seen.insert(a[i]).second) << "id " << a[i] << " is in both parts";
        EXPECT_GE(a[i], 0);
        EXPECT_LT(a[i], n);
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
  }
}

// The split depends on the seed alone: the global generator's state does not matter, and another
// seed gives another split.
TEST(RandomSplit, DependsOnlyOnTheSeed) {
  torch::manual_seed(1);
  const auto a = random_split(60, 15, 77);
  torch::manual_seed(2);
  torch::rand({5});
  const auto b = random_split(60, 15, 77);
  EXPECT_TRUE(a.first.equal(b.first));
  EXPECT_TRUE(a.second.equal(b.second));
  const auto c = random_split(60, 15, 78);
  EXPECT_FALSE(a.second.equal(c.second));
  // Not simply the first or last ids.
  EXPECT_FALSE(a.second.equal(torch::arange(0, 15, torch::kLong)));
  EXPECT_FALSE(a.second.equal(torch::arange(45, 60, torch::kLong)));
}

// select copies the rows at the given ids, in order and with repeats, for x, y and x_teacher;
// the copy does not share storage with the original.
TEST(DataSetSelect, PicksTheRowsInOrderAndCopies) {
  const DataSet d = numbered(8, 3, true);
  const auto idx = torch::tensor({5, 0, 5, 7}, torch::kLong);
  DataSet s = d.select(idx);
  ASSERT_EQ(s.size(), 4);
  const std::vector<int64_t> ids = {5, 0, 5, 7};
  for (size_t k = 0; k < ids.size(); ++k) {
    const auto r = static_cast<int64_t>(k);
    EXPECT_TRUE(s.x[r].equal(torch::full({2, 3}, static_cast<float>(ids[k]))));
    EXPECT_EQ(s.y[r].item<int64_t>(), ids[k] % 3);
    ASSERT_TRUE(s.x_teacher.defined());
    EXPECT_TRUE(s.x_teacher[r].equal(torch::full({4}, -static_cast<float>(ids[k]))));
  }
  s.x.fill_(100);
  EXPECT_EQ(d.x[5][0][0].item<float>(), 5.0f);
  // Without teacher inputs, the selection has none either, and its teacher input is x.
  const DataSet plain = numbered(8, 3, false).select(idx);
  EXPECT_FALSE(plain.x_teacher.defined());
  EXPECT_TRUE(plain.teacher_input().equal(plain.x));
}

// A consistent set validates; mismatched row counts (inputs, teacher inputs), labels that are not
// a vector and labels outside [0, K) are Errors naming `what`.
TEST(DataSetValidate, MismatchesAndBadLabelsAreErrorsNamingWhat) {
  DataSet good = numbered(9, 3, true);
  EXPECT_NO_THROW(good.validate(3, "good-set"));

  DataSet rows = good;
  rows.x = torch::zeros({7, 2, 3});
  expect_error([&] { rows.validate(3, "rows-set"); }, {"rows-set", "7", "9"});

  DataSet teacher = good;
  teacher.x_teacher = torch::zeros({4, 4});
  expect_error([&] { teacher.validate(3, "teacher-set"); }, {"teacher-set"});

  DataSet matrix = good;
  matrix.y = torch::zeros({9, 1}, torch::kLong);
  expect_error([&] { matrix.validate(3, "matrix-set"); }, {"matrix-set"});

  DataSet high = good;
  high.y = good.y.clone();
  high.y[4].fill_(3);  // == num_classes
  expect_error([&] { high.validate(3, "high-set"); }, {"high-set"});
  EXPECT_NO_THROW(high.validate(4, "high-set"));  // in range for 4 classes

  DataSet negative = good;
  negative.y = good.y.clone();
  negative.y[0].fill_(-1);
  expect_error([&] { negative.validate(3, "negative-set"); }, {"negative-set"});
}

// validation() is pool[val_idx] (rows checked one by one here), or the test set when
// val_is_test.
TEST(DataBundle, ValidationIsThePoolAtValIdxOrTheTestSet) {
  DataBundle b = bundle(4);
  b.pool.x_teacher = torch::randn({40, 5});
  b.val_is_test = false;
  const DataSet v = b.validation();
  ASSERT_EQ(v.size(), b.val_idx.size(0));
  ASSERT_TRUE(v.x_teacher.defined());
  for (int64_t k = 0; k < v.size(); ++k) {
    const int64_t id = b.val_idx[k].item<int64_t>();
    EXPECT_TRUE(v.x[k].equal(b.pool.x[id]));
    EXPECT_EQ(v.y[k].item<int64_t>(), b.pool.y[id].item<int64_t>());
    EXPECT_TRUE(v.x_teacher[k].equal(b.pool.x_teacher[id]));
  }

  b.val_is_test = true;
  const DataSet t = b.validation();
  EXPECT_TRUE(t.x.equal(b.test.x));
  EXPECT_TRUE(t.y.equal(b.test.y));
}

// finalize() gives equal fingerprints for equal contents (deep copies included), holds the name,
// and changes when the name, the class count, the pool's inputs or labels, the test labels or the
// split change.
TEST(DataBundle, FingerprintFollowsTheContents) {
  DataBundle a = bundle(5), same = bundle(5);
  a.finalize();
  same.finalize();
  EXPECT_FALSE(a.fingerprint.empty());
  EXPECT_EQ(a.fingerprint, same.fingerprint);
  EXPECT_NE(a.fingerprint.find(a.name), std::string::npos);

  DataBundle copy = a;
  copy.pool.x = a.pool.x.clone();
  copy.pool.y = a.pool.y.clone();
  copy.finalize();
  EXPECT_EQ(copy.fingerprint, a.fingerprint);
  copy.finalize();  // idempotent
  EXPECT_EQ(copy.fingerprint, a.fingerprint);

  auto changed = [&](const std::function<void(DataBundle&)>& change) {
    DataBundle b = bundle(5);
    b.pool.x = b.pool.x.clone();
    b.pool.y = b.pool.y.clone();
    b.test.y = b.test.y.clone();
    change(b);
    b.finalize();
    return b.fingerprint;
  };
  EXPECT_NE(changed([](DataBundle& b) { b.name = "other-set"; }), a.fingerprint);
  EXPECT_NE(changed([](DataBundle& b) { b.num_classes = 4; }), a.fingerprint);
  EXPECT_NE(changed([](DataBundle& b) { b.pool.x[3][1][0].add_(0.5); }), a.fingerprint);
  EXPECT_NE(changed([](DataBundle& b) {
              b.pool.y[7].fill_((b.pool.y[7].item<int64_t>() + 1) % 3);
            }),
            a.fingerprint);
  EXPECT_NE(changed([](DataBundle& b) {
              b.test.y[0].fill_((b.test.y[0].item<int64_t>() + 1) % 3);
            }),
            a.fingerprint);
  EXPECT_NE(changed([](DataBundle& b) {
              auto split = random_split(40, 10, 999);
              b.train_idx = split.first;
              b.val_idx = split.second;
            }),
            a.fingerprint);
  // Another data set altogether.
  DataBundle other = bundle(6);
  other.finalize();
  EXPECT_NE(other.fingerprint, a.fingerprint);
}

}  // namespace
}  // namespace metadistill
