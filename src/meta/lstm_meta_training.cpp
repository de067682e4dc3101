#include "metadistill/meta/lstm_meta_training.h"

#include <cmath>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"

namespace metadistill {

namespace {

std::vector<torch::Tensor> detached(const std::vector<torch::Tensor>& v) {
  std::vector<torch::Tensor> out;
  out.reserve(v.size());
  for (const auto& t : v) out.push_back(t.detach());
  return out;
}

torch::Tensor string_tensor(const std::string& s) {
  return torch::from_blob(const_cast<char*>(s.data()), {static_cast<int64_t>(s.size())}, torch::kUInt8)
      .clone();
}

std::string tensor_string(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel());
}

}  // namespace

std::pair<double, std::vector<torch::Tensor>> OptimizeeTask::loss_and_gradient(
    const std::vector<torch::Tensor>& theta, int64_t step) {
  torch::AutoGradMode enable(true);  // also under a caller's NoGradGuard
  std::vector<torch::Tensor> leaves;
  for (const auto& t : theta) leaves.push_back(t.detach().requires_grad_());
  auto f = loss(leaves, step);
  auto g = torch::autograd::grad({f}, leaves);
  return {f.item<double>(), detached(g)};
}

QuadraticTask::QuadraticTask(QuadraticTaskOptions options) : options_(options) {
  check(options_.dim >= 1, "quadratic task: dim = {}: expected >= 1", options_.dim);
  check(options_.batch >= 1, "quadratic task: batch = {}: expected >= 1", options_.batch);
}

nlohmann::json QuadraticTask::settings() const {
  return {{"task", "quadratics"},
          {"dim", options_.dim},
          {"batch", options_.batch},
          {"seed", options_.seed},
          {"dtype", c10::toString(options_.dtype)}};
}

std::vector<torch::Tensor> QuadraticTask::start(uint64_t index) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed * 1000003ULL + index);
  auto opts = torch::TensorOptions().dtype(options_.dtype);
  const int64_t b = options_.batch, n = options_.dim;
  W_ = torch::randn({b, n, n}, gen, opts);
  y_ = torch::randn({b, n}, gen, opts);
  return {torch::randn({b, n}, gen, opts)};
}

torch::Tensor QuadraticTask::loss(const std::vector<torch::Tensor>& theta, int64_t /*step*/) {
  check(W_.defined(), "quadratic task: no problem started");
  check(theta.size() == 1 && theta[0].sizes() == y_.sizes(),
        "quadratic task: expected one parameter of shape {}", y_.sizes());
  auto r = torch::bmm(W_, theta[0].unsqueeze(2)).squeeze(2) - y_;  // [B, n]
  return r.pow(2).sum();  // a sum: θ_b's gradient is f_b's own, whatever the batch
}

DistillationTask::DistillationTask(const DataSet& pool, torch::Tensor train_ids,
                                   torch::Tensor teacher_logits, ModelSpec student,
                                   DistillationTaskOptions options, nlohmann::json data_settings)
    : pool_(pool),
      train_ids_(std::move(train_ids)),
      teacher_logits_(std::move(teacher_logits)),
      spec_(std::move(student)),
      options_(options),
      data_settings_(std::move(data_settings)) {
  check(options_.batch_size >= 0, "distillation task: batch_size = {}: expected >= 0",
        options_.batch_size);
  check(std::isfinite(options_.lambda1) && options_.lambda1 >= 0 && options_.lambda1 <= 1,
        "distillation task: lambda1 = {}: expected a value in [0, 1]", options_.lambda1);
  check(std::isfinite(options_.temperature) && options_.temperature > 0,
        "distillation task: temperature = {}: expected > 0", options_.temperature);
  check(options_.lambda1 == 1.0 || teacher_logits_.defined(),
        "distillation task: lambda1 = {} distills but no teacher logits were given", options_.lambda1);
  teacher_logits_ = teacher_logits_.defined() ? teacher_logits_.to(options_.device) : teacher_logits_;
}

nlohmann::json DistillationTask::settings() const {
  return {{"task", "distill"},
          {"data", data_settings_},
          {"student", spec_.name},
          {"batch_size", options_.batch_size},
          {"lambda1", options_.lambda1},
          {"temperature", options_.temperature},
          {"kd_scale", options_.kd_scale == KdScale::kNone ? "none" : "t_squared"},
          {"seed", options_.seed}};
}

