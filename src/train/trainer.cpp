#include "metadistill/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/data/augment.h"
#include "metadistill/losses/hinton.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/train/loop.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

nlohmann::json to_json(const EpochMetrics& m) {
  auto j = epoch_record_json(m);
  j["lambda1"] = m.lambda.lambda1;
  j["temperature"] = m.lambda.temperature;
  return j;
}

EpochMetrics epoch_from_json(const nlohmann::json& j) {
  EpochMetrics m;
  static_cast<EpochRecord&>(m) = epoch_record_from_json(j);
  m.lambda = {j.at("lambda1"), j.at("temperature")};
  return m;
}

// NaN is not valid JSON; fits without a window store null.
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
double num_from(const nlohmann::json& j) { return j.is_null() ? std::nan("") : j.get<double>(); }

nlohmann::json to_json(const TrajectoryPoint& p) {
  return {{"step", p.step},
          {"lambda1", p.value.lambda1},
          {"temperature", p.value.temperature},
          {"hypergradient", p.hypergradient},
          {"r2_lambda1", num(p.r2_lambda1)},
          {"r2_temperature", num(p.r2_temperature)},
          {"phase", p.phase}};
}

TrajectoryPoint point_from_json(const nlohmann::json& j) {
  TrajectoryPoint p;
  p.step = j.at("step");
  p.value = {j.at("lambda1"), j.at("temperature")};
  p.hypergradient = j.at("hypergradient").get<std::vector<double>>();
  p.r2_lambda1 = num_from(j.at("r2_lambda1"));
  p.r2_temperature = num_from(j.at("r2_temperature"));
  p.phase = j.at("phase");
  return p;
}


}  // namespace

void TrainerOptions::validate() const {
  check(epochs >= 1, "epochs = {}: expected >= 1", epochs);
  check(batch_size >= 0, "batch_size = {}: expected >= 0 (0 = full batch)", batch_size);
  check(std::isfinite(lr) && lr > 0, "lr = {}: expected a finite value > 0", lr);
  check(lr_step >= 0, "lr_step = {}: expected >= 0 (0 = constant)", lr_step);
  check(lr_gamma > 0 && lr_gamma <= 1, "lr_gamma = {}: expected a value in (0, 1]", lr_gamma);
  check(lr_schedule == "step" || lr_schedule == "cosine",
        "lr_schedule '{}': expected step or cosine", lr_schedule);
  check(optimizer == "sgd" || optimizer == "momentum" || optimizer == "adam" || optimizer == "lstm",
        "optimizer '{}': expected sgd, momentum, adam or lstm", optimizer);
  check(optimizer != "lstm" || !optimizer_file.empty(),
        "optimizer 'lstm' needs the learned optimizer's file (optimizer: {{kind: lstm, file: FILE}}, "
        "written by `metadistill train-optimizer`)");
  check(momentum >= 0 && momentum < 1, "momentum = {}: expected a value in [0, 1)", momentum);
  check(weight_decay >= 0, "weight_decay = {}: expected >= 0", weight_decay);
  check(eval_every >= 1, "eval_every = {}: expected >= 1", eval_every);
  parse_kd_scale(kd_scale);
  parse_step_norm(step_norm);
  for (double v : lr_by_epoch)
    check(std::isfinite(v) && v >= 0, "lr_by_epoch holds {}: expected learning rates >= 0", v);
  for (int64_t e : keep_checkpoints)
    check(e >= 1, "keep_checkpoints holds epoch {}: expected epochs >= 1", e);
  check(checkpoint_every >= 0, "checkpoint_every = {}: expected >= 0", checkpoint_every);
  check(val_batch_size >= 0, "val_batch_size = {}: expected >= 0 (0 = batch_size)", val_batch_size);
  check(trajectory_every >= 1, "trajectory_every = {}: expected >= 1", trajectory_every);
  check(!resume || !out_dir.empty(), "resume needs an output folder");
  check(std::isfinite(time_limit) && time_limit >= 0,
        "time_limit = {}: expected seconds >= 0 (0 = none)", time_limit);
  bool enabled = false;
  parse_augmentation(augmentation, &enabled);
}

