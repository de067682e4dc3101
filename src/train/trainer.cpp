#include "metadistill/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/data/augment.h"
#include "metadistill/data/loader.h"
#include "metadistill/losses/hinton.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"

namespace metadistill {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},           {"lr", m.lr},
          {"train_loss", m.train_loss}, {"val_accuracy", m.val_accuracy}, {"val_loss", m.val_loss},
          {"test_accuracy", m.test_accuracy}, {"seconds", m.seconds},
          {"test_loss", m.test_loss}, {"val_ece", m.val_ece}, {"test_ece", m.test_ece},
          {"effective_lr", m.effective_lr},
          {"lambda1", m.lambda.lambda1}, {"temperature", m.lambda.temperature}};
}

EpochMetrics epoch_from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch");
  m.lr = j.at("lr");
  m.train_loss = j.at("train_loss");
  m.val_accuracy = j.at("val_accuracy");
  m.val_loss = j.value("val_loss", -1.0);
  m.test_accuracy = j.at("test_accuracy");
  m.seconds = j.at("seconds");
  m.test_loss = j.value("test_loss", -1.0);
  m.val_ece = j.value("val_ece", -1.0);
  m.test_ece = j.value("test_ece", -1.0);
  m.effective_lr = j.value("effective_lr", -1.0);
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

std::string fmt_num(double v) { return std::isfinite(v) ? fmt::format("{:.9g}", v) : ""; }

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

Evaluation evaluate(ClassifierImpl& model, const DataSet& data, int64_t batch_size,
                    torch::Device device) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  double loss_sum = 0;
  const int64_t n = data.size();
  std::vector<torch::Tensor> all_logits;
  for (int64_t lo = 0; lo < n; lo += batch_size) {
    const int64_t hi = std::min(n, lo + batch_size);
    auto x = data.x.slice(0, lo, hi).to(device);
    auto y = data.y.slice(0, lo, hi).to(device);
    auto z = model.forward(x);
    all_logits.push_back(z.detach().to(torch::kCPU));
    correct += z.argmax(1).eq(y).sum().item<int64_t>();
    loss_sum += torch::nn::functional::cross_entropy(
                    z, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
  }
  model.train(was_training);
  Evaluation e;
  if (n > 0) {
    e.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    e.loss = loss_sum / static_cast<double>(n);
    e.ece = expected_calibration_error(torch::cat(all_logits), data.y.to(torch::kCPU));
  }
  return e;
}

double expected_calibration_error(const torch::Tensor& logits, const torch::Tensor& labels,
                                  int64_t bins) {
  check(bins >= 1, "expected_calibration_error: bins = {}: expected >= 1", bins);
  check(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0),
        "expected_calibration_error: logits {} and labels {}: expected [N, K] and [N]",
        logits.sizes(), labels.sizes());
  const int64_t n = logits.size(0);
  if (n == 0) return 0;
  auto probs = torch::softmax(logits.to(torch::kDouble), 1);
  auto [conf, pred] = probs.max(1);
  auto correct = pred.eq(labels.to(pred.device())).to(torch::kDouble);
  // Bin b holds confidences in (b/bins, (b+1)/bins]; ceil(c·bins) − 1, with c = 0 in bin 0.
  auto bin = (conf * static_cast<double>(bins)).ceil().to(torch::kLong).sub(1).clamp(0, bins - 1);
  auto count = torch::zeros({bins}, torch::kDouble).index_add_(0, bin, torch::ones_like(conf));
  auto conf_sum = torch::zeros({bins}, torch::kDouble).index_add_(0, bin, conf);
  auto acc_sum = torch::zeros({bins}, torch::kDouble).index_add_(0, bin, correct);
  return (acc_sum - conf_sum).abs().sum().item<double>() / static_cast<double>(n);
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
                                 const torch::Tensor& y, bool retain_graph) {
  GradientLengths out;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    out.params.push_back(p);
    if (p.grad().defined()) out.loss_sq += p.grad().pow(2).sum().item<double>();
  }
  auto ce = torch::nn::functional::cross_entropy(logits, y);
  auto grads = torch::autograd::grad({ce}, out.params, {}, retain_graph, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  for (const auto& g : grads)
    if (g.defined()) out.ce_sq += g.pow(2).sum().item<double>();
  return out;
}

