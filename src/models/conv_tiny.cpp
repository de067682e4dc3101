#include "metadistill/models/conv_tiny.h"

#include "common.h"
#include "metadistill/util/error.h"

namespace metadistill {

ConvTinyImpl::ConvTinyImpl(const ConvTinyOptions& options_) : options(options_) {
  const auto& shape = options.input_shape();
  const auto& ch = options.channels();
  detail::check_image_shape(shape, 8, options.name());
  check(ch.size() == 3 && ch[0] > 0 && ch[1] > 0 && ch[2] > 0,
        "model {}: expected three positive convolution widths, got [{}]", options.name(),
        fmt::join(ch, ", "));
  check(options.num_classes() > 0 && options.hidden() > 0,
        "model {}: num_classes {} and hidden {} must be positive", options.name(),
        options.num_classes(), options.hidden());
  conv1 = register_module("conv1", torch::nn::Conv2d(detail::conv3x3(shape[0], ch[0])));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(ch[0]));
  conv2 = register_module("conv2", torch::nn::Conv2d(detail::conv3x3(ch[0], ch[1])));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(ch[1]));
  conv3 = register_module("conv3", torch::nn::Conv2d(detail::conv3x3(ch[1], ch[2])));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(ch[2]));
  // Padded convolutions keep the size; each pool floors it by half.
  const int64_t flat = ch[2] * (shape[1] / 8) * (shape[2] / 8);
  fc1 = register_module("fc1", torch::nn::Linear(flat, options.hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.num_classes()));
  detail::init_conv_bn(*this);
}

torch::Tensor ConvTinyImpl::run(const torch::Tensor& x, Features* taps) {
  detail::check_input(x, options.input_shape(), kind());
  // Pooling before the ReLU gives the same values (ReLU is monotone) for a quarter of the work.
  // Shapes for ConvTiny on [B, 3, 32, 32].
  auto h = torch::max_pool2d(bn1->forward(conv1->forward(x)), 2).relu_();  // [B, 16, 16, 16]
  detail::tap(taps, "conv1", h);
  h = torch::max_pool2d(bn2->forward(conv2->forward(h)), 2).relu_();  // [B, 32, 8, 8]
  detail::tap(taps, "conv2", h);
  h = torch::max_pool2d(bn3->forward(conv3->forward(h)), 2).relu_();  // [B, 64, 4, 4]
  detail::tap(taps, "conv3", h);
  h = fc1->forward(h.flatten(1)).relu_();  // [B, 128]
  detail::tap(taps, "fc1", h);
  auto logits = fc2->forward(h);  // [B, K]
  detail::tap(taps, "logits", logits);
  return logits;
}

torch::Tensor ConvTinyImpl::forward(torch::Tensor x) { return run(x, nullptr); }

Features ConvTinyImpl::forward_features(torch::Tensor x) {
  Features taps;
  taps.reserve(5);
  run(x, &taps);
  return taps;
}

std::vector<std::string> ConvTinyImpl::tap_names() const {
  return {"conv1", "conv2", "conv3", "fc1", "logits"};
}

std::shared_ptr<torch::nn::Module> ConvTinyImpl::clone(
    const c10::optional<torch::Device>& device) const {
  return detail::clone_by_rebuild(
      *this, [this] { return std::make_shared<ConvTinyImpl>(options); }, device);
}

}  // namespace metadistill
