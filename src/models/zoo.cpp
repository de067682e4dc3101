// The zoo's registry: one line per model name.
#include <functional>

#include "common.h"
#include "metadistill/models/classifier.h"
#include "metadistill/models/resnet.h"
#include "metadistill/models/students.h"
#include "metadistill/util/error.h"

namespace metadistill {
namespace {

struct ZooEntry {
  const char* name;
  std::function<Classifier(const ModelSpec&)> make;
};

// Vector models take {F}; the image models check their shapes in their constructors.
int64_t vector_features(const ModelSpec& s) {
  detail::check_vector_shape(s.input_shape, s.name);
  return s.input_shape[0];
}

const std::vector<ZooEntry>& zoo() {
  static const std::vector<ZooEntry> entries = {
      {"logreg",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<LogRegImpl>(LogRegOptions(vector_features(s), s.num_classes));
       }},
      {"mlp",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<MlpImpl>(MlpOptions(vector_features(s), s.num_classes));
       }},
      {"cnn",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<CnnImpl>(CnnOptions(s.input_shape, s.num_classes));
       }},
      {"conv-tiny",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ConvTinyImpl>(ConvTinyOptions(s.input_shape, s.num_classes));
       }},
      {"conv-very-tiny",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ConvTinyImpl>(
             ConvTinyOptions::very_tiny(s.input_shape, s.num_classes));
       }},
      {"resnet8",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ResNetImpl>(ResNetOptions::resnet8(s.input_shape, s.num_classes));
       }},
      {"resnet20",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ResNetImpl>(ResNetOptions::resnet20(s.input_shape, s.num_classes));
       }},
      {"resnet10",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ResNetImpl>(ResNetOptions::resnet10(s.input_shape, s.num_classes));
       }},
      {"resnet18",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ResNetImpl>(ResNetOptions::resnet18(s.input_shape, s.num_classes));
       }},
      {"preact-resnet18",
       [](const ModelSpec& s) -> Classifier {
         return std::make_shared<ResNetImpl>(
             ResNetOptions::preact_resnet18(s.input_shape, s.num_classes));
       }},
  };
  return entries;
}

}  // namespace

Classifier make_model(const ModelSpec& spec) {
  for (const auto& entry : zoo()) {
    if (spec.name != entry.name) continue;
    check(spec.num_classes > 0, "model {}: num_classes must be positive, got {}", spec.name,
          spec.num_classes);
    return entry.make(spec);
  }
  fail("unknown model \"{}\"; known models: {}", spec.name, fmt::join(model_names(), ", "));
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& entry : zoo()) names.emplace_back(entry.name);
  return names;
}

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

Classifier clone_model(const ClassifierImpl& model, const c10::optional<torch::Device>& device) {
  auto copy = std::dynamic_pointer_cast<ClassifierImpl>(model.clone(device));
  check(copy != nullptr, "clone of model {}: the copy is not a classifier", model.kind());
  return copy;
}

}  // namespace metadistill
