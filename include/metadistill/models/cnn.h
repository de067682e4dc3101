#pragma once
/// The student of "metaparameter-optimization-in-kd" (section 4, Fashion-MNIST and CIFAR-10):
/// a CNN with three convolutional and two fully connected layers.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill {

/// Options of `Cnn`: the input shape ({1, 28, 28} or {3, 32, 32}) and K classes.
struct CnnOptions {
  CnnOptions(std::vector<int64_t> input_shape, int64_t num_classes)
      : input_shape_(std::move(input_shape)), num_classes_(num_classes) {}
  /// Input shape {C, H, W}: {1, 28, 28} (Fashion-MNIST) or {3, 32, 32} (CIFAR-10).
  TORCH_ARG(std::vector<int64_t>, input_shape);
  /// Number of classes K.
  TORCH_ARG(int64_t, num_classes);
  /// Width of the hidden fully connected layer.
  TORCH_ARG(int64_t, hidden) = 64;
};

/// The paper's student CNN. Three unpadded 3x3 convolutions, each followed by BatchNorm, ReLU
/// and 2x2 max pooling, with widths 8, 16, 128 on Fashion-MNIST {1, 28, 28}
/// (28 -> 13 -> 5 -> 1, flattened 128x1x1) and 8, 16, 32 on CIFAR-10 {3, 32, 32}
/// (32 -> 15 -> 6 -> 2, flattened 32x2x2); then Linear(128, 64) -> ReLU -> Linear(64, K).
/// About 29k parameters on Fashion-MNIST and 15k on CIFAR-10. The convolutions have no bias
/// (BatchNorm follows each). Zoo name "cnn"; taps "conv1", "conv2", "conv3" (after pooling),
/// "fc1" (after the ReLU), "logits".
class CnnImpl : public ClassifierImpl {
 public:
  /// Throws `Error` naming the shape for any input shape but the two above.
  explicit CnnImpl(const CnnOptions& options);

  torch::Tensor forward(torch::Tensor x) override;
  Features forward_features(torch::Tensor x) override;
  std::vector<std::string> tap_names() const override;
  std::string kind() const override { return "cnn"; }
  /// Deep copy (parameters, BatchNorm statistics, training mode), optionally moved to `device`.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;

  CnnOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  // The one code path of `forward` and `forward_features`; taps go to `taps` when given.
  torch::Tensor run(const torch::Tensor& x, Features* taps);
};
TORCH_MODULE(Cnn);

}  // namespace metadistill
