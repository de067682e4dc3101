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

GradientMetaOptimizer::GradientMetaOptimizer(const MethodOptions& method,
                                             GradientMethodOptions options)
    : options_(std::move(options)),
      space_(hinton_space(options_.domain == "reparametrized")),
      rule_(options_.meta_step, {options_.gamma, options_.gamma}) {
  Metaparameters initial = method.given_initial
                               ? method.fixed
                               : draw_metaparameters(method.seed, method.temperature_prior);
  initial.validate();
  set_value(initial);
  if (options_.online) online_ = std::make_unique<OnlineHypergradient>(options_.online_options);
  last_.value = value_;
  last_.phase = "init";
  last_.r2_lambda1 = last_.r2_temperature = std::nan("");
}

void GradientMetaOptimizer::set_value(const Metaparameters& m) {
  value_ = Metaparameters::from_vector(space_.project(m.to_vector()));
}

std::pair<double, double> GradientMetaOptimizer::coordinates() const {
  const auto c = space_.to_coordinates(value_.to_vector());
  return {c[0], c[1]};
}

Metaparameters GradientMetaOptimizer::from_coordinates(double c1, double c2) const {
  return Metaparameters::from_vector(space_.from_coordinates(std::vector<double>{c1, c2}));
}

void GradientMetaOptimizer::hyper_step(const HyperStepContext& ctx) {
  check(ctx.student && ctx.optimizer && ctx.train, "hyper-step: incomplete context");
  Batch val = ctx.next_val();
  auto options = options_.hypergradient;
  options.kd_scale = ctx.kd_scale;
  options.step_norm = ctx.step_norm;
  options.reduce = ctx.reduce;
  apply(greedy_hypergradient(*ctx.student, *ctx.optimizer, ctx.optimizer_kind, ctx.lr, *ctx.train,
                             ctx.teacher_logits, val, value_, options),
        ctx.step);
}

void GradientMetaOptimizer::remember_weights(const HyperStepContext& ctx) {
  check(ctx.student != nullptr, "hyper-step: incomplete context");
  w_before_.clear();
  for (const auto& p : ctx.student->parameters())
    if (p.requires_grad()) w_before_.push_back(p.detach().clone());
  // The step's row until `after_step` adds the hypergradient.
  last_.step = ctx.step;
  last_.value = value_;
  last_.hypergradient.clear();
  last_.phase = "hyper";
}

void GradientMetaOptimizer::online_before_step(const HyperStepContext& ctx) {
  if (options_.reset_on_lr_drop && last_lr_ > 0 && ctx.lr < last_lr_) online_->reset();
  last_lr_ = ctx.lr;
  remember_weights(ctx);
}

void GradientMetaOptimizer::carry_tangents(const HyperStepContext& ctx) {
  check(ctx.student && ctx.optimizer && ctx.train && !w_before_.empty(),
        "online hyper-step: incomplete context");
  check(ctx.step_norm == StepNorm::kNone,
        "hypergradient online: step_norm ce is not supported (the tangent of the normalized step "
        "is not implemented); use step_norm: none");
  check(ctx.teacher_logits.defined(), "hypergradient: the method distills but has no teacher logits");
  check(!ctx.reduce, "hypergradient online is not data-parallel yet (the tangents would follow one "
        "rank's shard); use hypergradient exact or fd, or one process");
  const auto params = trainable_parameters(*ctx.student);
  const auto grads = step_gradients(params);
  const auto& front = params.front();
  auto m = torch::tensor({value_.lambda1, value_.temperature},
                         torch::TensorOptions().dtype(front.dtype()).device(front.device()));
  const Batch& train = *ctx.train;
  const int64_t batch = train.x.size(0);
  const int64_t n = options_.tangent_batch > 0 ? std::min(options_.tangent_batch, batch) : batch;
  const auto x = train.x.narrow(0, 0, n), y = train.y.narrow(0, 0, n);
  const auto teacher = ctx.teacher_logits.narrow(0, 0, n);
  online_->carry(
      params, w_before_, grads, *ctx.optimizer, ctx.optimizer_kind, ctx.lr,
      [&](const torch::Tensor& mm) {
        return functional::hinton_loss(ctx.student->forward(x), teacher, y, mm[0], mm[1],
                                       ctx.kd_scale);
      },
      m, {ctx.student});
}

