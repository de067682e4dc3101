#include "metadistill/meta/lstm_optimizer.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace {

// File format version of `save_lstm_optimizer`.
constexpr int64_t kFormatVersion = 1;
const char* const kMagic = "metadistill-lstm-optimizer";

}  // namespace

void LstmOptimizerNetOptions::validate() const {
  check(hidden >= 1 && hidden <= 4096, "lstm optimizer hidden = {}: expected 1..4096", hidden);
  check(layers >= 1 && layers <= 8, "lstm optimizer layers = {}: expected 1..8", layers);
  check(std::isfinite(preprocess_p) && preprocess_p > 0 && preprocess_p < 700,
        "lstm optimizer preprocess_p = {}: expected a value in (0, 700)", preprocess_p);
  check(std::isfinite(output_scale) && output_scale > 0,
        "lstm optimizer output_scale = {}: expected > 0", output_scale);
}

namespace functional {

torch::Tensor preprocess_gradient(const torch::Tensor& d, double p) {
  auto flat = d.reshape({-1});
  const double threshold = std::exp(-p);
  auto magnitude = flat.abs();
  auto big = magnitude >= threshold;
  // clamp_min keeps the log finite (and its derivative 0) where the small branch is taken.
  auto first = torch::where(big, magnitude.clamp_min(threshold).log() / p,
                            torch::full_like(flat, -1.0));
  auto second = torch::where(big, flat.sign(), std::exp(p) * flat);
  return torch::stack({first, second}, 1);  // [N, 2]
}

}  // namespace functional

LstmState LstmState::zeros(int64_t layers, int64_t n, int64_t hidden, torch::TensorOptions options) {
  return {torch::zeros({layers, n, hidden}, options), torch::zeros({layers, n, hidden}, options)};
}

LstmState LstmState::detached() const { return {h.detach(), c.detach()}; }

LstmOptimizerNetImpl::LstmOptimizerNetImpl(LstmOptimizerNetOptions options)
    : options_(std::move(options)) {
  options_.validate();
  reset();
}

void LstmOptimizerNetImpl::reset() {
  cells_.clear();
  for (int64_t l = 0; l < options_.layers; ++l) {
    cells_.push_back(register_module(
        "cell" + std::to_string(l),
        torch::nn::LSTMCell(torch::nn::LSTMCellOptions(l == 0 ? 2 : options_.hidden, options_.hidden))));
  }
  out_ = register_module("out", torch::nn::Linear(options_.hidden, 1));
}

LstmState LstmOptimizerNetImpl::initial_state(int64_t n) const {
  const auto& w = out_->weight;
  return LstmState::zeros(options_.layers, n, options_.hidden, w.options().requires_grad(false));
}

std::pair<torch::Tensor, LstmState> LstmOptimizerNetImpl::forward(const torch::Tensor& d,
                                                                 const LstmState& state) {
  const int64_t n = d.numel();
  check(state.h.defined() && state.h.dim() == 3 && state.h.size(0) == options_.layers &&
            state.h.size(1) == n && state.h.size(2) == options_.hidden,
        "lstm optimizer: state of shape {} for {} coordinates: expected [{}, {}, {}]",
        state.h.defined() ? state.h.sizes() : c10::IntArrayRef{}, n, options_.layers, n,
        options_.hidden);
  auto x = functional::preprocess_gradient(d, options_.preprocess_p);  // [N, 2]
  std::vector<torch::Tensor> hs, cs;
  for (int64_t l = 0; l < options_.layers; ++l) {
    auto [h, c] = cells_[l]->forward(x, std::make_tuple(state.h[l], state.c[l]));  // [N, H]
    hs.push_back(h);
    cs.push_back(c);
    x = h;
  }
  auto y = out_->forward(x).reshape(d.sizes());
  return {options_.output_scale * y, LstmState{torch::stack(hs), torch::stack(cs)}};
}

void save_lstm_optimizer(const LstmOptimizerNetImpl& net, const std::filesystem::path& path) {
  torch::serialize::OutputArchive archive;
  const auto& o = net.options();
  archive.write("magic", torch::tensor(std::vector<int64_t>(kMagic, kMagic + std::strlen(kMagic))));
  archive.write("format", torch::tensor({kFormatVersion, o.hidden, o.layers}));
  archive.write("scalars", torch::tensor({o.preprocess_p, o.output_scale}, torch::kFloat64));
  for (const auto& p : net.named_parameters())
    archive.write("net." + p.key(), p.value().detach().to(torch::kCPU));
  std::ostringstream out;
  archive.save_to(out);
  write_file_atomic(path, out.str());
}

