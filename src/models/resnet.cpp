#include "metadistill/models/resnet.h"

#include "common.h"
#include "metadistill/util/error.h"

namespace metadistill {

ResNetOptions ResNetOptions::resnet8(std::vector<int64_t> input_shape, int64_t num_classes) {
  return ResNetOptions(std::move(input_shape), num_classes)
      .widths({16, 32, 64})
      .blocks({1, 1, 1})
      .name("resnet8");
}

ResNetOptions ResNetOptions::resnet20(std::vector<int64_t> input_shape, int64_t num_classes) {
  return ResNetOptions(std::move(input_shape), num_classes)
      .widths({16, 32, 64})
      .blocks({3, 3, 3})
      .name("resnet20");
}

ResNetOptions ResNetOptions::resnet10(std::vector<int64_t> input_shape, int64_t num_classes) {
  return ResNetOptions(std::move(input_shape), num_classes).blocks({1, 1, 1, 1}).name("resnet10");
}

ResNetOptions ResNetOptions::resnet18(std::vector<int64_t> input_shape, int64_t num_classes) {
  return ResNetOptions(std::move(input_shape), num_classes).blocks({2, 2, 2, 2}).name("resnet18");
}

ResNetOptions ResNetOptions::preact_resnet18(std::vector<int64_t> input_shape,
                                             int64_t num_classes) {
  return resnet18(std::move(input_shape), num_classes).preact(true).name("preact-resnet18");
}

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", torch::nn::Conv2d(detail::conv3x3(in, out, stride)));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
  conv2 = register_module("conv2", torch::nn::Conv2d(detail::conv3x3(out, out)));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  if (stride != 1 || in != out) {
    downsample = register_module(
        "downsample",
        torch::nn::Sequential(
            torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
            torch::nn::BatchNorm2d(out)));
  }
}

torch::Tensor BasicBlockImpl::forward(torch::Tensor x) {
  auto out = bn1->forward(conv1->forward(x)).relu_();  // [B, out, H/s, W/s]
  out = bn2->forward(conv2->forward(out));
  // In place only on tensors made here: `x` may be a tap the caller keeps.
  out += downsample ? downsample->forward(x) : x;
  return out.relu_();
}

PreActBlockImpl::PreActBlockImpl(int64_t in, int64_t out, int64_t stride) {
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(in));
  conv1 = register_module("conv1", torch::nn::Conv2d(detail::conv3x3(in, out, stride)));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  conv2 = register_module("conv2", torch::nn::Conv2d(detail::conv3x3(out, out)));
  if (stride != 1 || in != out) {
    shortcut = register_module(
        "shortcut",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
  }
}

torch::Tensor PreActBlockImpl::forward(torch::Tensor x) {
  auto a = bn1->forward(x).relu_();  // [B, in, H, W]
  auto out = conv1->forward(a);            // [B, out, H/s, W/s]
  out = conv2->forward(bn2->forward(out).relu_());
  // The projection sees the pre-activated input, the identity the raw one (He et al. 2016).
  out += shortcut ? shortcut->forward(a) : x;
  return out;
}

ResNetImpl::ResNetImpl(const ResNetOptions& options_) : options(options_) {
  const auto& shape = options.input_shape();
  const auto& widths = options.widths();
  const auto& blocks = options.blocks();
  detail::check_image_shape(shape, 8, options.name());
  check(!widths.empty() && widths.size() == blocks.size(),
        "model {}: widths [{}] and blocks [{}] must be non-empty and of the same length",
        options.name(), fmt::join(widths, ", "), fmt::join(blocks, ", "));
  for (size_t i = 0; i < widths.size(); ++i)
    check(widths[i] > 0 && blocks[i] > 0,
          "model {}: stage {} has width {} and {} blocks; both must be positive", options.name(),
          i + 1, widths[i], blocks[i]);
  check(options.num_classes() > 0, "model {}: num_classes {} must be positive", options.name(),
        options.num_classes());

  conv1 = register_module("conv1", torch::nn::Conv2d(detail::conv3x3(shape[0], widths[0])));
  // The original variant normalizes the stem; the pre-activation one normalizes after the last
  // stage, since its blocks end without BatchNorm and ReLU.
  const int64_t bn1_width = options.preact() ? widths.back() : widths[0];
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(bn1_width));
  tap_names_.push_back("stem");
  int64_t in = widths[0];
  for (size_t s = 0; s < widths.size(); ++s) {
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < blocks[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      if (options.preact())
        stage->push_back(PreActBlock(in, widths[s], stride));
      else
        stage->push_back(BasicBlock(in, widths[s], stride));
      in = widths[s];
    }
    const std::string name = "layer" + std::to_string(s + 1);
    layers.push_back(register_module(name, stage));
    tap_names_.push_back(name);
  }
  fc = register_module("fc", torch::nn::Linear(in, options.num_classes()));
  tap_names_.push_back("pool");
  tap_names_.push_back("logits");
  detail::init_conv_bn(*this);
}

torch::Tensor ResNetImpl::run(const torch::Tensor& x, Features* taps) {
  detail::check_image_batch(x, options.input_shape()[0], kind());
  // Shapes for ResNet-18 on [B, 3, 32, 32].
  auto h = conv1->forward(x);  // [B, 64, 32, 32]
  if (!options.preact()) h = bn1->forward(h).relu_();
  detail::tap(taps, "stem", h);
  // Stages: [B, 64, 32, 32], [B, 128, 16, 16], [B, 256, 8, 8], [B, 512, 4, 4].
  for (size_t s = 0; s < layers.size(); ++s) {
    h = layers[s]->forward(h);
    detail::tap(taps, tap_names_[s + 1].c_str(), h);
  }
  if (options.preact()) h = bn1->forward(h).relu_();  // [B, 512, 4, 4]
  h = h.mean({2, 3});  // [B, 512]
  detail::tap(taps, "pool", h);
  auto logits = fc->forward(h);  // [B, K]
  detail::tap(taps, "logits", logits);
  return logits;
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) { return run(x, nullptr); }

Features ResNetImpl::forward_features(torch::Tensor x) {
  Features taps;
  taps.reserve(tap_names_.size());
  run(x, &taps);
  return taps;
}

std::vector<std::string> ResNetImpl::tap_names() const { return tap_names_; }

std::shared_ptr<torch::nn::Module> ResNetImpl::clone(
    const c10::optional<torch::Device>& device) const {
  return detail::clone_by_rebuild(
      *this, [this] { return std::make_shared<ResNetImpl>(options); }, device);
}

}  // namespace metadistill
