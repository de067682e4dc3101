#include "metadistill/data/dataset.h"

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

DataSet DataSet::select(const torch::Tensor& idx) const {
  DataSet out;
  out.x = x.index_select(0, idx);
  out.y = y.index_select(0, idx);
  if (x_teacher.defined()) out.x_teacher = x_teacher.index_select(0, idx);
  return out;
}

void DataSet::validate(int64_t num_classes, const std::string& what) const {
  check(x.defined() && y.defined(), "{}: empty data set", what);
  check(y.dim() == 1, "{}: labels must be a vector, got shape {}", what, y.sizes());
  check(x.size(0) == y.size(0), "{}: {} inputs but {} labels", what, x.size(0), y.size(0));
  if (x_teacher.defined())
    check(x_teacher.size(0) == y.size(0), "{}: {} teacher inputs but {} labels", what,
          x_teacher.size(0), y.size(0));
  if (y.numel() > 0) {
    const int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
    check(lo >= 0 && hi < num_classes, "{}: labels must lie in [0, {}), found range [{}, {}]", what,
          num_classes, lo, hi);
  }
}

DataSet DataBundle::validation() const { return val_is_test ? test : pool.select(val_idx); }

void DataBundle::finalize() {
  std::string h = hash_tensor(pool.x) + hash_tensor(pool.y) + hash_tensor(test.y) +
                  hash_tensor(train_idx) + hash_tensor(teacher_train.y);
  if (pool.x_teacher.defined()) h += hash_tensor(pool.x_teacher);
  fingerprint = fmt::format("{}-n{}-k{}-{}", name, pool.size(), num_classes, hash_string(h));
}

std::pair<torch::Tensor, torch::Tensor> random_split(int64_t n, int64_t n_val, uint64_t seed) {
  check(n_val >= 0 && n_val < n, "validation size {} must lie in [0, {})", n_val, n);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto perm = torch::randperm(n, gen, torch::kLong);
  auto val = std::get<0>(perm.slice(0, 0, n_val).sort());
  auto train = std::get<0>(perm.slice(0, n_val, n).sort());
  return {train, val};
}

}  // namespace metadistill
