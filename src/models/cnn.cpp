#include "metadistill/models/cnn.h"

#include <array>

#include "common.h"
#include "metadistill/util/error.h"

namespace metadistill {
namespace {

bool paper_shape(const std::vector<int64_t>& shape) {
  return shape == std::vector<int64_t>{1, 28, 28} || shape == std::vector<int64_t>{3, 32, 32};
}

// The paper's widths per data set; the last one makes the flattened size 128 in both cases.
// Any other image (H, W >= 8) gets Fashion-MNIST's widths with padded convolutions and a global
// max pool at the end, so that the flattened size is 128 there too.
std::array<int64_t, 3> cnn_channels(const std::vector<int64_t>& shape) {
  if (shape == std::vector<int64_t>{3, 32, 32}) return {8, 16, 32};
  detail::check_image_shape(shape, 8, "cnn");
  return {8, 16, 128};
}

}  // namespace

CnnImpl::CnnImpl(const CnnOptions& options_) : options(options_) {
  const auto ch = cnn_channels(options.input_shape());
  check(options.num_classes() > 0 && options.hidden() > 0,
        "model cnn: num_classes {} and hidden {} must be positive", options.num_classes(),
        options.hidden());
  const int64_t c = options.input_shape()[0];
  const int64_t pad = paper_shape(options.input_shape()) ? 0 : 1;
  conv1 = register_module("conv1", torch::nn::Conv2d(detail::conv3x3(c, ch[0], 1, pad)));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(ch[0]));
  conv2 = register_module("conv2", torch::nn::Conv2d(detail::conv3x3(ch[0], ch[1], 1, pad)));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(ch[1]));
  conv3 = register_module("conv3", torch::nn::Conv2d(detail::conv3x3(ch[1], ch[2], 1, pad)));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(ch[2]));
  fc1 = register_module("fc1", torch::nn::Linear(128, options.hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.num_classes()));
  detail::init_conv_bn(*this);
}

torch::Tensor CnnImpl::run(const torch::Tensor& x, Features* taps) {
  detail::check_input(x, options.input_shape(), kind());
  // Pooling before the ReLU gives the same values (ReLU is monotone) for a quarter of the work.
  // Shapes below for Fashion-MNIST; CIFAR-10 gives [B,8,15,15], [B,16,6,6], [B,32,2,2].
  auto h = torch::max_pool2d(bn1->forward(conv1->forward(x)), 2).relu_();  // [B, 8, 13, 13]
  detail::tap(taps, "conv1", h);
  h = torch::max_pool2d(bn2->forward(conv2->forward(h)), 2).relu_();  // [B, 16, 5, 5]
  detail::tap(taps, "conv2", h);
  h = torch::max_pool2d(bn3->forward(conv3->forward(h)), 2).relu_();  // [B, 128, 1, 1]
  // Other image sizes: padded convolutions gave [B, 128, H/8, W/8] (floored); pooled to 1 x 1.
  if (!paper_shape(options.input_shape())) h = h.amax({2, 3}, true);
  detail::tap(taps, "conv3", h);
  h = fc1->forward(h.flatten(1)).relu_();  // [B, 64]
  detail::tap(taps, "fc1", h);
  auto logits = fc2->forward(h);  // [B, K]
  detail::tap(taps, "logits", logits);
  return logits;
}

torch::Tensor CnnImpl::forward(torch::Tensor x) { return run(x, nullptr); }

Features CnnImpl::forward_features(torch::Tensor x) {
  Features taps;
  taps.reserve(5);
  run(x, &taps);
  return taps;
}

std::vector<std::string> CnnImpl::tap_names() const {
  return {"conv1", "conv2", "conv3", "fc1", "logits"};
}

std::shared_ptr<torch::nn::Module> CnnImpl::clone(
    const c10::optional<torch::Device>& device) const {
  return detail::clone_by_rebuild(
      *this, [this] { return std::make_shared<CnnImpl>(options); }, device);
}

}  // namespace metadistill