namespace {

// Per confidence bin (lo, hi] of (0, 1]: [3, bins] = count, sum of confidences, correct (float64).
torch::Tensor calibration_bins(const torch::Tensor& logits, const torch::Tensor& labels,
                               int64_t bins) {
  check(bins >= 1, "expected_calibration_error: bins = {}: expected >= 1", bins);
  check(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0),
        "expected_calibration_error: logits {} and labels {}: expected [N, K] and [N]",
        logits.sizes(), labels.sizes());
  auto probs = torch::softmax(logits.to(torch::kDouble), 1);
  auto [conf, pred] = probs.max(1);
  auto correct = pred.eq(labels.to(pred.device())).to(torch::kDouble);
  // Bin b holds confidences in (b/bins, (b+1)/bins]; ceil(c·bins) − 1, with c = 0 in bin 0.
  auto bin = (conf * static_cast<double>(bins)).ceil().to(torch::kLong).sub(1).clamp(0, bins - 1);
  auto count = torch::zeros({bins}, torch::kDouble).index_add_(0, bin, torch::ones_like(conf));
  auto conf_sum = torch::zeros({bins}, torch::kDouble).index_add_(0, bin, conf);
  auto acc_sum = torch::zeros({bins}, torch::kDouble).index_add_(0, bin, correct);
  return torch::stack({count, conf_sum, acc_sum});
}

// Σ_b |acc_b − conf_b| / n of `calibration_bins`.
double calibration_error(const torch::Tensor& bins, double n) {
  return (bins[2] - bins[1]).abs().sum().item<double>() / n;
}

// Correct predictions, the summed CE and the logits of rows [lo, hi) of `data`.
struct EvalSums {
  int64_t correct = 0;
  double loss_sum = 0;
  torch::Tensor logits;
};

EvalSums evaluate_rows(ClassifierImpl& model, const DataSet& data, int64_t lo, int64_t hi,
                       int64_t batch_size, torch::Device device) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  EvalSums out;
  std::vector<torch::Tensor> all_logits;
  for (int64_t a = lo; a < hi; a += batch_size) {
    const int64_t b = std::min(hi, a + batch_size);
    auto x = data.x.slice(0, a, b).to(device);
    auto y = data.y.slice(0, a, b).to(device);
    auto z = model.forward(x);
    all_logits.push_back(z.detach().to(torch::kCPU));
    out.correct += z.argmax(1).eq(y).sum().item<int64_t>();
    out.loss_sum += torch::nn::functional::cross_entropy(
                        z, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                        .item<double>();
  }
  model.train(was_training);
  out.logits = all_logits.empty() ? torch::zeros({0, 0}) : torch::cat(all_logits);
  return out;
}

}  // namespace

Evaluation evaluate(ClassifierImpl& model, const DataSet& data, int64_t batch_size,
                    torch::Device device) {
  const int64_t n = data.size();
  const auto sums = evaluate_rows(model, data, 0, n, batch_size, device);
  Evaluation e;
  if (n > 0) {
    e.accuracy = static_cast<double>(sums.correct) / static_cast<double>(n);
    e.loss = sums.loss_sum / static_cast<double>(n);
    e.ece = expected_calibration_error(sums.logits, data.y.to(torch::kCPU));
  }
  return e;
}

Evaluation evaluate_sharded(ClassifierImpl& model, const DataSet& data, int64_t batch_size,
                            torch::Device device, int rank, int world_size,
                            const BatchMeanReduce& reduce) {
  check(world_size >= 1 && rank >= 0 && rank < world_size,
        "evaluate_sharded: rank {} of {}", rank, world_size);
  const int64_t n = data.size(), bins = 15;
  const int64_t lo = n * rank / world_size, hi = n * (rank + 1) / world_size;
  const auto sums = evaluate_rows(model, data, lo, hi, batch_size, device);
  // [correct, loss sum, the bins' counts, confidences and correct], summed over the ranks: as
  // batch means weighted by the rows, times the whole set's rows.
  auto local = torch::zeros({2 + 3 * bins}, torch::kDouble);
  local[0] = static_cast<double>(sums.correct);
  local[1] = sums.loss_sum;
  if (hi > lo)
    local.slice(0, 2).copy_(
        calibration_bins(sums.logits, data.y.slice(0, lo, hi).to(torch::kCPU), bins).reshape(-1));
  std::vector<torch::Tensor> means{hi > lo ? local / static_cast<double>(hi - lo) : local};
  reduce(means, hi - lo);
  const auto total = means[0] * static_cast<double>(n);
  Evaluation e;
  if (n > 0) {
    e.accuracy = static_cast<double>(std::llround(total[0].item<double>())) / static_cast<double>(n);
    e.loss = total[1].item<double>() / static_cast<double>(n);
    e.ece = calibration_error(total.slice(0, 2).reshape({3, bins}), static_cast<double>(n));
  }
  return e;
}

