#include "metadistill/models/linear.h"

#include "common.h"
#include "metadistill/util/error.h"

namespace metadistill {

LogRegImpl::LogRegImpl(const LogRegOptions& options_) : options(options_) {
  check(options.in_features() > 0 && options.num_classes() > 0,
        "model logreg: in_features {} and num_classes {} must be positive", options.in_features(),
        options.num_classes());
  fc = register_module("fc", torch::nn::Linear(options.in_features(), options.num_classes()));
}

torch::Tensor LogRegImpl::forward(torch::Tensor x) {
  detail::check_input(x, {options.in_features()}, kind());
  return fc->forward(x);  // [B, K]
}

Features LogRegImpl::forward_features(torch::Tensor x) { return {{"logits", forward(x)}}; }

std::vector<std::string> LogRegImpl::tap_names() const { return {"logits"}; }

std::shared_ptr<torch::nn::Module> LogRegImpl::clone(
    const c10::optional<torch::Device>& device) const {
  return detail::clone_by_rebuild(
      *this, [this] { return std::make_shared<LogRegImpl>(options); }, device);
}

MlpImpl::MlpImpl(const MlpOptions& options_) : options(options_) {
  check(options.in_features() > 0 && options.num_classes() > 0 && options.hidden() > 0,
        "model mlp: in_features {}, hidden {} and num_classes {} must be positive",
        options.in_features(), options.hidden(), options.num_classes());
  fc1 = register_module("fc1", torch::nn::Linear(options.in_features(), options.hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.num_classes()));
}

torch::Tensor MlpImpl::run(const torch::Tensor& x, Features* taps) {
  detail::check_input(x, {options.in_features()}, kind());
  auto h = fc1->forward(x).relu_();  // [B, H]
  detail::tap(taps, "hidden", h);
  auto logits = fc2->forward(h);  // [B, K]
  detail::tap(taps, "logits", logits);
  return logits;
}

torch::Tensor MlpImpl::forward(torch::Tensor x) { return run(x, nullptr); }

Features MlpImpl::forward_features(torch::Tensor x) {
  Features taps;
  taps.reserve(2);
  run(x, &taps);
  return taps;
}

std::vector<std::string> MlpImpl::tap_names() const { return {"hidden", "logits"}; }

std::shared_ptr<torch::nn::Module> MlpImpl::clone(
    const c10::optional<torch::Device>& device) const {
  return detail::clone_by_rebuild(
      *this, [this] { return std::make_shared<MlpImpl>(options); }, device);
}

}  // namespace metadistill
