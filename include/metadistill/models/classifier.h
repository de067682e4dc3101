#pragma once
/// The interface every model of the zoo (students and teachers) implements.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// Named intermediate outputs in forward order; the last entry is always "logits".
using Features = std::vector<std::pair<std::string, torch::Tensor>>;

/// A classifier g(x, w) -> logits that can also return its intermediate feature maps by name
/// (the taps used by multi-layer distillation, DESIGN.md 3.4).
class ClassifierImpl : public torch::nn::Module {
 public:
  /// Logits [B, K].
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  /// All taps in forward order, ending with "logits". Same computation as `forward`.
  virtual Features forward_features(torch::Tensor x) = 0;
  /// The tap names `forward_features` returns, in order.
  virtual std::vector<std::string> tap_names() const = 0;
  /// Zoo name the model was built from (e.g. "cnn-fmnist").
  virtual std::string kind() const = 0;
};

using Classifier = std::shared_ptr<ClassifierImpl>;

/// What a zoo model needs to know about its input and output.
struct ModelSpec {
  /// Zoo name, see `model_names()`.
  std::string name;
  /// Number of classes K.
  int64_t num_classes = 10;
  /// Input shape without the batch dimension: {C, H, W} for images, {F} for vectors.
  std::vector<int64_t> input_shape;

  ModelSpec() = default;
  ModelSpec(std::string n, int64_t k, std::vector<int64_t> shape)
      : name(std::move(n)), num_classes(k), input_shape(std::move(shape)) {}
};

/// Builds a zoo model; throws `Error` listing the known names for an unknown one, or naming the
/// input shape a model cannot take.
Classifier make_model(const ModelSpec& spec);

/// Names `make_model` accepts.
std::vector<std::string> model_names();

/// Number of trainable parameters.
int64_t count_parameters(const torch::nn::Module& m);

/// Deep copy of a zoo model (parameters, buffers, training mode), optionally moved to `device`;
/// the global random generator is left where it was. Every zoo model overrides
/// `torch::nn::Module::clone` this way (they cannot derive from `torch::nn::Cloneable`).
Classifier clone_model(const ClassifierImpl& model,
                       const c10::optional<torch::Device>& device = c10::nullopt);

}  // namespace metadistill
