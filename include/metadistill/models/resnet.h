#pragma once
/// Residual networks, the teachers of the zoo (He et al. 2016, "Deep Residual Learning for Image
/// Recognition", and its pre-activation variant, "Identity Mappings in Deep Residual Networks"):
/// ResNet-8 and ResNet-20 (the CIFAR family, widths 16/32/64), ResNet-10 and ResNet-18 (the
/// ImageNet widths 64..512 with a CIFAR stem, as in "multilayer-vid-distillation"), and the
/// pre-activation ResNet-18.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill {

/// Options of `ResNet`: input shape {C, H, W} (H, W >= 8), K classes, and the stage layout. The
/// defaults are ResNet-18; the named configurations below set the rest.
struct ResNetOptions {
  ResNetOptions(std::vector<int64_t> input_shape, int64_t num_classes)
      : input_shape_(std::move(input_shape)), num_classes_(num_classes) {}
  /// ResNet-8: three stages of one basic block, widths 16, 32, 64 (about 78k parameters).
  static ResNetOptions resnet8(std::vector<int64_t> input_shape, int64_t num_classes);
  /// ResNet-20 of He et al. 2016 (section 4.2): three stages of three blocks, widths 16, 32, 64
  /// (about 0.27M parameters).
  static ResNetOptions resnet20(std::vector<int64_t> input_shape, int64_t num_classes);
  /// ResNet-10: four stages of one block, widths 64, 128, 256, 512 (about 4.9M parameters).
  static ResNetOptions resnet10(std::vector<int64_t> input_shape, int64_t num_classes);
  /// ResNet-18: four stages of two blocks, widths 64, 128, 256, 512 (about 11.2M parameters).
  static ResNetOptions resnet18(std::vector<int64_t> input_shape, int64_t num_classes);
  /// Pre-activation ResNet-18 (BatchNorm and ReLU before each convolution).
  static ResNetOptions preact_resnet18(std::vector<int64_t> input_shape, int64_t num_classes);

  /// Input shape {C, H, W} with H, W >= 8.
  TORCH_ARG(std::vector<int64_t>, input_shape);
  /// Number of classes K.
  TORCH_ARG(int64_t, num_classes);
  /// Width of each stage; the stem has the width of the first stage. The first stage keeps the
  /// resolution, every later one halves it (stride 2).
  TORCH_ARG(std::vector<int64_t>, widths) = std::vector<int64_t>{64, 128, 256, 512};
  /// Number of basic blocks in each stage (same length as `widths`).
  TORCH_ARG(std::vector<int64_t>, blocks) = std::vector<int64_t>{2, 2, 2, 2};
  /// Pre-activation blocks (He et al. 2016, "Identity Mappings") instead of the original ones.
  TORCH_ARG(bool, preact) = false;
  /// What `kind()` reports: the zoo name of this configuration.
  TORCH_ARG(std::string, name) = "resnet18";
};

/// The basic block of He et al. 2016: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two
/// 3x3 convolutions; the shortcut is the identity, or a 1x1 convolution with BatchNorm where the
/// width or the resolution changes (option B of the paper). Input [B, in, H, W], output
/// [B, out, H/stride, W/stride].
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  /// Projection shortcut (1x1 convolution, BatchNorm); empty for the identity.
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

/// The pre-activation block: a = relu(bn1(x)); conv2(relu(bn2(conv1(a)))) + shortcut, the
/// shortcut being x, or a 1x1 convolution of a where the width or the resolution changes.
class PreActBlockImpl : public torch::nn::Module {
 public:
  PreActBlockImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  /// Projection shortcut (1x1 convolution); empty for the identity.
  torch::nn::Conv2d shortcut{nullptr};
};
TORCH_MODULE(PreActBlock);

/// A CIFAR-style residual network: a 3x3 stem convolution (no max pooling), stages of basic
/// blocks, global average pooling and Linear(last width, K). Accepts any C and H, W >= 8.
/// The original variant applies BatchNorm and ReLU to the stem; the pre-activation variant
/// applies them after the last stage instead. Zoo names "resnet8", "resnet20", "resnet10",
/// "resnet18", "preact-resnet18". Taps: "stem", "layer1" .. "layerN" (stage outputs; for the
/// pre-activation variant before the final BatchNorm and ReLU), "pool" ([B, width]), "logits".
class ResNetImpl : public ClassifierImpl {
 public:
  /// Throws `Error` naming the shape unless it is {C, H, W} with H, W >= 8.
  explicit ResNetImpl(const ResNetOptions& options);

  torch::Tensor forward(torch::Tensor x) override;
  Features forward_features(torch::Tensor x) override;
  std::vector<std::string> tap_names() const override;
  std::string kind() const override { return options.name(); }
  /// Deep copy (parameters, BatchNorm statistics, training mode), optionally moved to `device`.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<torch::Device>& device = c10::nullopt) const override;

  ResNetOptions options;
  torch::nn::Conv2d conv1{nullptr};
  /// BatchNorm of the stem (original variant) or after the last stage (pre-activation variant).
  torch::nn::BatchNorm2d bn1{nullptr};
  /// The stages, registered as "layer1", "layer2", ...
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};

 private:
  // The one code path of `forward` and `forward_features`; taps go to `taps` when given.
  torch::Tensor run(const torch::Tensor& x, Features* taps);
  std::vector<std::string> tap_names_;
};
TORCH_MODULE(ResNet);

}  // namespace metadistill
