// `metadistill train-optimizer [CONFIG]`: meta-trains the learned (LSTM) optimizer.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/meta/lstm_meta_training.h"
#include "metadistill/util/error.h"
#include "metadistill/util/runtime.h"

namespace metadistill::cli {

namespace {

struct TrainOptimizerOptions {
  CommonOptions common;
  std::string task = "distill";
  std::optional<std::string> file;
  LstmMetaTrainingOptions training;
  std::optional<double> lambda1, temperature;
  int64_t quadratic_dim = 10, quadratic_batch = 32;
  uint64_t seed = 0;
  bool fresh = false;
};

int run(TrainOptimizerOptions o) {
  Config c = resolve_config(o.common);
  check(o.task == "distill" || o.task == "quadratics", "--task '{}': expected distill or quadratics",
        o.task);
  const std::filesystem::path file =
      o.file ? std::filesystem::path(*o.file) : std::filesystem::path(c.out) / "lstm-optimizer.pt";
  o.training.seed = o.seed;
  o.training.validate();
  o.training.checkpoint = file.string() + ".training.pt";
  if (o.fresh) {
    std::error_code ignored;
    std::filesystem::remove(o.training.checkpoint, ignored);
  }
  const bool quiet = o.common.quiet;
  o.training.on_episode = [&](int64_t e, double mean_loss) {
    if (!quiet)
      std::cout << fmt::format("episode {}/{}: mean training loss {:.5g}\n", e + 1,
                               o.training.episodes, mean_loss)
                << std::flush;
  };
  LstmMetaTrainingResult r;
  if (o.task == "quadratics") {
    QuadraticTask task(QuadraticTaskOptions()
                           .with_dim(o.quadratic_dim)
                           .with_batch(o.quadratic_batch)
                           .with_seed(o.seed));
    r = train_lstm_optimizer(task, o.training);
  } else {
    // The student's operator is what this command writes: its file need not exist yet.
    c.student.trainer.optimizer = "sgd";
    c.student.trainer.optimizer_file.clear();
    check_before_start(c, {});
    Prepared p = prepare(c);
    DistillationTaskOptions d;
    d.batch_size = c.student.trainer.batch_size;
    // The distillation loss: the config's fixed λ unless the flags say otherwise.
    d.lambda1 = o.lambda1.value_or(c.method.fixed.lambda1);
    d.temperature = o.temperature.value_or(c.method.fixed.temperature);
    d.kd_scale = parse_kd_scale(c.student.trainer.kd_scale);
    d.seed = o.seed;
    d.device = parse_device(c.device);
    ModelSpec spec(c.student.model, p.data.num_classes, p.data.pool.x.sizes().slice(1).vec());
    DistillationTask task(p.data.pool, p.data.train_idx, p.teacher_logits, spec, d,
                          {{"fingerprint", p.data.fingerprint}, {"teacher", p.teacher_hash}});
    r = train_lstm_optimizer(task, o.training);
  }
  save_lstm_optimizer(*r.net, file);
  std::error_code ignored;
  std::filesystem::remove(o.training.checkpoint, ignored);
  std::cout << fmt::format(
      "learned optimizer ({} episodes{}, mean training loss first {:.5g}, last {:.5g}) saved to {}\n",
      o.training.episodes,
      r.resumed_episodes > 0 ? fmt::format(", {} resumed", r.resumed_episodes) : std::string(),
      r.episode_loss.front(), r.episode_loss.back(), file.string());
  return 0;
}

}  // namespace

void setup_train_optimizer(CLI::App& app) {
  auto o = std::make_shared<TrainOptimizerOptions>();
  auto* sub = app.add_subcommand(
      "train-optimizer",
      "meta-train the learned LSTM optimizer (Andrychowicz et al. 2016) on the config's student");
  add_common_options(*sub, o->common);
  sub->add_option("--task", o->task,
                  "distill (the config's student, Hinton loss on the training split) or "
                  "quadratics (random ||W theta - y||^2)");
  sub->add_option("--file", o->file, "where to write the learned optimizer (default <out>/lstm-optimizer.pt)");
  sub->add_option("--episodes", o->training.episodes, "problems to train on")->check(CLI::PositiveNumber);
  sub->add_option("--unroll", o->training.unroll, "steps per truncation (default 20)")->check(CLI::PositiveNumber);
  sub->add_option("--horizon", o->training.horizon, "steps per problem (default 100)")->check(CLI::PositiveNumber);
  sub->add_option("--meta-lr", o->training.meta_lr, "Adam's learning rate on the LSTM (default 1e-3)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--lr", o->training.lr, "gamma of the learned step (default 1)")->check(CLI::PositiveNumber);
  sub->add_option("--clip", o->training.clip, "clip the meta-gradient's norm (0 = off)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--checkpoint-every", o->training.checkpoint_every, "episodes between checkpoints")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--second-order", o->training.second_order,
                "exact meta-gradient through the optimizee's gradients (quadratics only)");
  sub->add_option("--lambda1", o->lambda1, "lambda1 of the distillation loss (default: the config's method.lambda1)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--temperature", o->temperature, "T of the distillation loss (default: the config's method.temperature)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--dim", o->quadratic_dim, "quadratics: dimension (default 10)")->check(CLI::PositiveNumber);
  sub->add_option("--functions", o->quadratic_batch, "quadratics: functions per problem (default 32)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", o->seed, "seed of the network's initialization and the problems")
      ->check(seed_validator());
  sub->add_flag("--fresh", o->fresh, "discard the meta-training checkpoint; start afresh");
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
