#include "metadistill/meta/gradient_method.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/meta/trajectory.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

// The gradients of the step just taken (zeros where a parameter got none).
std::vector<torch::Tensor> step_gradients(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params)
    out.push_back(p.grad().defined() ? p.grad().detach() : torch::zeros_like(p));
  return out;
}

std::vector<double> to_doubles(const torch::Tensor& t) {
  const auto d = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace

namespace {

// Reads `key` of the method settings into `out` when present, naming the key and the value when
// its type is wrong (`method.settings.gamma: expected a number, got "fast"`).
template <typename T>
void read_setting(const nlohmann::json& j, const char* key, T& out) {
  if (!j.contains(key) || j.at(key).is_null()) return;
  const auto& v = j.at(key);
  const char* expected = "a string";
  bool ok = false;
  if constexpr (std::is_same_v<T, bool>) {
    ok = v.is_boolean();
    expected = "true or false";
  } else if constexpr (std::is_integral_v<T>) {
    ok = v.is_number_integer();
    expected = "an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    ok = v.is_number();
    expected = "a number";
  } else {
    ok = v.is_string();
  }
  check(ok, "method.settings.{}: expected {}, got {}", key, expected, v.dump());
  out = v.get<T>();
}

}  // namespace

GradientMethodOptions GradientMethodOptions::from_json(const nlohmann::json& j) {
  GradientMethodOptions o;
  static const std::set<std::string> known = {"hypergradient", "gamma", "clip", "every", "domain",
                                              "val_temperature", "fd_scale", "e1", "e2",
                                              "guarded", "r2_threshold", "order", "fd_scheme",
                                              "exact_product", "mu", "product",
                                              "reset_on_lr_drop", "meta_step", "tangent_batch",
                                              "tangent_clip"};
  if (!j.is_null()) {
    check(j.is_object(), "method.settings must be a mapping of keys, got {}", j.dump());
    for (const auto& [key, value] : j.items()) {
      if (!known.count(key))
        fail("method.settings: unknown key '{}' (known: {})", key, fmt::join(known, ", "));
      if (key == "hypergradient" && value.is_string() && value.get<std::string>() == "first-order")
        fail("method.settings.hypergradient 'first-order' is not offered: L_val does not depend "
             "on λ, so the first-order shortcut is exactly zero; use exact or fd");
    }
    std::string mode = o.hypergradient.mode;
    read_setting(j, "hypergradient", mode);
    o.online = mode == "online";
    if (!o.online) o.hypergradient.mode = mode;
    read_setting(j, "val_temperature", o.hypergradient.val_temperature);
    read_setting(j, "fd_scale", o.hypergradient.fd_scale);
    read_setting(j, "gamma", o.gamma);
    read_setting(j, "clip", o.clip);
    read_setting(j, "every", o.every);
    read_setting(j, "order", o.order);
    read_setting(j, "exact_product", o.hypergradient.exact_product);
    read_setting(j, "domain", o.domain);
    read_setting(j, "e1", o.e1);
    read_setting(j, "e2", o.e2);
    read_setting(j, "guarded", o.guarded);
    read_setting(j, "r2_threshold", o.r2_threshold);
    read_setting(j, "meta_step", o.meta_step);
    read_setting(j, "reset_on_lr_drop", o.reset_on_lr_drop);
    read_setting(j, "tangent_batch", o.tangent_batch);
    // The online hypergradient's own settings; fd_scheme and fd_scale serve the one in use.
    double mu = o.online_options.mu(), fd_scale = o.online_options.fd_scale(),
           tangent_clip = o.online_options.tangent_clip();
    std::string product = o.online_options.product(), scheme = o.online_options.fd_scheme();
    read_setting(j, "mu", mu);
    read_setting(j, "product", product);
    read_setting(j, "fd_scale", fd_scale);
    read_setting(j, "tangent_clip", tangent_clip);
    if (o.online) read_setting(j, "fd_scheme", scheme);
    if (!o.online) read_setting(j, "fd_scheme", o.hypergradient.fd_scheme);
    o.online_options.mu(mu).product(product).fd_scale(fd_scale).tangent_clip(tangent_clip)
        .fd_scheme(scheme);
  }
  o.validate();
  return o;
}

void GradientMethodOptions::validate() const {
  try {
    hypergradient.validate();
    if (online) online_options.validate();
  } catch (const Error& e) {
    fail("method.settings.{}", e.what());
  }
  check(tangent_batch >= 0,
        "method.settings.tangent_batch = {}: expected >= 0 (0 = the whole batch)", tangent_batch);
  check(tangent_batch == 0 || online_options.product() == "exact" ||
            online_options.fd_scheme() == "central",
        "method.settings.tangent_batch needs product: exact or fd_scheme: central (the one-sided "
        "difference reuses the whole batch's gradient)");
  MetaStepRule::check_kind(meta_step, "method.settings.meta_step");
  for (double v : step_sizes)
    check(std::isfinite(v) && v >= 0, "meta-step sizes hold {}: expected finite values >= 0", v);
  check(std::isfinite(meta_step_eps) && meta_step_eps > 0, "meta_step_eps = {}: expected > 0",
        meta_step_eps);
  check(std::isfinite(gamma) && gamma > 0 && gamma <= kMaxGamma,
        "method.settings.gamma = {}: expected a value in (0, {:g}]", gamma, kMaxGamma);
  check(std::isfinite(clip) && clip >= 0,
        "method.settings.clip = {}: expected a finite value >= 0 (0 = off)", clip);
  check(every >= 1, "method.settings.every = {}: expected >= 1", every);
  check(order == "before" || order == "lagged",
        "method.settings.order '{}': expected before or lagged", order);
  check(hypergradient.fd_scheme == "central" || order == "lagged",
        "method.settings.fd_scheme '{}' needs order: lagged (it reuses the step's logits)",
        hypergradient.fd_scheme);
  check(domain == "projected" || domain == "reparametrized",
        "method.settings.domain '{}': expected projected or reparametrized", domain);
  try {
    TrajectoryPredictorOptions().e1(e1).e2(e2).guarded(guarded).r2_threshold(r2_threshold)
        .validate();
  } catch (const Error& e) {
    fail("method.settings.{}", e.what());
  }
}

namespace {

// γ_λ for each coordinate, or the given sizes.
std::vector<double> step_sizes_of(const GradientMethodOptions& o, size_t n) {
  if (o.step_sizes.empty()) return std::vector<double>(n, o.gamma);
  check(o.step_sizes.size() == n, "{} meta-step sizes for {} coordinates", o.step_sizes.size(), n);
  return o.step_sizes;
}

}  // namespace

GradientMetaOptimizer::GradientMetaOptimizer(const MethodOptions& method,
                                             GradientMethodOptions options)
    : options_(std::move(options)),
      space_(method.space ? *method.space : hinton_space(options_.domain == "reparametrized")),
      hinton_(!method.space),
      rule_(options_.meta_step, step_sizes_of(options_, space_.size()), options_.meta_step_eps) {
  if (hinton_) {
    Metaparameters initial = method.given_initial
                                 ? method.fixed
                                 : draw_metaparameters(method.seed, method.temperature_prior);
    initial.validate();
    values_ = space_.project(initial.to_vector());
    coordinates_ = space_.to_coordinates(values_);
  } else {
    check(method.initial_coordinates.size() == space_.size(),
          "method '{}': {} initial coordinates for the {} of [{}]", method.method,
          method.initial_coordinates.size(), space_.size(), fmt::join(space_.names(), ", "));
    check(options_.tangent_batch == 0,
          "method.settings.tangent_batch is offered for the Hinton head only");
    set_coordinates(method.initial_coordinates);
  }
  if (options_.online) online_ = std::make_unique<OnlineHypergradient>(options_.online_options);
  mark(0, "init");
}

void GradientMetaOptimizer::set_coordinates(const std::vector<double>& c) {
  values_ = space_.from_coordinates(c);
  coordinates_ = space_.settle(c);
}

void GradientMetaOptimizer::mark(int64_t step, const char* phase) {
  last_.step = step;
  if (hinton_) last_.value = Metaparameters::from_vector(values_);
  last_.hypergradient.clear();
  last_.r2_lambda1 = last_.r2_temperature = std::nan("");
  last_.phase = phase;
}

std::vector<torch::Tensor> GradientMetaOptimizer::trained_parameters(
    const HyperStepContext& ctx) const {
  if (!hinton_) return ctx.head.params;
  return trainable_parameters(*ctx.student);
}

torch::Tensor GradientMetaOptimizer::m_tensor(const torch::Tensor& like) const {
  return torch::tensor(hinton_ ? values_ : coordinates_, torch::TensorOptions().dtype(torch::kDouble))
      .to(like.device(), like.scalar_type());
}

namespace {

// The context a hyper-step of another head needs.
void check_head(const HyperStepContext& ctx) {
  check(ctx.student && ctx.optimizer && ctx.train && ctx.head.train_loss && !ctx.head.params.empty(),
        "hyper-step: a method over another head's space needs the head's loss and parameters");
}

}  // namespace

void GradientMetaOptimizer::hyper_step(const HyperStepContext& ctx) {
  check(ctx.student && ctx.optimizer && ctx.train, "hyper-step: incomplete context");
  Batch val = ctx.next_val();
  auto options = options_.hypergradient;
  options.kd_scale = ctx.kd_scale;
  options.step_norm = ctx.step_norm;
  options.reduce = ctx.reduce;
  if (hinton_) {
    apply(greedy_hypergradient(*ctx.student, *ctx.optimizer, ctx.optimizer_kind, ctx.lr,
                               *ctx.train, ctx.teacher_logits, val,
                               Metaparameters::from_vector(values_), options),
          ctx.step);
    return;
  }
  check_head(ctx);
  apply_head_hypergradient(head_step(ctx, val, options.val_temperature), ctx, options);
}

HyperStep GradientMetaOptimizer::head_step(const HyperStepContext& ctx, const Batch& val,
                                           double val_temperature) const {
  HyperStep step;
  step.params = ctx.head.params;
  step.train_loss = ctx.head.train_loss;
  step.val_loss = [&ctx, &val, val_temperature] {
    return validation_loss(*ctx.student, val, val_temperature);
  };
  step.modules = ctx.head.modules;
  step.train_count = ctx.train->x.size(0);
  step.val_count = val.x.size(0);
  return step;
}

void GradientMetaOptimizer::apply_head_hypergradient(const HyperStep& step,
                                                     const HyperStepContext& ctx,
                                                     const HypergradientOptions& options) {
  const auto h = hypergradient(step, *ctx.optimizer, ctx.optimizer_kind, ctx.lr,
                               m_tensor(step.params.front()), options);
  apply(to_doubles(h.gradient), false, ctx.step);
}

void GradientMetaOptimizer::remember_weights(const HyperStepContext& ctx) {
  check(ctx.student != nullptr, "hyper-step: incomplete context");
  w_before_ = snapshot_parameters(trained_parameters(ctx));
  // The step's row until `after_step` adds the hypergradient.
  mark(ctx.step, "hyper");
}

void GradientMetaOptimizer::online_before_step(const HyperStepContext& ctx) {
  if (options_.reset_on_lr_drop && last_lr_ > 0 && ctx.lr < last_lr_) online_->reset();
  last_lr_ = ctx.lr;
  remember_weights(ctx);
}

void GradientMetaOptimizer::carry_tangents(const HyperStepContext& ctx) {
  check(ctx.student && ctx.optimizer && ctx.train && !w_before_.empty(),
        "online hyper-step: incomplete context");
  const auto params = trained_parameters(ctx);
  const auto grads = step_gradients(params);
  const auto m = m_tensor(params.front());
  if (!hinton_) {
    check_head(ctx);
    check(ctx.step_norm == StepNorm::kNone,
          "hypergradient online: step_norm ce is supported for the Hinton loss only");
    online_->carry(params, w_before_, grads, *ctx.optimizer, ctx.optimizer_kind, ctx.lr,
                   ctx.head.train_loss, m, ctx.head.modules, ctx.reduce, ctx.train->x.size(0));
    return;
  }
  check(ctx.teacher_logits.defined(), "hypergradient: the method distills but has no teacher logits");
  const Batch& train = *ctx.train;
  const int64_t batch = train.x.size(0);
  const int64_t n = options_.tangent_batch > 0 ? std::min(options_.tangent_batch, batch) : batch;
  const auto x = train.x.narrow(0, 0, n), y = train.y.narrow(0, 0, n);
  const auto teacher = ctx.teacher_logits.narrow(0, 0, n);
  // step_norm ce rescaled the step to the cross-entropy step's length (as the trainer does:
  // not when λ1 = 1, where the loss is the cross-entropy).
  const bool normed = ctx.step_norm == StepNorm::kCrossEntropy && values_[0] < 1.0;
  online_->carry(
      params, w_before_, grads, *ctx.optimizer, ctx.optimizer_kind, ctx.lr,
      [&](const torch::Tensor& mm) {
        return functional::hinton_loss(ctx.student->forward(x), teacher, y, mm[0], mm[1],
                                       ctx.kd_scale);
      },
      m, {ctx.student}, ctx.reduce, n,
      normed ? ValLossFn([&] {
        return torch::nn::functional::cross_entropy(ctx.student->forward(x), y);
      })
             : ValLossFn());
}

bool GradientMetaOptimizer::lagged_hyper_step(const HyperStepContext& ctx) {
  if (w_before_.empty()) return false;
  const std::vector<torch::nn::Module*> modules =
      hinton_ ? std::vector<torch::nn::Module*>{ctx.student} : ctx.head.modules;
  if (online_) {
    Batch val = ctx.next_val();
    auto g = online_->hypergradient(
        trained_parameters(ctx),
        [&] { return validation_loss(*ctx.student, val, options_.hypergradient.val_temperature); },
        modules, ctx.reduce, val.x.size(0));
    apply(to_doubles(g.gradient), hinton_, ctx.step);
    w_before_.clear();
    return true;
  }
  const auto params = trained_parameters(ctx);
  const auto grads = step_gradients(params);
  Batch val = ctx.next_val();
  auto options = options_.hypergradient;
  options.kd_scale = ctx.kd_scale;
  options.step_norm = ctx.step_norm;
  options.reduce = ctx.reduce;
  if (hinton_) {
    apply(lagged_hypergradient(*ctx.student, *ctx.optimizer, ctx.optimizer_kind, ctx.lr,
                               w_before_, grads, ctx.logits, *ctx.train, ctx.teacher_logits, val,
                               Metaparameters::from_vector(values_), options),
          ctx.step);
  } else {
    check_head(ctx);
    HyperStep step = head_step(ctx, val, options.val_temperature);
    step.w_before = w_before_;
    step.grads = grads;
    apply_head_hypergradient(step, ctx, options);
  }
  w_before_.clear();
  return true;
}

void GradientMetaOptimizer::apply(const std::vector<double>& h, bool of_values, int64_t step) {
  check(h.size() == space_.size(), "hypergradient of {} components for the {} of [{}]", h.size(),
        space_.size(), fmt::join(space_.names(), ", "));
  for (size_t i = 0; i < h.size(); ++i)
    check(std::isfinite(h[i]), "hypergradient became non-finite at step {} (m = [{}]): d{} = {}",
          step, fmt::join(values_, ", "), space_[i].name, h[i]);
  // Chain rule into the stepped coordinates.
  auto g = of_values ? space_.chain_rule(values_, h) : h;
  if (options_.clip > 0)
    for (auto& v : g) v = std::clamp(v, -options_.clip, options_.clip);
  const auto delta = rule_.delta(g);
  auto c = coordinates_;
  for (size_t i = 0; i < c.size(); ++i) c[i] -= delta[i];
  set_coordinates(c);
  mark(step, "hyper");
  last_.hypergradient = h;
}

void GradientMetaOptimizer::before_step(const HyperStepContext& ctx) {
  if (online_) online_before_step(ctx);
  if (ctx.step % options_.every == 0) {
    if (!lagged()) {
      hyper_step(ctx);
    } else if (!online_) {
      remember_weights(ctx);
    }
  } else {
    mark(ctx.step, "hold");
  }
}

void GradientMetaOptimizer::after_step(const HyperStepContext& ctx) {
  // The trajectory row of a lagged step shows the m the step used and the hypergradient at it.
  if (lagged()) {
    const auto used = values_;
    if (online_) {
      carry_tangents(ctx);
      if (ctx.step % options_.every != 0) {
        w_before_.clear();
        return;
      }
    }
    if (lagged_hyper_step(ctx) && hinton_) last_.value = Metaparameters::from_vector(used);
  }
}

nlohmann::json GradientMetaOptimizer::state() const {
  nlohmann::json s = {{"values", values_},
                      {"coordinates", coordinates_},
                      {"meta_step", rule_.state()},
                      {"last_lr", last_lr_}};
  if (hinton_) {
    s["lambda1"] = values_[0];
    s["temperature"] = values_[1];
  }
  return s;
}

void GradientMetaOptimizer::load_state(const nlohmann::json& s) {
  if (s.contains("coordinates")) {
    auto c = s.at("coordinates").get<std::vector<double>>();
    auto v = s.at("values").get<std::vector<double>>();
    check(c.size() == space_.size() && v.size() == space_.size(),
          "method state of {} metaparameters, expected the {} of [{}]", c.size(), space_.size(),
          fmt::join(space_.names(), ", "));
    coordinates_ = std::move(c);
    values_ = std::move(v);
  } else {
    // Checkpoints written before methods served other spaces hold λ1 and T only.
    check(hinton_, "method state without coordinates");
    values_ = {s.at("lambda1").get<double>(), s.at("temperature").get<double>()};
    coordinates_ = space_.to_coordinates(values_);
  }
  // Checkpoints written before meta-step rules existed hold λ only.
  if (s.contains("meta_step")) rule_.load_state(s.at("meta_step"));
  last_lr_ = s.value("last_lr", 0.0);
}

void GradientMetaOptimizer::save_tensors(torch::serialize::OutputArchive& archive) const {
  if (!online_) return;
  torch::serialize::OutputArchive tangents;
  online_->save(tangents);
  archive.write("online", tangents);
}

void GradientMetaOptimizer::load_tensors(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive tangents;
  if (online_ && archive.try_read("online", tangents)) online_->load(tangents);
}

}  // namespace metadistill