double expected_calibration_error(const torch::Tensor& logits, const torch::Tensor& labels,
                                  int64_t bins) {
  check(bins >= 1, "expected_calibration_error: bins = {}: expected >= 1", bins);
  const int64_t n = logits.dim() == 2 ? logits.size(0) : 0;
  if (n == 0 && logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == 0) return 0;
  return calibration_error(calibration_bins(logits, labels, bins), static_cast<double>(n));
}

double evaluate_accuracy(ClassifierImpl& model, const DataSet& data, int64_t batch_size,
                         torch::Device device) {
  return evaluate(model, data, batch_size, device).accuracy;
}

namespace {

// The squared lengths of ∇_w L (already in the parameters' .grad, before the step) and of ∇_w CE
// of the same logits (through the retained graph), over the trainable parameters.
struct GradientLengths {
  std::vector<torch::Tensor> params;
  double loss_sq = 0, ce_sq = 0;
};

GradientLengths gradient_lengths(ClassifierImpl& model, const torch::Tensor& logits,
                                 const torch::Tensor& y, bool retain_graph,
                                 const BatchMeanReduce& reduce = {}) {
  GradientLengths out;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    out.params.push_back(p);
    if (p.grad().defined()) out.loss_sq += p.grad().pow(2).sum().item<double>();
  }
  auto ce = torch::nn::functional::cross_entropy(logits, y);
  auto grads = torch::autograd::grad({ce}, out.params, {}, retain_graph, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  if (reduce) {
    for (size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = torch::zeros_like(out.params[i]);
    reduce(grads, y.size(0));
  }
  for (const auto& g : grads)
    if (g.defined()) out.ce_sq += g.pow(2).sum().item<double>();
  return out;
}

// step_norm ce: rescales the loss gradient in .grad to the length of ∇_w CE of the same logits
// (data parallel: .grad holds the whole batch's gradient, and ∇_w CE is reduced to the whole
// batch's too).
void normalize_to_cross_entropy(ClassifierImpl& model, const torch::Tensor& logits,
                                const torch::Tensor& y, bool retain_graph,
                                const BatchMeanReduce& reduce) {
  const auto g = gradient_lengths(model, logits, y, retain_graph, reduce);
  if (g.loss_sq <= 0) return;
  const double s = std::sqrt(g.ce_sq / g.loss_sq);
  torch::NoGradGuard no_grad;
  for (const auto& p : g.params)
    if (p.grad().defined()) p.grad().mul_(s);
}

}  // namespace

double measure_effective_lr(ClassifierImpl& model, const torch::Tensor& logits,
                            const torch::Tensor& y, double lr, const BatchMeanReduce& reduce) {
  const auto g = gradient_lengths(model, logits, y, /*retain_graph=*/false, reduce);
  return g.ce_sq > 0 ? lr * std::sqrt(g.loss_sq / g.ce_sq) : -1;
}

double scheduled_lr(const TrainerOptions& o, int64_t epoch) {
  if (o.lr_schedule == "cosine") {
    const double progress = static_cast<double>(epoch) / static_cast<double>(o.epochs);
    return o.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (o.lr_step <= 0) return o.lr;
  return o.lr * std::pow(o.lr_gamma, static_cast<double>(epoch / o.lr_step));
}

nlohmann::json checkpoint_settings(const fs::path& path) {
  check(fs::exists(path), "checkpoint {}: no such file", path.string());
  torch::serialize::InputArchive archive;
  load_archive(archive, path, torch::kCPU);
  try {
    c10::IValue v;
    archive.read("state", v);
    const auto j = nlohmann::json::parse(v.toStringRef());
    return j.contains("settings_key") ? settings_record(j.value("settings", nlohmann::json()))
                                      : nlohmann::json();
  } catch (const c10::Error& e) {
    fail("{}: not a metadistill checkpoint ({})", path.string(),
         std::string(e.what_without_backtrace()).substr(0, 200));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt checkpoint state ({})", path.string(), e.what());
  }
}

namespace {

// metrics.csv (one row per evaluated epoch) and trajectory.csv (the metaparameter trajectory).
void write_trainer_outputs(const fs::path& dir, const TrainResult& r) {
  std::string m = metrics_csv_header({"lambda1", "temperature"});
  for (const auto& e : r.history)
    m += metrics_csv_row(e, {e.lambda.lambda1, e.lambda.temperature});
  write_file_atomic(dir / "metrics.csv", m);
  std::ostringstream t;
  t << "step,lambda1,temperature,hypergradient_lambda1,hypergradient_temperature,r2_lambda1,"
       "r2_temperature,phase\n";
  for (const auto& p : r.trajectory) {
    const double h0 = p.hypergradient.size() > 0 ? p.hypergradient[0] : std::nan("");
    const double h1 = p.hypergradient.size() > 1 ? p.hypergradient[1] : std::nan("");
    t << fmt::format("{},{},{},{},{},{},{},{}\n", p.step, csv_number(p.value.lambda1),
                     csv_number(p.value.temperature), csv_number(h0), csv_number(h1), csv_number(p.r2_lambda1),
                     csv_number(p.r2_temperature), p.phase);
  }
  write_file_atomic(dir / "trajectory.csv", t.str());
}

// The Hinton loss under a metaparameter method: one student step per batch, with the method's
// hyper-steps before and after it (meta_optimizer.h), the trajectory and the epoch history.
class HintonBody : public LoopBody {
 public:
  HintonBody(const TrainerOptions& o, ClassifierImpl& model, torch::optim::Optimizer& optimizer,
             MetaOptimizer& meta, torch::Tensor teacher_logits, TrainResult& result)
      : o_(o), model_(model), optimizer_(optimizer), meta_(meta),
        teacher_logits_(std::move(teacher_logits)), result_(result),
        kd_scale_(parse_kd_scale(o.kd_scale)), step_norm_(parse_step_norm(o.step_norm)) {}

  std::string name() const override { return meta_.name(); }

  double step(const LoopStep& s) override {
    Batch& batch = *s.batch;
    HyperStepContext ctx = s.context(model_, optimizer_, o_.optimizer);
    ctx.kd_scale = kd_scale_;
    ctx.step_norm = step_norm_;
    if (meta_.uses_teacher()) {
      check(teacher_logits_.defined(), "method '{}' distills, but no teacher logits were given",
            meta_.name());
      ctx.teacher_logits = teacher_logits_.index_select(0, batch.idx.to(o_.device));
    }
    meta_.before_step(ctx);
    const Metaparameters lambda = meta_.current();
    auto logits = model_.forward(batch.x);
    auto loss = functional::hinton_loss(logits, ctx.teacher_logits, batch.y, lambda.lambda1,
                                        lambda.temperature, ctx.kd_scale);
    double loss_value = loss.item<double>();
    if (!s.reduce) s.check_loss(loss_value, lambda.to_string());
    optimizer_.zero_grad();
    // The epoch's last step also measures the effective learning rate (one extra backward).
    const bool measure = s.index + 1 == s.batches;
    const bool normed = ctx.step_norm == StepNorm::kCrossEntropy && lambda.lambda1 < 1.0;
    loss.backward({}, /*retain_graph=*/measure || normed);
    if (s.reduce) {
      // Every rank sees the whole batch's loss, so all of them stop on a non-finite one.
      loss_value = reduce_step(trainable_parameters(model_), s.reduce, loss_value, batch.x.size(0));
      s.check_loss(loss_value, lambda.to_string());
    }
    if (normed)
      normalize_to_cross_entropy(model_, logits, batch.y, /*retain_graph=*/measure, s.reduce);
    if (measure) effective_lr_ = measure_effective_lr(model_, logits, batch.y, s.lr, s.reduce);
    optimizer_.step();
    ctx.logits = logits.detach();
    meta_.after_step(ctx);
    TrajectoryPoint point = meta_.last_point();
    if (!point.hypergradient.empty()) ++result_.hyper_steps;
    if (s.step % o_.trajectory_every == 0) result_.trajectory.push_back(std::move(point));
    return loss_value;
  }

  void end_epoch(const LoopEpoch& e, int64_t epochs, bool verbose) override {
    EpochMetrics m;
    static_cast<EpochRecord&>(m) = epoch_record(e, effective_lr_);
    m.lambda = meta_.current();
    result_.history.push_back(m);
    if (verbose)
      std::cerr << fmt::format("[{}] epoch {}/{} loss {:.4f} val {:.4f} test {:.4f} {} ({:.1f}s)\n",
                               meta_.name(), m.epoch, epochs, m.train_loss, m.val_accuracy,
                               m.test_accuracy, m.lambda.to_string(), m.seconds);
  }

  void save(nlohmann::json& j, torch::serialize::OutputArchive& archive) const override {
    j["meta_state"] = meta_.state();
    j["hyper_steps"] = result_.hyper_steps;
    for (const auto& e : result_.history) j["history"].push_back(to_json(e));
    for (const auto& p : result_.trajectory) j["trajectory"].push_back(to_json(p));
    torch::serialize::OutputArchive meta_archive;
    meta_.save_tensors(meta_archive);
    archive.write("meta_tensors", meta_archive);
  }

  void load(const nlohmann::json& j, torch::serialize::InputArchive& archive, bool fork) override {
    if (!fork) {
      meta_.load_state(j.at("meta_state"));
      torch::serialize::InputArchive meta_archive;
      if (archive.try_read("meta_tensors", meta_archive)) meta_.load_tensors(meta_archive);
    }
    result_.hyper_steps = j.at("hyper_steps");
    if (j.contains("history"))
      for (const auto& e : j["history"]) result_.history.push_back(epoch_from_json(e));
    if (j.contains("trajectory"))
      for (const auto& p : j["trajectory"]) result_.trajectory.push_back(point_from_json(p));
  }

  void write_outputs(const fs::path& dir) const override { write_trainer_outputs(dir, result_); }

 private:
  const TrainerOptions& o_;
  ClassifierImpl& model_;
  torch::optim::Optimizer& optimizer_;
  MetaOptimizer& meta_;
  torch::Tensor teacher_logits_;
  TrainResult& result_;
  KdScale kd_scale_;
  StepNorm step_norm_;
  double effective_lr_ = -1;
};

}  // namespace

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)) { options_.validate(); }

TrainResult Trainer::fit(ClassifierImpl& model, const FitData& data, MetaOptimizer& meta) {
  check(data.train_set != nullptr && data.test_set != nullptr, "fit: train and test data needed");
  const auto& o = options_;
  model.to(o.device);
  model.train();
  auto optimizer = make_student_optimizer(o, {model.parameters()});
  TrainResult result;
  HintonBody body(o, model, *optimizer, meta,
                  data.teacher_logits.defined() ? data.teacher_logits.to(o.device)
                                                : torch::Tensor(),
                  result);
  const LoopOutcome outcome = run_epochs(o, model, *optimizer, *data.train_set, data.train_ids,
                                         data.val_set, *data.test_set, body);
  result.steps = outcome.steps;
  result.seconds = outcome.seconds;
  result.resumed = outcome.resumed;
  result.stopped_by_time_limit = outcome.stopped_by_time_limit;
  for (const auto& e : result.history) {
    if (e.test_accuracy > result.best_test_accuracy || result.best_epoch == 0) {
      result.best_test_accuracy = e.test_accuracy;
      result.best_epoch = e.epoch;
    }
  }
  if (!result.history.empty()) result.final_test_accuracy = result.history.back().test_accuracy;
  return result;
}

}  // namespace metadistill
