#pragma once
/// ConvTiny and ConvVeryTiny, the students of "multilayer-vid-distillation" (section 3): three
/// convolutional and two fully connected layers. The paper shows the architecture only in a
/// figure; the widths here are our choice.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill {

/// Options of `ConvTiny`: the input shape {C, H, W} (H, W >= 8) and K classes; the defaults are
/// ConvTiny, `very_tiny` gives ConvVeryTiny.
struct ConvTinyOptions {
  ConvTinyOptions(std::vector<int64_t> input_shape, int64_t num_classes)
      : input_shape_(std::move(input_shape)), num_classes_(num_classes) {}
  /// ConvVeryTiny: widths 8, 16, 32 and hidden width 64.
  static ConvTinyOptions very_tiny(std::vector<int64_t> input_shape, int64_t num_classes) {
    return ConvTinyOptions(std::move(input_shape), num_classes)
        .channels({8, 16, 32})
        .hidden(64)
        .name("conv-very-tiny");
  }
  /// Input shape {C, H, W} with H, W >= 8.
  TORCH_ARG(std::vector<int64_t>, input_shape);
  /// Number of classes K.
  TORCH_ARG(int64_t, num_classes);
  /// Widths of the three convolutions.
  TORCH_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>{16, 32, 64};
  /// Width of the hidden fully connected layer.
  TORCH_ARG(int64_t, hidden) = 128;
  /// What `kind()` reports: the zoo name of this configuration.
  TORCH_ARG(std::string, name) = "conv-tiny";
};

/// Three 3x3 convolutions with padding 1, each followed by BatchNorm, ReLU and 2x2 max pooling
/// (H -> H/2 -> H/4 -> H/8, floored), flattened, then Linear(c3 * H/8 * W/8, hidden) -> ReLU ->
/// Linear(hidden, K). ConvTiny (16, 32, 64; hidden 128) flattens 1024 features on 32x32 inputs
/// and 576 on 28x28; ConvVeryTiny (8, 16, 32; hidden 64) half as many. Zoo names "conv-tiny" and
/// "conv-very-tiny"; taps "conv1", "conv2", "conv3" (after pooling), "fc1" (after the ReLU),
/// "logits".
class ConvTinyImpl : public ClassifierImpl {
 public:
  /// Throws `Error` naming the shape unless it is {C, H, W} with H, W >= 8.
  explicit ConvTinyImpl(const ConvTinyOptions& options);

  torch::Tensor forward(torch::Tensor x) override;
  Features forward_features(torch::Tensor x) override;
  std::vector<std::string> tap_names() const override;
  std::string kind() const override { return options.name(); }
  /// Deep copy (parameters, BatchNorm statistics, training mode), optionally moved to `device`.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;

  ConvTinyOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  // The one code path of `forward` and `forward_features`; taps go to `taps` when given.
  torch::Tensor run(const torch::Tensor& x, Features* taps);
};
TORCH_MODULE(ConvTiny);

}  // namespace metadistill