std::vector<torch::Tensor> DistillationTask::start(uint64_t index) {
  torch::manual_seed(options_.seed + index);
  model_ = make_model(spec_);
  model_->to(options_.device);
  model_->train();
  loader_ = std::make_unique<BatchLoader>(
      pool_, train_ids_, LoaderOptions().batch(options_.batch_size).seeded(options_.seed + index),
      options_.device);
  epoch_ = -1;
  std::vector<torch::Tensor> theta;
  for (const auto& p : model_->parameters())
    if (p.requires_grad()) theta.push_back(p.detach().clone());
  return theta;
}

torch::Tensor DistillationTask::loss(const std::vector<torch::Tensor>&, int64_t) {
  fail("distillation task: second-order meta-gradients are not supported (a network is not a "
       "function of a parameter list here); use the first-order meta-gradient");
}

std::pair<double, std::vector<torch::Tensor>> DistillationTask::loss_and_gradient(
    const std::vector<torch::Tensor>& theta, int64_t step) {
  check(model_ != nullptr, "distillation task: no problem started");
  torch::AutoGradMode enable(true);  // also under a caller's NoGradGuard
  std::vector<torch::Tensor> params;
  for (const auto& p : model_->parameters())
    if (p.requires_grad()) params.push_back(p);
  check(params.size() == theta.size(), "distillation task: {} parameters given, the student has {}",
        theta.size(), params.size());
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(theta[i]);
  }
  const int64_t nb = loader_->batches_per_epoch();
  const int64_t epoch = step / nb;
  if (epoch != epoch_) {
    loader_->start_epoch(epoch);
    epoch_ = epoch;
  }
  Batch batch = loader_->batch(step % nb);
  auto logits = model_->forward(batch.x);
  torch::Tensor teacher;
  if (teacher_logits_.defined()) teacher = teacher_logits_.index_select(0, batch.idx.to(options_.device));
  auto f = functional::hinton_loss(logits, teacher, batch.y, options_.lambda1, options_.temperature,
                                   options_.kd_scale);
  auto g = torch::autograd::grad({f}, params, {}, false, false, /*allow_unused=*/true);
  std::vector<torch::Tensor> grads;
  for (size_t i = 0; i < g.size(); ++i)
    grads.push_back(g[i].defined() ? g[i].detach() : torch::zeros_like(params[i]));
  return {f.item<double>(), grads};
}

UnrollResult unroll(LstmOptimizerNetImpl& net, OptimizeeTask& task,
                    const std::vector<torch::Tensor>& theta0, const std::vector<LstmState>& state0,
                    int64_t first_step, int64_t steps, double lr, bool second_order) {
  check(steps >= 1, "unroll: steps = {}: expected >= 1", steps);
  check(state0.size() == theta0.size(), "unroll: {} LSTM states for {} parameters", state0.size(),
        theta0.size());
  const size_t P = theta0.size();
  UnrollResult r;
  std::vector<LstmState> state = state0;
  auto objective = torch::zeros({}, net.parameters().front().options().requires_grad(false));
  if (!second_order) {
    // θ_t = θ_0 + disp_t: values without graph, disp_t with its graph through the LSTM only.
    std::vector<torch::Tensor> theta = detached(theta0), disp(P);
    auto [f, g] = task.loss_and_gradient(theta, first_step);
    for (int64_t t = 0; t < steps; ++t) {
      for (size_t i = 0; i < P; ++i) {
        auto [direction, next] = net.forward(g[i], state[i]);
        state[i] = next;
        auto delta = -lr * direction;
        disp[i] = disp[i].defined() ? disp[i] + delta : delta;
        theta[i] = theta[i] + delta.detach();
      }
      std::tie(f, g) = task.loss_and_gradient(theta, first_step + t + 1);
      r.loss_sum += f;
      for (size_t i = 0; i < P; ++i) objective = objective + (g[i] * disp[i]).sum();
    }
    r.final_loss = f;
    r.theta = theta;
  } else {
    std::vector<torch::Tensor> theta;
    for (const auto& t : theta0) theta.push_back(t.detach().clone().requires_grad_());
    auto f = task.loss(theta, first_step);
    auto g = torch::autograd::grad({f}, theta, {}, /*retain_graph=*/true, /*create_graph=*/true);
    for (int64_t t = 0; t < steps; ++t) {
      for (size_t i = 0; i < P; ++i) {
        auto [direction, next] = net.forward(g[i], state[i]);
        state[i] = next;
        theta[i] = theta[i] - lr * direction;
      }
      f = task.loss(theta, first_step + t + 1);
      r.loss_sum += f.item<double>();
      objective = objective + f;
      if (t + 1 < steps)
        g = torch::autograd::grad({f}, theta, {}, /*retain_graph=*/true, /*create_graph=*/true);
    }
    r.final_loss = f.item<double>();
    r.theta = detached(theta);
  }
  r.objective = objective;
  for (auto& s : state) r.state.push_back(s.detached());
  return r;
}