LstmOptimizerNet load_lstm_optimizer(const std::filesystem::path& path) {
  check(std::filesystem::exists(path),
        "learned optimizer file {}: not found (write one with `metadistill train-optimizer`)",
        path.string());
  const std::string bytes = read_file(path);
  torch::serialize::InputArchive archive;
  torch::Tensor magic, format, scalars;
  try {
    std::istringstream in(bytes);
    archive.load_from(in);
    archive.read("magic", magic);
    archive.read("format", format);
    archive.read("scalars", scalars);
  } catch (const c10::Error& e) {
    fail("learned optimizer file {}: not a learned-optimizer file ({})", path.string(),
         e.what_without_backtrace());
  }
  const std::string expected(kMagic);
  check(magic.dim() == 1 && magic.numel() == static_cast<int64_t>(expected.size()) &&
            magic.scalar_type() == torch::kInt64 &&
            magic.equal(torch::tensor(std::vector<int64_t>(expected.begin(), expected.end()))),
        "learned optimizer file {}: not a learned-optimizer file (wrong magic)", path.string());
  check(format.numel() == 3 && format.scalar_type() == torch::kInt64 &&
            format[0].item<int64_t>() == kFormatVersion,
        "learned optimizer file {}: unknown format (expected version {})", path.string(),
        kFormatVersion);
  check(scalars.numel() == 2 && scalars.scalar_type() == torch::kFloat64,
        "learned optimizer file {}: corrupt settings", path.string());
  LstmOptimizerNetOptions o;
  o.hidden = format[1].item<int64_t>();
  o.layers = format[2].item<int64_t>();
  o.preprocess_p = scalars[0].item<double>();
  o.output_scale = scalars[1].item<double>();
  try {
    o.validate();
  } catch (const Error& e) {
    fail("learned optimizer file {}: {}", path.string(), e.what());
  }
  LstmOptimizerNet net(o);
  torch::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) {
    torch::Tensor t;
    try {
      archive.read("net." + p.key(), t);
    } catch (const c10::Error&) {
      fail("learned optimizer file {}: weight '{}' is missing", path.string(), p.key());
    }
    check(t.sizes() == p.value().sizes(), "learned optimizer file {}: weight '{}' has shape {}, expected {}",
          path.string(), p.key(), t.sizes(), p.value().sizes());
    check(torch::isfinite(t).all().item<bool>(), "learned optimizer file {}: weight '{}' is not finite",
          path.string(), p.key());
    p.value().copy_(t);
  }
  return net;
}

void LstmOptimizerOptions::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue v;
  archive.read("lr", v);
  lr(v.toDouble());
  archive.read("weight_decay", v);
  weight_decay(v.toDouble());
}

void LstmOptimizerOptions::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("lr", c10::IValue(lr()));
  archive.write("weight_decay", c10::IValue(weight_decay()));
}

namespace {

std::vector<torch::optim::OptimizerParamGroup> single_group(std::vector<torch::Tensor> params) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::move(params));
  return groups;
}

}  // namespace

LstmOptimizer::LstmOptimizer(std::vector<torch::optim::OptimizerParamGroup> groups,
                             const LstmOptimizerNet& net, LstmOptimizerOptions defaults)
    : torch::optim::Optimizer(std::move(groups),
                              std::make_unique<LstmOptimizerOptions>(defaults)) {
  check(!net.is_empty(), "lstm optimizer: no network given");
  check(std::isfinite(defaults.lr()) && defaults.lr() > 0, "lstm optimizer lr = {}: expected > 0",
        defaults.lr());
  check(defaults.weight_decay() >= 0, "lstm optimizer weight_decay = {}: expected >= 0",
        defaults.weight_decay());
  // The network runs in the parameters' dtype and device (float64 in the gradient checks).
  bool first = true;
  torch::Device device = torch::kCPU;
  for (const auto& g : param_groups_)
    for (const auto& p : g.params()) {
      if (first) {
        dtype_ = p.scalar_type();
        device = p.device();
        first = false;
      }
      check(p.scalar_type() == dtype_, "lstm optimizer: parameters of dtypes {} and {}: expected one",
            c10::toString(dtype_), c10::toString(p.scalar_type()));
    }
  net_ = std::dynamic_pointer_cast<LstmOptimizerNetImpl>(net->clone());
  net_->to(device, dtype_);
  for (auto& p : net_->parameters()) p.requires_grad_(false);
}

LstmOptimizer::LstmOptimizer(std::vector<torch::Tensor> params, const LstmOptimizerNet& net,
                             LstmOptimizerOptions defaults)
    : LstmOptimizer(single_group(std::move(params)), net, std::move(defaults)) {}

const LstmParamState* LstmOptimizer::state_of(const torch::Tensor& param) const {
  auto it = state_.find(c10::guts::to_string(param.unsafeGetTensorImpl()));
  return it == state_.end() ? nullptr : static_cast<const LstmParamState*>(it->second.get());
}

