#pragma once
/// Students on feature vectors: logistic regression (the synthetic experiment of
/// "metaparameter-optimization-in-kd", section 4) and a one-hidden-layer perceptron.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill {

/// Options of `LogReg`: F input features, K classes.
struct LogRegOptions {
  LogRegOptions(int64_t in_features, int64_t num_classes)
      : in_features_(in_features), num_classes_(num_classes) {}
  /// Number of input features F.
  TORCH_ARG(int64_t, in_features);
  /// Number of classes K.
  TORCH_ARG(int64_t, num_classes);
};

/// Multinomial logistic regression g(x, w) = W x + b on inputs [B, F]; logits [B, K].
/// Zoo name "logreg"; taps: "logits".
class LogRegImpl : public ClassifierImpl {
 public:
  explicit LogRegImpl(const LogRegOptions& options);

  torch::Tensor forward(torch::Tensor x) override;
  Features forward_features(torch::Tensor x) override;
  std::vector<std::string> tap_names() const override;
  std::string kind() const override { return "logreg"; }
  /// Deep copy (parameters, training mode), optionally moved to `device`.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;

  LogRegOptions options;
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(LogReg);

/// Options of `Mlp`: F input features, K classes, a hidden width.
struct MlpOptions {
  MlpOptions(int64_t in_features, int64_t num_classes)
      : in_features_(in_features), num_classes_(num_classes) {}
  /// Number of input features F.
  TORCH_ARG(int64_t, in_features);
  /// Number of classes K.
  TORCH_ARG(int64_t, num_classes);
  /// Width of the hidden layer.
  TORCH_ARG(int64_t, hidden) = 64;
};

/// Perceptron Linear(F, H) -> ReLU -> Linear(H, K) on inputs [B, F]; logits [B, K].
/// Zoo name "mlp"; taps: "hidden" (after the ReLU, [B, H]), "logits".
class MlpImpl : public ClassifierImpl {
 public:
  explicit MlpImpl(const MlpOptions& options);

  torch::Tensor forward(torch::Tensor x) override;
  Features forward_features(torch::Tensor x) override;
  std::vector<std::string> tap_names() const override;
  std::string kind() const override { return "mlp"; }
  /// Deep copy (parameters, training mode), optionally moved to `device`.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;

  MlpOptions options;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  // The one code path of `forward` and `forward_features`; taps go to `taps` when given.
  torch::Tensor run(const torch::Tensor& x, Features* taps);
};
TORCH_MODULE(Mlp);

}  // namespace metadistill
