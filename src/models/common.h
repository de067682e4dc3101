#pragma once
// Building blocks shared by the sources of the model zoo; private to src/models.
#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill::detail {

// Appends a tap when a sink is given. `forward` passes no sink, so it builds no `Features`.
inline void tap(Features* taps, const char* name, const torch::Tensor& t) {
  if (taps != nullptr) taps->emplace_back(name, t);
}

// Options of a bias-free 3x3 convolution (the bias would be cancelled by the BatchNorm after it).
torch::nn::Conv2dOptions conv3x3(int64_t in, int64_t out, int64_t stride = 1, int64_t padding = 1);

// torchvision's initialisation: convolutions kaiming-normal (fan_out, relu) with zero bias,
// BatchNorm weight 1 and bias 0; linear layers keep LibTorch's default.
void init_conv_bn(torch::nn::Module& root);

// Throws `Error` naming the model and both shapes unless `x` is [B, shape...].
void check_input(const torch::Tensor& x, c10::IntArrayRef shape, const std::string& kind);

// Throws `Error` naming the model and the shape unless `x` is [B, channels, H, W].
void check_image_batch(const torch::Tensor& x, int64_t channels, const std::string& kind);

// Throws `Error` naming the model and the shape unless `shape` is {C, H, W} with H, W >= min_hw.
void check_image_shape(c10::IntArrayRef shape, int64_t min_hw, const std::string& kind);

// Throws `Error` naming the model and the shape unless `shape` is {F}.
void check_vector_shape(c10::IntArrayRef shape, const std::string& kind);

// Deep copy of `self` (the `clone()` of every zoo model): `rebuild` makes a fresh model of the
// same structure, then parameters, buffers, training mode and dtype are copied from `self`.
// The global CPU generator is restored afterwards, so cloning does not shift a seeded run.
std::shared_ptr<torch::nn::Module> clone_by_rebuild(
    const torch::nn::Module& self,
    const std::function<std::shared_ptr<torch::nn::Module>()>& rebuild,
    const c10::optional<torch::Device>& device);

}  // namespace metadistill::detail