void LstmMetaTrainingOptions::validate() const {
  check(unroll >= 1, "unroll = {}: expected >= 1", unroll);
  check(horizon >= 1, "horizon = {}: expected >= 1", horizon);
  check(episodes >= 1, "episodes = {}: expected >= 1", episodes);
  check(std::isfinite(meta_lr) && meta_lr > 0, "meta_lr = {}: expected > 0", meta_lr);
  check(std::isfinite(lr) && lr > 0, "lr = {}: expected > 0", lr);
  check(std::isfinite(clip) && clip >= 0, "clip = {}: expected >= 0 (0 = off)", clip);
  check(checkpoint_every >= 1, "checkpoint_every = {}: expected >= 1", checkpoint_every);
  net.validate();
}

nlohmann::json LstmMetaTrainingOptions::to_json() const {
  return {{"unroll", unroll},
          {"horizon", horizon},
          {"episodes", episodes},
          {"meta_lr", meta_lr},
          {"lr", lr},
          {"clip", clip},
          {"second_order", second_order},
          {"seed", seed},
          {"hidden", net.hidden},
          {"layers", net.layers},
          {"preprocess_p", net.preprocess_p},
          {"output_scale", net.output_scale}};
}

LstmMetaTrainingResult train_lstm_optimizer(OptimizeeTask& task,
                                            const LstmMetaTrainingOptions& o) {
  o.validate();
  // The episode count is not a setting of the checkpoint: episode e computes the same whatever
  // the total, so a run may be extended or cut short from its checkpoint.
  nlohmann::json settings = {{"training", o.to_json()}, {"task", task.settings()}};
  settings["training"].erase("episodes");
  LstmMetaTrainingResult result;
  torch::manual_seed(o.seed);
  result.net = LstmOptimizerNet(o.net);
  auto& net = *result.net;
  bool converted = false;
  torch::optim::Adam adam(net.parameters(), torch::optim::AdamOptions(o.meta_lr));
  int64_t first_episode = 0;

  namespace fs = std::filesystem;
  if (!o.checkpoint.empty() && fs::exists(o.checkpoint)) {
    torch::serialize::InputArchive archive;
    torch::Tensor settings_bytes, episode, history;
    try {
      std::istringstream in(read_file(o.checkpoint));
      archive.load_from(in);
      archive.read("settings", settings_bytes);
      archive.read("episode", episode);
      archive.read("history", history);
    } catch (const c10::Error& e) {
      fail("meta-training checkpoint {}: unreadable ({}); delete it to start afresh",
           o.checkpoint.string(), e.what_without_backtrace());
    }
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(tensor_string(settings_bytes));
    } catch (const nlohmann::json::exception&) {
      fail("meta-training checkpoint {}: corrupt settings record", o.checkpoint.string());
    }
    nlohmann::json stored = record.value("settings", nlohmann::json());
    if (stored.is_object() && stored.contains("training") && stored["training"].is_object())
      stored["training"].erase("episodes");  // recorded by earlier versions
    check_stored_settings(settings_record(stored), settings,
                          "meta-training checkpoint " + o.checkpoint.string());
    torch::NoGradGuard no_grad;
    for (auto& p : net.named_parameters()) {
      torch::Tensor t;
      archive.read("net." + p.key(), t);
      if (!converted) {
        net.to(t.scalar_type());
        converted = true;
      }
      p.value().copy_(t);
    }
    torch::serialize::InputArchive adam_archive;
    archive.read("adam", adam_archive);
    adam.load(adam_archive);
    first_episode = episode.item<int64_t>();
    for (int64_t i = 0; i < history.numel(); ++i)
      result.episode_loss.push_back(history[i].item<double>());
    result.resumed_episodes = first_episode;
  }

  auto save_checkpoint = [&](int64_t episodes_done) {
    torch::serialize::OutputArchive archive;
    archive.write("settings", string_tensor(settings_record(settings).dump()));
    archive.write("episode", torch::tensor(episodes_done));
    archive.write("history", torch::tensor(result.episode_loss, torch::kFloat64));
    for (const auto& p : net.named_parameters()) archive.write("net." + p.key(), p.value().detach());
    torch::serialize::OutputArchive adam_archive;
    adam.save(adam_archive);
    archive.write("adam", adam_archive);
    std::ostringstream out;
    archive.save_to(out);
    write_file_atomic(o.checkpoint, out.str());
  };

  for (int64_t e = first_episode; e < o.episodes; ++e) {
    auto theta = task.start(static_cast<uint64_t>(e));
    check(!theta.empty(), "meta-training: the task's problem {} has no parameters", e);
    if (!converted) {
      // The network computes in the optimizee's dtype (float64 in the gradient checks).
      net.to(theta.front().device(), theta.front().scalar_type());
      converted = true;
    }
    std::vector<LstmState> state;
    for (const auto& t : theta) state.push_back(net.initial_state(t.numel()));
    double sum = 0;
    for (int64_t k = 0; k < o.horizon; k += o.unroll) {
      const int64_t steps = std::min(o.unroll, o.horizon - k);
      auto r = unroll(net, task, theta, state, k, steps, o.lr, o.second_order);
      check(std::isfinite(r.loss_sum),
            "meta-training diverged in episode {} at step {} (loss {}): lower lr or meta_lr", e, k,
            r.loss_sum);
      adam.zero_grad();
      r.objective.backward();
      if (o.clip > 0) torch::nn::utils::clip_grad_norm_(net.parameters(), o.clip);
      adam.step();
      theta = r.theta;
      state = r.state;
      sum += r.loss_sum;
    }
    result.episode_loss.push_back(sum / static_cast<double>(o.horizon));
    if (o.on_episode) o.on_episode(e, result.episode_loss.back());
    if (!o.checkpoint.empty() && ((e + 1) % o.checkpoint_every == 0 || e + 1 == o.episodes))
      save_checkpoint(e + 1);
  }
  return result;
}