// η·‖∇_w L‖ / ‖∇_w CE‖.
double measure_effective_lr(ClassifierImpl& model, const torch::Tensor& logits,
                            const torch::Tensor& y, double lr) {
  const auto g = gradient_lengths(model, logits, y, /*retain_graph=*/false);
  return g.ce_sq > 0 ? lr * std::sqrt(g.loss_sq / g.ce_sq) : -1;
}

// step_norm ce: rescales the loss gradient in .grad to the length of ∇_w CE of the same logits.
void normalize_to_cross_entropy(ClassifierImpl& model, const torch::Tensor& logits,
                                const torch::Tensor& y, bool retain_graph) {
  const auto g = gradient_lengths(model, logits, y, retain_graph);
  if (g.loss_sq <= 0) return;
  const double s = std::sqrt(g.ce_sq / g.loss_sq);
  torch::NoGradGuard no_grad;
  for (const auto& p : g.params)
    if (p.grad().defined()) p.grad().mul_(s);
}

}  // namespace

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)) { options_.validate(); }

std::unique_ptr<torch::optim::Optimizer> Trainer::make_optimizer(ClassifierImpl& model) const {
  auto params = model.parameters();
  if (options_.optimizer == "lstm") {
    return std::make_unique<LstmOptimizer>(
        params, load_lstm_optimizer(options_.optimizer_file),
        LstmOptimizerOptions(options_.lr).weight_decay(options_.weight_decay));
  }
  if (options_.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(options_.lr)
                    .betas({options_.momentum, 0.999})
                    .weight_decay(options_.weight_decay));
  }
  const double momentum = options_.optimizer == "momentum" ? options_.momentum : 0.0;
  return std::make_unique<torch::optim::SGD>(
      params,
      torch::optim::SGDOptions(options_.lr).momentum(momentum).weight_decay(options_.weight_decay));
}