LstmStep LstmOptimizer::compute(const torch::Tensor& d, const LstmState& state, bool jacobian,
                                LstmState* next) const {
  LstmStep out;
  if (!jacobian) {
    torch::NoGradGuard no_grad;
    auto [direction, s] = net_->forward(d, state);
    out.direction = direction;
    if (next) *next = s;
    return out;
  }
  // Coordinatewise: the gradient of Σ direction with respect to d is the diagonal of ∂direction/∂d.
  torch::AutoGradMode enable(true);
  auto dv = d.detach().clone().requires_grad_();
  auto [direction, s] = net_->forward(dv, state);
  out.preconditioner = torch::autograd::grad({direction.sum()}, {dv})[0].detach();
  out.direction = direction.detach();
  if (next) *next = s.detached();
  return out;
}

LstmStep LstmOptimizer::peek(const torch::Tensor& param, const torch::Tensor& d,
                             bool jacobian) const {
  const auto* st = state_of(param);
  const LstmState state = st ? LstmState{st->h(), st->c()} : net_->initial_state(param.numel());
  return compute(d.detach(), state, jacobian, nullptr);
}

torch::Tensor LstmOptimizer::last_step_preconditioner(const torch::Tensor& param,
                                                      const torch::Tensor& d) const {
  const auto* st = state_of(param);
  check(st != nullptr && st->step() > 0,
        "lstm optimizer: no step was taken for a parameter (shape {}), so there is no last step",
        param.sizes());
  return compute(d.detach(), LstmState{st->prev_h(), st->prev_c()}, true, nullptr).preconditioner;
}

torch::Tensor LstmOptimizer::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& o = static_cast<LstmOptimizerOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto d = p.grad().detach();
      if (o.weight_decay() != 0) d = d + o.weight_decay() * p.detach();
      const auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto st = std::make_unique<LstmParamState>();
        auto zero = net_->initial_state(p.numel());
        st->h(zero.h);
        st->c(zero.c);
        it = state_.emplace(key, std::move(st)).first;
      }
      auto& st = static_cast<LstmParamState&>(*it->second);
      LstmState next;
      auto s = compute(d, LstmState{st.h(), st.c()}, false, &next);
      st.prev_h(st.h());
      st.prev_c(st.c());
      st.h(next.h);
      st.c(next.c);
      st.step(st.step() + 1);
      p.sub_(o.lr() * s.direction);
    }
  }
  return loss;
}

void LstmOptimizer::save(torch::serialize::OutputArchive& archive) const {
  archive.write("kind", torch::tensor(std::vector<int64_t>{'l', 's', 't', 'm'}));
  int64_t i = 0;
  for (const auto& group : param_groups_)
    for (const auto& p : group.params()) {
      const auto* st = state_of(p);
      const std::string prefix = "param." + std::to_string(i++) + ".";
      if (!st) continue;
      archive.write(prefix + "step", torch::tensor(st->step()));
      archive.write(prefix + "h", st->h());
      archive.write(prefix + "c", st->c());
      archive.write(prefix + "prev_h", st->prev_h());
      archive.write(prefix + "prev_c", st->prev_c());
    }
  archive.write("count", torch::tensor(i));
}

void LstmOptimizer::load(torch::serialize::InputArchive& archive) {
  torch::Tensor kind, count;
  check(archive.try_read("kind", kind) &&
            kind.equal(torch::tensor(std::vector<int64_t>{'l', 's', 't', 'm'})),
        "lstm optimizer: the checkpoint holds the state of another optimizer");
  archive.read("count", count);
  int64_t i = 0;
  for (const auto& group : param_groups_)
    for (const auto& p : group.params()) {
      const std::string prefix = "param." + std::to_string(i++) + ".";
      torch::Tensor step;
      const auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      if (!archive.try_read(prefix + "step", step)) {
        state_.erase(key);
        continue;
      }
      auto st = std::make_unique<LstmParamState>();
      st->step(step.item<int64_t>());
      torch::Tensor h, c, ph, pc;
      archive.read(prefix + "h", h);
      archive.read(prefix + "c", c);
      archive.read(prefix + "prev_h", ph);
      archive.read(prefix + "prev_c", pc);
      const auto& o = net_->options();
      check(h.dim() == 3 && h.size(0) == o.layers && h.size(1) == p.numel() && h.size(2) == o.hidden,
            "lstm optimizer: the checkpoint's state for parameter {} has shape {}, expected [{}, {}, {}]",
            i - 1, h.sizes(), o.layers, p.numel(), o.hidden);
      st->h(h.to(p.device()));
      st->c(c.to(p.device()));
      st->prev_h(ph.to(p.device()));
      st->prev_c(pc.to(p.device()));
      state_[key] = std::move(st);
    }
  check(count.item<int64_t>() == i,
        "lstm optimizer: the checkpoint holds {} parameters' states, the optimizer has {}",
        count.item<int64_t>(), i);
}

}  // namespace metadistill
