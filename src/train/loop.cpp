#include "metadistill/train/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

#include "metadistill/data/augment.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"

namespace metadistill {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::unique_ptr<torch::optim::Optimizer> make_student_optimizer(
    const TrainerOptions& o, const std::vector<std::vector<torch::Tensor>>& groups,
    double extra_decay) {
  check(!groups.empty(), "make_student_optimizer: no parameter group");
  if (o.optimizer == "lstm") {
    const LstmOptimizerNet net = load_lstm_optimizer(o.optimizer_file);
    if (groups.size() == 1)
      return std::make_unique<LstmOptimizer>(
          groups[0], net, LstmOptimizerOptions(o.lr).weight_decay(o.weight_decay));
    std::vector<torch::optim::OptimizerParamGroup> param_groups;
    for (size_t k = 0; k < groups.size(); ++k)
      param_groups.emplace_back(groups[k], std::make_unique<LstmOptimizerOptions>(
                                               LstmOptimizerOptions(o.lr).weight_decay(
                                                   k == 0 ? o.weight_decay : extra_decay)));
    return std::make_unique<LstmOptimizer>(std::move(param_groups), net,
                                           LstmOptimizerOptions(o.lr));
  }
  const bool adam = o.optimizer == "adam";
  const double momentum = o.optimizer == "momentum" ? o.momentum : 0.0;
  if (groups.size() == 1) {
    if (adam)
      return std::make_unique<torch::optim::Adam>(
          groups[0],
          torch::optim::AdamOptions(o.lr).betas({o.momentum, 0.999}).weight_decay(o.weight_decay));
    return std::make_unique<torch::optim::SGD>(
        groups[0],
        torch::optim::SGDOptions(o.lr).momentum(momentum).weight_decay(o.weight_decay));
  }
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (size_t k = 0; k < groups.size(); ++k) {
    const double wd = k == 0 ? o.weight_decay : extra_decay;
    if (adam)
      param_groups.emplace_back(groups[k],
                                std::make_unique<torch::optim::AdamOptions>(
                                    torch::optim::AdamOptions(o.lr).betas({o.momentum, 0.999})
                                        .weight_decay(wd)));
    else
      param_groups.emplace_back(groups[k], std::make_unique<torch::optim::SGDOptions>(
                                               torch::optim::SGDOptions(o.lr)
                                                   .momentum(momentum)
                                                   .weight_decay(wd)));
  }
  if (adam)
    return std::make_unique<torch::optim::Adam>(std::move(param_groups),
                                                torch::optim::AdamOptions(o.lr));
  return std::make_unique<torch::optim::SGD>(std::move(param_groups),
                                             torch::optim::SGDOptions(o.lr));
}

namespace {

double lr_of_epoch(const TrainerOptions& o, int64_t epoch) {
  if (epoch >= 0 && epoch < static_cast<int64_t>(o.lr_by_epoch.size()))
    return o.lr_by_epoch[static_cast<size_t>(epoch)];
  return scheduled_lr(o, epoch);
}

// Whether this process writes the run's files: the only process, or rank 0 of a group.
bool writes_files(const TrainerOptions& o) {
  return !o.out_dir.empty() && (!o.data_parallel || o.data_parallel->rank() == 0);
}

// The loop's part of a checkpoint: model, optimizer, step count and clock; the body adds its own.
void save_checkpoint(const TrainerOptions& o, ClassifierImpl& model,
                     torch::optim::Optimizer& optimizer, const LoopBody& body,
                     const LoopOutcome& outcome, int64_t epochs_done) {
  if (!writes_files(o)) return;
  nlohmann::json j = {{"format", "metadistill-checkpoint"},
                      {"version", 1},
                      {"epochs_done", epochs_done},
                      {"method", body.name()},
                      {"steps", outcome.steps},
                      {"seconds", outcome.seconds}};
  if (!o.settings.is_null()) j.update(settings_record(o.settings));
  torch::serialize::OutputArchive archive;
  body.save(j, archive);
  archive.write("state", c10::IValue(j.dump()));
  torch::serialize::OutputArchive model_archive, opt_archive;
  model.save(model_archive);
  optimizer.save(opt_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", opt_archive);
  // Metrics first, checkpoint last: a kill in between leaves metrics one epoch ahead, which the
  // resumed run rewrites from the checkpoint's history.
  body.write_outputs(o.out_dir);
  save_archive_atomic(archive, o.out_dir / "checkpoint.pt");
}

// Reads a checkpoint into the model, the optimizer, the body and `outcome`; returns epochs done.
int64_t load_checkpoint(const TrainerOptions& o, const fs::path& path, ClassifierImpl& model,
                        torch::optim::Optimizer& optimizer, LoopBody& body, LoopOutcome& outcome,
                        bool fork) {
  check(fs::exists(path), "checkpoint {}: no such file", path.string());
  torch::serialize::InputArchive archive;
  load_archive(archive, path, o.device);
  try {
    c10::IValue v;
    archive.read("state", v);
    auto j = nlohmann::json::parse(v.toStringRef());
    check(j.value("format", "") == "metadistill-checkpoint", "{}: not a metadistill checkpoint",
          path.string());
    check(fork || j.at("method") == body.name(),
          "{}: checkpoint of method '{}', but this run is '{}'", path.string(),
          j.at("method").get<std::string>(), body.name());
    // A resumed run continues only a checkpoint of the same settings (a fork starts from another
    // run's on purpose); one stored before settings keys is taken as the current settings'.
    if (!fork && !o.settings.is_null() &&
        check_stored_settings(j, o.settings, path.string()) == StoredSettings::kLegacy)
      std::cerr << legacy_settings_warning(path.string()) << "\n";
    torch::serialize::InputArchive model_archive, opt_archive;
    archive.read("model", model_archive);
    archive.read("optimizer", opt_archive);
    model.load(model_archive);
    optimizer.load(opt_archive);
    body.load(j, archive, fork);
    outcome.steps = j.at("steps");
    outcome.seconds = j.at("seconds");
    return j.at("epochs_done");
  } catch (const c10::Error& e) {
    fail("{}: checkpoint does not fit this model ({})", path.string(),
         std::string(e.what_without_backtrace()).substr(0, 200));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt checkpoint state ({})", path.string(), e.what());
  }
}

}  // namespace

HyperStepContext LoopStep::context(ClassifierImpl& student, torch::optim::Optimizer& optimizer,
                                   const std::string& kind) const {
  HyperStepContext ctx;
  ctx.student = &student;
  ctx.optimizer = &optimizer;
  ctx.optimizer_kind = kind;
  ctx.train = batch;
  ctx.next_val = next_val;
  ctx.lr = lr;
  ctx.step = step;
  ctx.reduce = reduce;
  return ctx;
}

double reduce_step(const std::vector<torch::Tensor>& params, const BatchMeanReduce& reduce,
                   double loss, int64_t count) {
  std::vector<torch::Tensor> means;
  for (auto p : params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    means.push_back(p.grad());
  }
  // In the gradients' dtype and device: one bucket, one all-reduce.
  means.push_back(torch::full({1}, loss, means.empty() ? torch::TensorOptions(torch::kDouble)
                                                       : means.front().options()));
  reduce(means, count);
  return means.back().item<double>();
}

LoopOutcome run_epochs(const TrainerOptions& o, ClassifierImpl& model,
                       torch::optim::Optimizer& optimizer, const DataSet& train_set,
                       const torch::Tensor& train_ids, const DataSet* val_set,
                       const DataSet& test_set, LoopBody& body) {
  LoopOutcome outcome;
  int64_t start_epoch = 0;
  const fs::path own = o.out_dir / "checkpoint.pt";
  if (o.resume && fs::exists(own)) {
    start_epoch = load_checkpoint(o, own, model, optimizer, body, outcome, /*fork=*/false);
    outcome.resumed = true;
    if (o.verbose) std::cerr << fmt::format("resuming {} after epoch {}\n", body.name(), start_epoch);
  } else if (!o.fork_from.empty()) {
    start_epoch = load_checkpoint(o, o.fork_from, model, optimizer, body, outcome, /*fork=*/true);
    if (o.verbose)
      std::cerr << fmt::format("{} forked from {} after epoch {}\n", body.name(),
                               o.fork_from.string(), start_epoch);
  }

  DataParallel* dp = o.data_parallel.get();
  if (dp != nullptr) {
    // Every rank must continue from the same point (a shared output folder), then start from
    // rank 0's weights and buffers, as PyTorch's DDP does.
    const double latest = dp->all_reduce_max(static_cast<double>(start_epoch));
    check(latest == static_cast<double>(start_epoch),
          "rank {}: continues after epoch {}, but another rank after epoch {}: every rank must "
          "see the same output folder {} (a shared file system) to resume",
          dp->rank(), start_epoch, latest, o.out_dir.string());
    std::vector<torch::Tensor> state;
    for (const auto& p : model.parameters()) state.push_back(p);
    for (const auto& b : model.buffers()) state.push_back(b);
    dp->broadcast(state, 0);
  }

  BatchLoader loader(train_set, train_ids, LoaderOptions().batch(o.batch_size).seeded(o.seed),
                     o.device);
  const bool has_val = val_set != nullptr && val_set->size() > 0;
  std::unique_ptr<BatchLoader> val_loader;
  if (has_val)
    val_loader = std::make_unique<BatchLoader>(
        *val_set, torch::arange(val_set->size(), torch::kLong),
        LoaderOptions().batch(o.val_batch_size > 0 ? o.val_batch_size : o.batch_size)
            .seeded(o.seed + 1),
        o.device);
  // Validation batches cycle through D_val, indexed by the global step (the loader starts at its
  // epoch 0), so that a resumed run sees the same batches as an uninterrupted one.
  int64_t val_epoch = 0;
  const std::function<Batch()> next_val = [&]() -> Batch {
    check(val_loader != nullptr, "method '{}' needs validation data, but there is none",
          body.name());
    const int64_t nb = val_loader->batches_per_epoch();
    if (outcome.steps / nb != val_epoch) {
      val_epoch = outcome.steps / nb;
      val_loader->start_epoch(val_epoch);
    }
    Batch val = val_loader->batch(outcome.steps % nb);
    return dp != nullptr ? dp->shard(val) : val;
  };

  bool augment = false;
  const AugmentOptions augment_options = parse_augmentation(o.augmentation, &augment);
  if (augment && train_set.x.dim() != 4) augment = false;  // vectors: nothing to crop

  const auto run_start = Clock::now();
  const double seconds_before = outcome.seconds;
  auto elapsed = [&] {
    return seconds_before + std::chrono::duration<double>(Clock::now() - run_start).count();
  };
  int64_t last_checkpoint = start_epoch;
  int64_t epoch = start_epoch;
  double lr = 0;
  LoopStep s;
  s.next_val = next_val;
  if (dp != nullptr) s.reduce = dp->batch_mean_reduce();
  s.check_loss = [&](double loss, const std::string& what) {
    if (std::isfinite(loss)) return;
    const std::string kept =
        o.out_dir.empty() || last_checkpoint == 0
            ? std::string("no checkpoint was written")
            : fmt::format("last good checkpoint (epoch {}) kept at {}", last_checkpoint,
                          (o.out_dir / "checkpoint.pt").string());
    fail("training loss became {} at step {} (epoch {}, {}, lr {}); {}", loss, outcome.steps,
         epoch + 1, what, lr, kept);
  };
  for (; epoch < o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    lr = lr_of_epoch(o, epoch);
    for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
    loader.start_epoch(epoch);
    double loss_sum = 0;
    int64_t loss_count = 0;
    const int64_t nb = loader.batches_per_epoch();
    for (int64_t b = 0; b < nb; ++b) {
      Batch batch = loader.batch(b);
      if (augment)
        batch.x = augment_batch_at_step(batch.x, augment_options, o.seed, outcome.steps);
      // Augmented as a whole, then cut: the union of the shards is the one-process batch.
      if (dp != nullptr) batch = dp->shard(batch);
      s.batch = &batch;
      s.step = outcome.steps;
      s.epoch = epoch;
      s.index = b;
      s.batches = nb;
      s.lr = lr;
      loss_sum += body.step(s);
      ++loss_count;
      ++outcome.steps;
      bool out_of_time = o.time_limit > 0 && elapsed() >= o.time_limit;
      // Ranks stop together: at the first step after which any rank is out of time.
      if (dp != nullptr && o.time_limit > 0) out_of_time = dp->all_reduce_max(out_of_time) > 0;
      if (out_of_time) {
        outcome.stopped_by_time_limit = b + 1 < nb || epoch + 1 < o.epochs;
        break;
      }
    }
    const bool last = epoch + 1 == o.epochs || outcome.stopped_by_time_limit;
    if ((epoch + 1) % o.eval_every == 0 || last) {
      LoopEpoch e;
      e.epoch = epoch + 1;
      e.lr = lr;
      e.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, loss_count));
      // Data parallel: each rank evaluates its part of the sets, the counts are summed.
      auto eval = [&](const DataSet& data) {
        return dp != nullptr ? evaluate_sharded(model, data, o.eval_batch_size, o.device,
                                                dp->rank(), dp->world_size(), s.reduce)
                             : evaluate(model, data, o.eval_batch_size, o.device);
      };
      if (has_val) e.val = eval(*val_set);
      e.test = eval(test_set);
      e.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      body.end_epoch(e, o.epochs, o.verbose);
    }
    outcome.seconds = elapsed();
    if (last || (o.checkpoint_every > 0 && (epoch + 1) % o.checkpoint_every == 0)) {
      save_checkpoint(o, model, optimizer, body, outcome, epoch + 1);
      last_checkpoint = epoch + 1;
    }
    if (writes_files(o) && std::find(o.keep_checkpoints.begin(), o.keep_checkpoints.end(),
                                     epoch + 1) != o.keep_checkpoints.end()) {
      if (last_checkpoint != epoch + 1)
        save_checkpoint(o, model, optimizer, body, outcome, epoch + 1);
      last_checkpoint = epoch + 1;
      const fs::path kept = o.out_dir / fmt::format("checkpoint-epoch{}.pt", epoch + 1);
      fs::copy_file(o.out_dir / "checkpoint.pt", kept.string() + ".tmp",
                    fs::copy_options::overwrite_existing);
      fs::rename(kept.string() + ".tmp", kept);  // atomic, as every checkpoint
    }
    if (outcome.stopped_by_time_limit) {
      if (o.verbose)
        std::cerr << fmt::format("[{}] time limit of {:.0f}s reached after {} steps\n", body.name(),
                                 o.time_limit, outcome.steps);
      break;
    }
  }
  outcome.seconds = elapsed();
  if (writes_files(o)) body.write_outputs(o.out_dir);
  return outcome;
}

