// `metadistill distill [CONFIG]`: one student run with one method.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/multilayer.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/util/error.h"
#include "metadistill/util/runtime.h"

namespace metadistill::cli {

namespace {

struct DistillOptions {
  CommonOptions common;
  std::optional<std::string> method;
  std::optional<double> lambda1, temperature;
  uint64_t seed = 0;
  bool resume = false;
  bool fresh = false;
};

int run(const DistillOptions& o) {
  // A config with a `multilayer:` section: one multi-layer run.
  if (!o.common.config_path.empty() && has_multilayer_section(o.common.config_path)) {
    check(!o.lambda1 && !o.temperature,
          "--lambda1/--temperature set the Hinton loss; in a multi-layer config set "
          "multilayer.hinton_lambda1, multilayer.temperature or multilayer.beta");
    return run_multilayer_distill(o.common, {o.method, o.seed, o.resume, o.fresh});
  }
  Config c = resolve_config(o.common);
  if (o.method) c.method.method = *o.method;
  if (o.lambda1) c.method.fixed.lambda1 = *o.lambda1;
  if (o.temperature) c.method.fixed.temperature = *o.temperature;
  if (o.lambda1 || o.temperature) {
    // Given values are the fixed λ, or the initial λ of a learning method: each method says
    // which (meta/meta_optimizer.h GivenLambda).
    if (!o.method && method_given_lambda(c.method.method) == GivenLambda::kIgnored)
      c.method.method = "fixed";
    check(method_given_lambda(c.method.method) != GivenLambda::kIgnored,
          "--lambda1/--temperature apply to --method fixed (or as initial values of the gradient "
          "methods), not to '{}'", c.method.method);
    c.method.given_initial = true;
    try {
      c.method.fixed.validate();
    } catch (const Error& e) {
      fail("--lambda1/--temperature: {}", e.what());
    }
  }
  const std::filesystem::path out_dir =
      std::filesystem::path(c.out) / "distill" / fmt::format("{}-seed{}", c.method.method, o.seed);
  // Before the teacher is trained or the data decoded.
  check_before_start(c, {c.method.method});
  // A rank of a data-parallel group (WORLD_SIZE > 1: `metadistill launch`, torchrun, mpirun):
  // joins it now, so that a wrong address or world size fails before any training.
  const auto group = DataParallel::from_environment();
  if (group) c.device = rank_device(c.device);  // "cuda": this rank's GPU (LOCAL_RANK)
  const bool rank0 = !group || group->rank() == 0;
  if (o.fresh && rank0) {
    std::error_code ignored;
    std::filesystem::remove(out_dir / "checkpoint.pt", ignored);
    std::filesystem::remove(out_dir / "result.json", ignored);
  }
  Prepared p = prepare(c, group.get());
  if (!rank0) {
    run_distill(c, p, c.method.method, o.seed, out_dir, o.resume, false, group);
    return 0;
  }
  std::cout << fmt::format("data {}: {} train / {} val / {} test; teacher {} test accuracy {:.4f}\n",
                           p.data.name, p.data.train_idx.numel(),
                           p.data.val_is_test ? 0 : p.data.val_idx.numel(), p.data.test.size(),
                           p.teacher.spec.name, p.teacher_test_accuracy);
  if (group)
    std::cout << fmt::format(
        "data parallel: {} ranks, each on its part of every {}\n", group->world_size(),
        c.student.trainer.batch_size > 0
            ? fmt::format("batch of {}", c.student.trainer.batch_size)
            : std::string("full batch"));
  RunResult r =
      run_distill(c, p, c.method.method, o.seed, out_dir, o.resume, !o.common.quiet, group);
  std::cout << fmt::format(
      "{} (seed {}): test accuracy final {:.4f}, best {:.4f} (epoch {}); {} -> {}; {:.1f}s\n"
      "results in {}\n",
      r.method, r.seed, r.train.final_test_accuracy, r.train.best_test_accuracy,
      r.train.best_epoch, r.initial.to_string(), r.final.to_string(), r.train.seconds,
      out_dir.string());
  return 0;
}

}  // namespace

void setup_distill(CLI::App& app) {
  auto o = std::make_shared<DistillOptions>();
  auto* sub = app.add_subcommand("distill", "train one student with one metaparameter method");
  add_common_options(*sub, o->common);
  o->common.data_parallel = true;
  sub->add_option("--method", o->method,
                  "none, naive, fixed, random, gradient, proposed, ...; with a multi-layer config "
                  "one of its methods (default: its first)");
  sub->add_option("--lambda1", o->lambda1, "λ1 for --method fixed (initial λ1 for gradient methods)");
  sub->add_option("--temperature", o->temperature, "T for --method fixed (initial T otherwise)");
  sub->add_option("--seed", o->seed, "run seed (model init, batch order, method draws)")
      ->check(seed_validator());
  auto* resume = sub->add_flag("--resume", o->resume,
                               "continue from the run's checkpoint (only one stored with the "
                               "same settings)");
  sub->add_flag("--fresh", o->fresh, "discard the run's checkpoint and result; start afresh")
      ->excludes(resume);
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
