#include "metadistill/meta/meta_optimizer.h"

#include <cmath>

#include "metadistill/meta/gradient_method.h"
#include "metadistill/meta/metaparameter_space.h"
#include "metadistill/meta/trajectory.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

struct Registered {
  MetaOptimizerFactory factory;
  GivenLambda given = GivenLambda::kIgnored;
};

std::map<std::string, Registered>& registry() {
  static std::map<std::string, Registered> r;
  return r;
}

// The fixed-metaparameter baselines of DESIGN.md 3.3. Registered here rather than by static
// objects in their own file, because a static library drops unreferenced object files.
void register_builtin_methods() {
  static bool done = false;
  if (done) return;
  done = true;
  register_meta_optimizer("none", [](const MethodOptions&) {
    // The paper trains the plain student on the whole of D (train ∪ val).
    return std::make_unique<FixedMetaOptimizer>("none", Metaparameters{1.0, 1.0}, true);
  });
  register_meta_optimizer("naive", [](const MethodOptions&) {
    return std::make_unique<FixedMetaOptimizer>("naive", Metaparameters{0.5, 1.0});
  });
  register_meta_optimizer("fixed", [](const MethodOptions& o) {
    o.fixed.validate();
    return std::make_unique<FixedMetaOptimizer>("fixed", o.fixed);
  }, GivenLambda::kFixed);
  register_meta_optimizer("random", [](const MethodOptions& o) {
    return std::make_unique<FixedMetaOptimizer>("random",
                                                draw_metaparameters(o.seed, o.temperature_prior));
  });
  register_meta_optimizer("gradient", [](const MethodOptions& o) {
    return std::make_unique<GradientMetaOptimizer>(o, GradientMethodOptions::from_json(o.extra));
  }, GivenLambda::kInitial);
  register_meta_optimizer("proposed", [](const MethodOptions& o) {
    return std::make_unique<TrajectoryMetaOptimizer>(o, GradientMethodOptions::from_json(o.extra));
  }, GivenLambda::kInitial);
  register_meta_optimizer("proposed-guarded", [](const MethodOptions& o) {
    auto settings = GradientMethodOptions::from_json(o.extra);
    settings.guarded = true;
    return std::make_unique<TrajectoryMetaOptimizer>(o, settings);
  }, GivenLambda::kInitial);
}

}  // namespace

void register_meta_optimizer(const std::string& name, MetaOptimizerFactory factory,
                             GivenLambda given) {
  registry()[name] = {std::move(factory), given};
}

GivenLambda method_given_lambda(const std::string& name) {
  register_builtin_methods();
  auto it = registry().find(name);
  if (it == registry().end())
    fail("unknown method '{}': expected one of {}", name, fmt::join(method_names(), ", "));
  return it->second.given;
}

std::unique_ptr<MetaOptimizer> make_meta_optimizer(const MethodOptions& options) {
  register_builtin_methods();
  auto it = registry().find(options.method);
  if (it == registry().end())
    fail("unknown method '{}': expected one of {}", options.method,
         fmt::join(method_names(), ", "));
  return it->second.factory(options);
}

std::vector<std::string> method_names() {
  register_builtin_methods();
  std::vector<std::string> names;
  for (const auto& [name, registered] : registry()) names.push_back(name);
  return names;
}

Metaparameters draw_metaparameters(uint64_t seed, const std::string& prior) {
  // The paper's initial draw is the domain's own (log10 T uniform); its text gives T ~ U(0.1, 10)
  // for the random baseline, which is the draw of T as a plain interval.
  MetaSpace space = hinton_space();
  if (prior == "uniform")
    space = MetaSpace().interval("lambda1", 0, 1).interval(
        "temperature", Metaparameters::kMinTemperature, Metaparameters::kMaxTemperature);
  else
    check(prior == "log-uniform", "temperature prior '{}': expected 'log-uniform' or 'uniform'",
          prior);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 7919ULL + 17);
  auto u = torch::rand({2}, gen, torch::kDouble);
  return Metaparameters::from_vector(space.draw({u[0].item<double>(), u[1].item<double>()}));
}

bool is_hinton_space(const MetaSpace& space) {
  return space.size() == 2 && space[0].name == "lambda1" && space[1].name == "temperature";
}

const MetaSpace& MetaOptimizer::space() const {
  static const MetaSpace hinton = hinton_space();
  return hinton;
}

Metaparameters MetaOptimizer::current() const {
  check(is_hinton_space(space()), "method '{}' sets [{}], not the Hinton [lambda1, temperature]",
        name(), fmt::join(space().names(), ", "));
  return Metaparameters::from_vector(values());
}

bool MetaOptimizer::uses_teacher() const {
  return !is_hinton_space(space()) || !current().is_plain_ce();
}

FixedMetaOptimizer::FixedMetaOptimizer(std::string name, Metaparameters value,
                                       bool trains_on_validation)
    : name_(std::move(name)), space_(hinton_space()), coordinates_(value.to_vector()),
      values_(value.to_vector()), trains_on_validation_(trains_on_validation) {
  value.validate();
}

FixedMetaOptimizer::FixedMetaOptimizer(std::string name, MetaSpace space,
                                       std::vector<double> coordinates)
    : name_(std::move(name)), space_(std::move(space)), coordinates_(std::move(coordinates)) {
  check(coordinates_.size() == space_.size(), "method '{}': {} coordinates for the {} of [{}]",
        name_, coordinates_.size(), space_.size(), fmt::join(space_.names(), ", "));
  values_ = space_.from_coordinates(coordinates_);
}

TrajectoryPoint FixedMetaOptimizer::last_point() const {
  TrajectoryPoint p;
  p.step = step_;
  if (is_hinton_space(space_)) p.value = Metaparameters::from_vector(values_);
  p.r2_lambda1 = p.r2_temperature = std::nan("");
  p.phase = "fixed";
  return p;
}

}  // namespace metadistill