bool GradientMetaOptimizer::lagged_hyper_step(const HyperStepContext& ctx) {
  if (w_before_.empty()) return false;
  if (online_) {
    Batch val = ctx.next_val();
    const auto params = trainable_parameters(*ctx.student);
    auto g = online_->hypergradient(
        params,
        [&] { return validation_loss(*ctx.student, val, options_.hypergradient.val_temperature); },
        {ctx.student});
    Hypergradient h;
    h.lambda1 = g.gradient[0].item<double>();
    h.temperature = g.gradient[1].item<double>();
    h.val_loss = g.val_loss;
    apply(h, ctx.step);
    w_before_.clear();
    return true;
  }
  const auto grads = step_gradients(trainable_parameters(*ctx.student));
  Batch val = ctx.next_val();
  auto options = options_.hypergradient;
  options.kd_scale = ctx.kd_scale;
  options.step_norm = ctx.step_norm;
  options.reduce = ctx.reduce;
  apply(lagged_hypergradient(*ctx.student, *ctx.optimizer, ctx.optimizer_kind, ctx.lr, w_before_,
                             grads, ctx.logits, *ctx.train, ctx.teacher_logits, val, value_,
                             options),
        ctx.step);
  w_before_.clear();
  return true;
}

void GradientMetaOptimizer::apply(const Hypergradient& h, int64_t step) {
  check(std::isfinite(h.lambda1) && std::isfinite(h.temperature),
        "hypergradient became non-finite at step {} ({}): dλ1 = {}, dT = {}", step,
        value_.to_string(), h.lambda1, h.temperature);
  // Chain rule into the stepped coordinates.
  const auto g = space_.chain_rule(value_.to_vector(), {h.lambda1, h.temperature});
  double g1 = g[0], g2 = g[1];
  auto [c1, c2] = coordinates();
  if (options_.clip > 0) {
    g1 = std::clamp(g1, -options_.clip, options_.clip);
    g2 = std::clamp(g2, -options_.clip, options_.clip);
  }
  const auto delta = rule_.delta({g1, g2});
  value_ = from_coordinates(c1 - delta[0], c2 - delta[1]);
  last_.step = step;
  last_.value = value_;
  last_.hypergradient = {h.lambda1, h.temperature};
  last_.phase = "hyper";
}

Metaparameters GradientMetaOptimizer::before_step(const HyperStepContext& ctx) {
  last_.r2_lambda1 = last_.r2_temperature = std::nan("");
  if (online_) online_before_step(ctx);
  if (ctx.step % options_.every == 0) {
    if (!lagged()) {
      hyper_step(ctx);
    } else if (!online_) {
      remember_weights(ctx);
    }
  } else {
    last_.step = ctx.step;
    last_.value = value_;
    last_.hypergradient.clear();
    last_.phase = "hold";
  }
  return value_;
}

void GradientMetaOptimizer::after_step(const HyperStepContext& ctx) {
  // The trajectory row of a lagged step shows the λ the step used and the hypergradient at it.
  if (lagged()) {
    const Metaparameters used = value_;
    if (online_) {
      carry_tangents(ctx);
      if (ctx.step % options_.every != 0) {
        w_before_.clear();
        return;
      }
    }
    if (lagged_hyper_step(ctx)) last_.value = used;
  }
}

nlohmann::json GradientMetaOptimizer::state() const {
  return {{"lambda1", value_.lambda1},
          {"temperature", value_.temperature},
          {"meta_step", rule_.state()},
          {"last_lr", last_lr_}};
}

void GradientMetaOptimizer::load_state(const nlohmann::json& s) {
  value_ = {s.at("lambda1").get<double>(), s.at("temperature").get<double>()};
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
