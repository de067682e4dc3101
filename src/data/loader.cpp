#include "metadistill/data/loader.h"

#include "metadistill/util/error.h"

namespace metadistill {

BatchLoader::BatchLoader(const DataSet& data, torch::Tensor ids, LoaderOptions options,
                         torch::Device device)
    : data_(data), ids_(std::move(ids)), options_(options), device_(device) {
  check(ids_.numel() > 0, "loader: no samples to iterate over");
  if (options_.batch_size <= 0 || options_.batch_size > ids_.size(0))
    options_.batch_size = ids_.size(0);
  start_epoch(0);
}

void BatchLoader::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  if (options_.shuffle) {
    // Mix seed and epoch so epoch e's order does not depend on what ran before it.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed * 1000003ULL +
                                                        static_cast<uint64_t>(epoch) + 1);
    order_ = ids_.index_select(0, torch::randperm(ids_.size(0), gen, torch::kLong));
  } else {
    order_ = ids_;
  }
}

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = ids_.size(0), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

Batch BatchLoader::batch(int64_t b) const {
  const int64_t n = ids_.size(0), bs = options_.batch_size;
  const int64_t lo = b * bs, hi = std::min(n, lo + bs);
  Batch out;
  out.idx = order_.slice(0, lo, hi);
  out.x = data_.x.index_select(0, out.idx);
  out.y = data_.y.index_select(0, out.idx);
  if (device_ != torch::kCPU) {
    out.x = out.x.to(device_);
    out.y = out.y.to(device_);
  }
  return out;
}

Batch BatchLoader::next_cycling() {
  if (cursor_ >= batches_per_epoch()) {
    start_epoch(epoch_ + 1);
    cursor_ = 0;
  }
  return batch(cursor_++);
}

}  // namespace metadistill
