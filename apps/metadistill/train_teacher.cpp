// `metadistill train-teacher [CONFIG]`: trains and saves the config's teacher.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/util/error.h"
#include "metadistill/util/runtime.h"

namespace metadistill::cli {

namespace {

struct TrainTeacherOptions {
  CommonOptions common;
  std::optional<std::string> file;
  std::optional<int64_t> teacher_epochs;
  uint64_t seed = 0;
};

int run(const TrainTeacherOptions& o) {
  Config c = resolve_config(o.common);
  if (o.file) c.teacher_file = *o.file;
  if (o.teacher_epochs) c.teacher.trainer.epochs = *o.teacher_epochs;
  check(c.teacher_torchscript.empty() && c.teacher_logits.empty(),
        "{}: the teacher is external (teacher.{} {}); train-teacher trains zoo teachers only",
        c.source, c.teacher_torchscript.empty() ? "logits" : "torchscript",
        c.teacher_torchscript.empty() ? c.teacher_logits : c.teacher_torchscript);
  DataBundle data = load_data(c.data, c.cache);
  ModelSpec spec(c.teacher.model, data.num_classes,
                 data.pool.teacher_input().sizes().slice(1).vec());
  TrainerOptions t = c.teacher.trainer;
  t.seed = o.seed;
  // A rank of a data-parallel group (WORLD_SIZE > 1) trains its shard of every batch, on its own
  // GPU under "cuda" (LOCAL_RANK).
  t.data_parallel = DataParallel::from_environment();
  t.device = parse_device(t.data_parallel ? rank_device(c.device) : c.device);
  const bool rank0 = !t.data_parallel || t.data_parallel->rank() == 0;
  t.verbose = !o.common.quiet && rank0;
  double acc = 0;
  train_teacher(data, spec, t, c.teacher_file, &acc);
  if (!rank0) return 0;
  std::cout << fmt::format("teacher {} on {}: test accuracy {:.4f}, saved to {}\n", spec.name,
                           data.name, acc, c.teacher_file);
  return 0;
}

}  // namespace

void setup_train_teacher(CLI::App& app) {
  auto o = std::make_shared<TrainTeacherOptions>();
  auto* sub = app.add_subcommand("train-teacher", "train and save the config's teacher");
  add_common_options(*sub, o->common);
  o->common.data_parallel = true;
  sub->add_option("--file", o->file, "where to save the teacher (default: teacher.file)");
  sub->add_option("--teacher-epochs", o->teacher_epochs, "teacher epochs (overrides the config)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", o->seed, "seed of the teacher's initialization and batch order")
      ->check(seed_validator());
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
