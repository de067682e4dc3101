#include "metadistill/data/augment.h"

#include "metadistill/util/error.h"

namespace metadistill {

AugmentOptions parse_augmentation(const std::string& name, bool* enabled) {
  *enabled = name != "none";
  if (name == "none" || name == "crop-flip") return AugmentOptions();
  if (name == "crop") return AugmentOptions().with_flip(false);
  if (name == "flip") return AugmentOptions().with_pad(0);
  fail("augmentation '{}': expected none, crop-flip, crop or flip", name);
}

torch::Tensor augment_batch(const torch::Tensor& x, const AugmentOptions& o, at::Generator& gen) {
  check(x.dim() == 4, "augmentation needs image batches [B, C, H, W], got shape {}", x.sizes());
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  torch::Tensor out = x;
  if (o.pad > 0) {
    auto padded = torch::constant_pad_nd(x, {o.pad, o.pad, o.pad, o.pad}, 0.0);
    auto offsets = torch::randint(0, 2 * o.pad + 1, {b, 2}, gen, torch::kLong);
    auto acc = offsets.accessor<int64_t, 2>();
    out = torch::empty_like(x);
    for (int64_t i = 0; i < b; ++i)
      out[i].copy_(padded[i].slice(1, acc[i][0], acc[i][0] + h).slice(2, acc[i][1], acc[i][1] + w));
  }
  if (o.flip) {
    auto mask = torch::rand({b}, gen) < 0.5;  // [B]
    auto flipped = out.flip({3});
    out = torch::where(mask.to(x.device()).view({b, 1, 1, 1}), flipped, out);
  }
  return out;
}

torch::Tensor augment_batch_at_step(const torch::Tensor& x, const AugmentOptions& options,
                                    uint64_t seed, int64_t step) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL +
                                                      static_cast<uint64_t>(step) + 7);
  return augment_batch(x, options, gen);
}

}  // namespace metadistill
