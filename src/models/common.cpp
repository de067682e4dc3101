#include "common.h"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>

#include "metadistill/util/error.h"

namespace metadistill::detail {

torch::nn::Conv2dOptions conv3x3(int64_t in, int64_t out, int64_t stride, int64_t padding) {
  return torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(padding).bias(false);
}

void init_conv_bn(torch::nn::Module& root) {
  torch::NoGradGuard no_grad;
  for (const auto& m : root.modules(/*include_self=*/false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    }
  }
}

void check_input(const torch::Tensor& x, c10::IntArrayRef shape, const std::string& kind) {
  const auto sizes = x.sizes();
  const bool ok = sizes.size() == shape.size() + 1 && sizes.slice(1) == shape;
  if (!ok) fail("model {}: expected input [B, {}], got {}", kind, fmt::join(shape, ", "), sizes);
}

void check_image_batch(const torch::Tensor& x, int64_t channels, const std::string& kind) {
  if (x.dim() != 4 || x.size(1) != channels)
    fail("model {}: expected input [B, {}, H, W], got {}", kind, channels, x.sizes());
}

void check_image_shape(c10::IntArrayRef shape, int64_t min_hw, const std::string& kind) {
  const bool ok = shape.size() == 3 && shape[0] > 0 && shape[1] >= min_hw && shape[2] >= min_hw;
  if (!ok)
    fail("model {}: input shape {} not supported; expected an image {{C, H, W}} with H, W >= {}",
         kind, shape, min_hw);
}

void check_vector_shape(c10::IntArrayRef shape, const std::string& kind) {
  if (shape.size() != 1 || shape[0] <= 0)
    fail("model {}: input shape {} not supported; expected a feature vector {{F}}", kind, shape);
}

std::shared_ptr<torch::nn::Module> clone_by_rebuild(
    const torch::nn::Module& self,
    const std::function<std::shared_ptr<torch::nn::Module>()>& rebuild,
    const c10::optional<torch::Device>& device) {
  // Rebuilding draws initial weights that are overwritten at once; put the generator back so
  // that a clone in the middle of a seeded run leaves the rest of the run unchanged. The lock is
  // not held while rebuilding because the initialisers take it themselves.
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  std::shared_ptr<torch::nn::Module> copy = rebuild();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }

  torch::NoGradGuard no_grad;
  const auto src_params = self.named_parameters();
  auto dst_params = copy->named_parameters();
  for (const auto& item : src_params) {
    torch::Tensor* dst = dst_params.find(item.key());
    check(dst != nullptr, "clone of {}: parameter {} missing in the rebuilt model", self.name(),
          item.key());
    dst->set_data(item.value().detach().clone());
    dst->set_requires_grad(item.value().requires_grad());
  }
  const auto src_buffers = self.named_buffers();
  auto dst_buffers = copy->named_buffers();
  for (const auto& item : src_buffers) {
    torch::Tensor* dst = dst_buffers.find(item.key());
    check(dst != nullptr, "clone of {}: buffer {} missing in the rebuilt model", self.name(),
          item.key());
    dst->set_data(item.value().detach().clone());
  }
  copy->train(self.is_training());
  if (device) copy->to(*device);
  return copy;
}

}  // namespace metadistill::detail
