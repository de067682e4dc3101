#pragma once
/// Training-time augmentation of image batches: random crop with zero padding and horizontal flip
/// (the standard CIFAR recipe), on by default for teachers only.
#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// Options of `augment_batch`.
struct AugmentOptions {
  /// Pixels of zero padding before the random crop back to the input size; 0 = no crop.
  int64_t pad = 4;
  /// Flip each image left-right with probability 1/2.
  bool flip = true;
  AugmentOptions& with_pad(int64_t v) { pad = v; return *this; }
  AugmentOptions& with_flip(bool v) { flip = v; return *this; }
};

/// Parses "none", "crop-flip", "crop" or "flip"; throws `Error` naming an unknown value.
AugmentOptions parse_augmentation(const std::string& name, bool* enabled);

/// Augments an image batch [B, C, H, W] (on any device) with draws from `gen`; the padding value
/// is 0, the data set's mean after normalization.
torch::Tensor augment_batch(const torch::Tensor& x, const AugmentOptions& options,
                            at::Generator& gen);

/// `augment_batch` with draws that depend only on (seed, step), so that a resumed run augments
/// exactly as an uninterrupted one.
torch::Tensor augment_batch_at_step(const torch::Tensor& x, const AugmentOptions& options,
                                    uint64_t seed, int64_t step);

}  // namespace metadistill