EpochRecord epoch_record(const LoopEpoch& e, double effective_lr) {
  EpochRecord r;
  r.epoch = e.epoch;
  r.lr = e.lr;
  r.train_loss = e.train_loss;
  if (e.val.accuracy >= 0) {
    r.val_accuracy = e.val.accuracy;
    r.val_loss = e.val.loss;
    r.val_ece = e.val.ece;
  }
  r.test_accuracy = e.test.accuracy;
  r.test_loss = e.test.loss;
  r.test_ece = e.test.ece;
  r.effective_lr = effective_lr;
  r.seconds = e.seconds;
  return r;
}

nlohmann::json epoch_record_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},           {"lr", r.lr},
          {"train_loss", r.train_loss}, {"val_accuracy", r.val_accuracy},
          {"val_loss", r.val_loss},     {"test_accuracy", r.test_accuracy},
          {"seconds", r.seconds},       {"test_loss", r.test_loss},
          {"val_ece", r.val_ece},       {"test_ece", r.test_ece},
          {"effective_lr", r.effective_lr}};
}

EpochRecord epoch_record_from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch").get<int64_t>();
  r.lr = j.at("lr").get<double>();
  r.train_loss = j.at("train_loss").get<double>();
  r.val_accuracy = j.at("val_accuracy").get<double>();
  r.val_loss = j.value("val_loss", -1.0);
  r.test_accuracy = j.at("test_accuracy").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.test_loss = j.value("test_loss", -1.0);
  r.val_ece = j.value("val_ece", -1.0);
  r.test_ece = j.value("test_ece", -1.0);
  r.effective_lr = j.value("effective_lr", -1.0);
  return r;
}

std::string csv_number(double v) { return std::isfinite(v) ? fmt::format("{:.9g}", v) : ""; }

std::string metrics_csv_header(const std::vector<std::string>& names) {
  std::string h = "epoch,lr,train_loss,val_accuracy,val_loss,test_accuracy";
  for (const auto& n : names) h += "," + n;
  return h + ",seconds,test_loss,val_ece,test_ece,effective_lr\n";
}

std::string metrics_csv_row(const EpochRecord& r, const std::vector<double>& values) {
  auto opt = [](double v) { return v >= 0 ? csv_number(v) : std::string(); };
  std::string row = fmt::format("{},{},{},{},{},{}", r.epoch, csv_number(r.lr),
                                csv_number(r.train_loss), opt(r.val_accuracy), opt(r.val_loss),
                                csv_number(r.test_accuracy));
  for (double v : values) row += "," + csv_number(v);
  return row + fmt::format(",{:.3f},{},{},{},{}\n", r.seconds, opt(r.test_loss), opt(r.val_ece),
                           opt(r.test_ece), opt(r.effective_lr));
}

}  // namespace metadistill