double scheduled_lr(const TrainerOptions& o, int64_t epoch) {
  if (o.lr_schedule == "cosine") {
    const double progress = static_cast<double>(epoch) / static_cast<double>(o.epochs);
    return o.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (o.lr_step <= 0) return o.lr;
  return o.lr * std::pow(o.lr_gamma, static_cast<double>(epoch / o.lr_step));
}

double Trainer::lr_at(int64_t epoch) const {
  if (epoch >= 0 && epoch < static_cast<int64_t>(options_.lr_by_epoch.size()))
    return options_.lr_by_epoch[static_cast<size_t>(epoch)];
  return scheduled_lr(options_, epoch);
}

void Trainer::write_outputs(const TrainResult& r) const {
  if (options_.out_dir.empty()) return;
  std::ostringstream m;
  m << "epoch,lr,train_loss,val_accuracy,val_loss,test_accuracy,lambda1,temperature,seconds,"
       "test_loss,val_ece,test_ece,effective_lr\n";
  auto opt = [](double v) { return v >= 0 ? fmt_num(v) : std::string(); };
  for (const auto& e : r.history)
    m << fmt::format("{},{},{},{},{},{},{},{},{:.3f},{},{},{},{}\n", e.epoch, fmt_num(e.lr),
                     fmt_num(e.train_loss), opt(e.val_accuracy), opt(e.val_loss),
                     fmt_num(e.test_accuracy), fmt_num(e.lambda.lambda1),
                     fmt_num(e.lambda.temperature), e.seconds, opt(e.test_loss), opt(e.val_ece),
                     opt(e.test_ece), opt(e.effective_lr));
  write_file_atomic(options_.out_dir / "metrics.csv", m.str());
  std::ostringstream t;
  t << "step,lambda1,temperature,hypergradient_lambda1,hypergradient_temperature,r2_lambda1,"
       "r2_temperature,phase\n";
  for (const auto& p : r.trajectory) {
    const double h0 = p.hypergradient.size() > 0 ? p.hypergradient[0] : std::nan("");
    const double h1 = p.hypergradient.size() > 1 ? p.hypergradient[1] : std::nan("");
    t << fmt::format("{},{},{},{},{},{},{},{}\n", p.step, fmt_num(p.value.lambda1),
                     fmt_num(p.value.temperature), fmt_num(h0), fmt_num(h1), fmt_num(p.r2_lambda1),
                     fmt_num(p.r2_temperature), p.phase);
  }
  write_file_atomic(options_.out_dir / "trajectory.csv", t.str());
}

void Trainer::save_checkpoint(ClassifierImpl& model, torch::optim::Optimizer& opt,
                              MetaOptimizer& meta, const TrainResult& r,
                              int64_t epochs_done) const {
  if (options_.out_dir.empty()) return;
  nlohmann::json j = {{"format", "metadistill-checkpoint"},
                      {"version", 1},
                      {"epochs_done", epochs_done},
                      {"method", meta.name()},
                      {"meta_state", meta.state()},
                      {"steps", r.steps},
                      {"hyper_steps", r.hyper_steps},
                      {"seconds", r.seconds}};
  if (!options_.settings.is_null()) j.update(settings_record(options_.settings));
  for (const auto& e : r.history) j["history"].push_back(to_json(e));
  for (const auto& p : r.trajectory) j["trajectory"].push_back(to_json(p));
  torch::serialize::OutputArchive archive;
  archive.write("state", c10::IValue(j.dump()));
  torch::serialize::OutputArchive model_archive, opt_archive;
  model.save(model_archive);
  opt.save(opt_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", opt_archive);
  torch::serialize::OutputArchive meta_archive;
  meta.save_tensors(meta_archive);
  archive.write("meta_tensors", meta_archive);
  // Metrics first, checkpoint last: a kill in between leaves metrics one epoch ahead, which the
  // resumed run rewrites from the checkpoint's history.
  write_outputs(r);
  save_archive_atomic(archive, options_.out_dir / "checkpoint.pt");
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

int64_t Trainer::load_checkpoint(const fs::path& path, ClassifierImpl& model,
                                 torch::optim::Optimizer& opt, MetaOptimizer& meta,
                                 TrainResult& r, bool fork) const {
  check(fs::exists(path), "checkpoint {}: no such file", path.string());
  torch::serialize::InputArchive archive;
  load_archive(archive, path, options_.device);
  try {
    c10::IValue v;
    archive.read("state", v);
    auto j = nlohmann::json::parse(v.toStringRef());
    check(j.value("format", "") == "metadistill-checkpoint", "{}: not a metadistill checkpoint",
          path.string());
    check(fork || j.at("method") == meta.name(),
          "{}: checkpoint of method '{}', but this run is '{}'", path.string(),
          j.at("method").get<std::string>(), meta.name());
    // A resumed run continues only a checkpoint of the same settings (a fork starts from another
    // run's on purpose); one stored before settings keys is taken as the current settings'.
    if (!fork && !options_.settings.is_null() &&
        check_stored_settings(j, options_.settings, path.string()) == StoredSettings::kLegacy)
      std::cerr << legacy_settings_warning(path.string()) << "\n";
    torch::serialize::InputArchive model_archive, opt_archive;
    archive.read("model", model_archive);
    archive.read("optimizer", opt_archive);
    model.load(model_archive);
    opt.load(opt_archive);
    if (!fork) {
      meta.load_state(j.at("meta_state"));
      torch::serialize::InputArchive meta_archive;
      if (archive.try_read("meta_tensors", meta_archive)) meta.load_tensors(meta_archive);
    }
    r.steps = j.at("steps");
    r.hyper_steps = j.at("hyper_steps");
    r.seconds = j.at("seconds");
    if (j.contains("history"))
      for (const auto& e : j["history"]) r.history.push_back(epoch_from_json(e));
    if (j.contains("trajectory"))
      for (const auto& p : j["trajectory"]) r.trajectory.push_back(point_from_json(p));
    return j.at("epochs_done");
  } catch (const c10::Error& e) {
    fail("{}: checkpoint does not fit this model ({})", path.string(),
         std::string(e.what_without_backtrace()).substr(0, 200));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt checkpoint state ({})", path.string(), e.what());
  }
}

TrainResult Trainer::fit(ClassifierImpl& model, const FitData& data, MetaOptimizer& meta) {
  check(data.train_set != nullptr && data.test_set != nullptr, "fit: train and test data needed");
  const auto& o = options_;
  model.to(o.device);
  model.train();
  auto optimizer = make_optimizer(model);

  TrainResult result;
  int64_t start_epoch = 0;
  if (o.resume && fs::exists(o.out_dir / "checkpoint.pt")) {
    start_epoch = load_checkpoint(o.out_dir / "checkpoint.pt", model, *optimizer, meta, result,
                                  /*fork=*/false);
    result.resumed = true;
    if (o.verbose) std::cerr << fmt::format("resuming {} after epoch {}\n", meta.name(), start_epoch);
  } else if (!o.fork_from.empty()) {
    start_epoch = load_checkpoint(o.fork_from, model, *optimizer, meta, result, /*fork=*/true);
    if (o.verbose)
      std::cerr << fmt::format("{} forked from {} after epoch {}\n", meta.name(),
                               o.fork_from.string(), start_epoch);
  }

  BatchLoader loader(*data.train_set, data.train_ids,
                     LoaderOptions().batch(o.batch_size).seeded(o.seed), o.device);
  std::unique_ptr<BatchLoader> val_loader;
  if (data.val_set != nullptr && data.val_set->size() > 0)
    val_loader = std::make_unique<BatchLoader>(
        *data.val_set, torch::arange(data.val_set->size(), torch::kLong),
        LoaderOptions().batch(o.val_batch_size > 0 ? o.val_batch_size : o.batch_size)
            .seeded(o.seed + 1),
        o.device);
  // Validation batches cycle through D_val, indexed by the global step so that a resumed run
  // sees the same batches as an uninterrupted one.
  int64_t val_epoch = 0;
  std::function<Batch()> next_val = [&]() -> Batch {
    check(val_loader != nullptr, "method '{}' needs validation data, but there is none",
          meta.name());
    const int64_t nb = val_loader->batches_per_epoch();
    if (result.steps / nb != val_epoch) {
      val_epoch = result.steps / nb;
      val_loader->start_epoch(val_epoch);
    }
    return val_loader->batch(result.steps % nb);
  };
  torch::Tensor teacher_logits = data.teacher_logits.defined()
                                     ? data.teacher_logits.to(o.device)
                                     : torch::Tensor();

  bool augment = false;
  const AugmentOptions augment_options = parse_augmentation(o.augmentation, &augment);
  if (augment && data.train_set->x.dim() != 4) augment = false;  // vectors: nothing to crop

  const auto run_start = Clock::now();
  const double seconds_before = result.seconds;
  int64_t last_checkpoint = start_epoch;
  for (int64_t epoch = start_epoch; epoch < o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const double lr = lr_at(epoch);
    for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
    loader.start_epoch(epoch);
    double loss_sum = 0, effective_lr = -1;
    int64_t loss_count = 0;
    const int64_t nb = loader.batches_per_epoch();
    for (int64_t b = 0; b < nb; ++b) {
      Batch batch = loader.batch(b);
      if (augment) batch.x = augment_batch_at_step(batch.x, augment_options, o.seed, result.steps);
      HyperStepContext ctx;
      ctx.student = &model;
      ctx.optimizer = optimizer.get();
      ctx.optimizer_kind = o.optimizer;
      ctx.train = &batch;
      ctx.next_val = next_val;
      ctx.lr = lr;
      ctx.step = result.steps;
      ctx.kd_scale = parse_kd_scale(o.kd_scale);
      ctx.step_norm = parse_step_norm(o.step_norm);
      const bool distill = meta.uses_teacher();
      if (distill) {
        check(teacher_logits.defined(), "method '{}' distills, but no teacher logits were given",
              meta.name());
        ctx.teacher_logits = teacher_logits.index_select(0, batch.idx.to(o.device));
      }
      const Metaparameters lambda = meta.before_step(ctx);
      auto logits = model.forward(batch.x);
      auto loss = functional::hinton_loss(logits, ctx.teacher_logits, batch.y, lambda.lambda1,
                                          lambda.temperature, ctx.kd_scale);
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        std::string kept = o.out_dir.empty() || last_checkpoint == 0
                               ? std::string("no checkpoint was written")
                               : fmt::format("last good checkpoint (epoch {}) kept at {}",
                                             last_checkpoint,
                                             (o.out_dir / "checkpoint.pt").string());
        fail("training loss became {} at step {} (epoch {}, {}, lr {}); {}", loss_value,
             result.steps, epoch + 1, lambda.to_string(), lr, kept);
      }
      optimizer->zero_grad();
      // The epoch's last step also measures the effective learning rate (one extra backward).
      const bool measure = b + 1 == nb;
      const bool normed = ctx.step_norm == StepNorm::kCrossEntropy && lambda.lambda1 < 1.0;
      loss.backward({}, /*retain_graph=*/measure || normed);
      if (normed) normalize_to_cross_entropy(model, logits, batch.y, /*retain_graph=*/measure);
      if (measure) effective_lr = measure_effective_lr(model, logits, batch.y, lr);
      optimizer->step();
      ctx.logits = logits.detach();
      meta.after_step(ctx);
      loss_sum += loss_value;
      ++loss_count;
      TrajectoryPoint point = meta.last_point();
      if (!point.hypergradient.empty()) ++result.hyper_steps;
      if (result.steps % o.trajectory_every == 0) result.trajectory.push_back(std::move(point));
      ++result.steps;
      if (o.time_limit > 0 &&
          seconds_before + std::chrono::duration<double>(Clock::now() - run_start).count() >=
              o.time_limit) {
        result.stopped_by_time_limit = b + 1 < nb || epoch + 1 < o.epochs;
        break;
      }
    }
    const bool last = epoch + 1 == o.epochs || result.stopped_by_time_limit;
    if ((epoch + 1) % o.eval_every == 0 || last) {
      EpochMetrics m;
      m.epoch = epoch + 1;
      m.lr = lr;
      m.train_loss = loss_sum / std::max<int64_t>(1, loss_count);
      if (data.val_set != nullptr && data.val_set->size() > 0) {
        auto v = evaluate(model, *data.val_set, o.eval_batch_size, o.device);
        m.val_accuracy = v.accuracy;
        m.val_loss = v.loss;
        m.val_ece = v.ece;
      }
      const auto t = evaluate(model, *data.test_set, o.eval_batch_size, o.device);
      m.test_accuracy = t.accuracy;
      m.test_loss = t.loss;
      m.test_ece = t.ece;
      m.effective_lr = effective_lr;
      m.lambda = meta.current();
      m.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      result.history.push_back(m);
      if (o.verbose)
        std::cerr << fmt::format("[{}] epoch {}/{} loss {:.4f} val {:.4f} test {:.4f} {} ({:.1f}s)\n",
                                 meta.name(), m.epoch, o.epochs, m.train_loss, m.val_accuracy,
                                 m.test_accuracy, m.lambda.to_string(), m.seconds);
    }
    result.seconds =
        seconds_before + std::chrono::duration<double>(Clock::now() - run_start).count();
    if (last || (o.checkpoint_every > 0 && (epoch + 1) % o.checkpoint_every == 0)) {
      save_checkpoint(model, *optimizer, meta, result, epoch + 1);
      last_checkpoint = epoch + 1;
    }
    if (!o.out_dir.empty() && std::find(o.keep_checkpoints.begin(), o.keep_checkpoints.end(),
                                        epoch + 1) != o.keep_checkpoints.end()) {
      if (last_checkpoint != epoch + 1) save_checkpoint(model, *optimizer, meta, result, epoch + 1);
      last_checkpoint = epoch + 1;
      const fs::path kept = o.out_dir / fmt::format("checkpoint-epoch{}.pt", epoch + 1);
      fs::copy_file(o.out_dir / "checkpoint.pt", kept.string() + ".tmp",
                    fs::copy_options::overwrite_existing);
      fs::rename(kept.string() + ".tmp", kept);  // atomic, as every checkpoint
    }
    if (result.stopped_by_time_limit) break;
  }
  result.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - run_start).count();
  for (const auto& e : result.history) {
    if (e.test_accuracy > result.best_test_accuracy || result.best_epoch == 0) {
      result.best_test_accuracy = e.test_accuracy;
      result.best_epoch = e.epoch;
    }
  }
  if (!result.history.empty()) result.final_test_accuracy = result.history.back().test_accuracy;
  write_outputs(result);
  return result;
}

}  // namespace metadistill