std::vector<double> run_optimizer(OptimizeeTask& task, uint64_t index, int64_t steps,
                                  const UpdateRule& rule) {
  auto theta = task.start(index);
  std::vector<double> losses;
  for (int64_t t = 0;; ++t) {
    auto [f, g] = task.loss_and_gradient(theta, t);
    losses.push_back(f);
    if (t == steps) break;
    auto update = rule(theta, g, t);
    for (size_t i = 0; i < theta.size(); ++i) theta[i] = theta[i] + update[i];
  }
  return losses;
}

UpdateRule lstm_rule(LstmOptimizerNetImpl& net, double lr) {
  auto state = std::make_shared<std::vector<LstmState>>();
  return [&net, lr, state](const std::vector<torch::Tensor>&, const std::vector<torch::Tensor>& g,
                           int64_t) {
    torch::NoGradGuard no_grad;
    if (state->empty())
      for (const auto& t : g) state->push_back(net.initial_state(t.numel()));
    std::vector<torch::Tensor> out;
    for (size_t i = 0; i < g.size(); ++i) {
      auto [direction, next] = net.forward(g[i], (*state)[i]);
      (*state)[i] = next;
      out.push_back(-lr * direction);
    }
    return out;
  };
}

UpdateRule sgd_rule(double lr) {
  return [lr](const std::vector<torch::Tensor>&, const std::vector<torch::Tensor>& g, int64_t) {
    std::vector<torch::Tensor> out;
    for (const auto& t : g) out.push_back(-lr * t);
    return out;
  };
}

}  // namespace metadistill
