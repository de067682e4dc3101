// data_parallel_bench: images per second of teacher training steps (ResNet-20 on CIFAR-10-shaped
// input by default) for one process with T threads against R data-parallel ranks (processes,
// c10d/Gloo over localhost) with T/R threads each, the scaling efficiency, and the measured
// all-reduce time per step with the gradient volume it moves (train/data_parallel.h).
//
//   build/bench/data_parallel_bench                       # resnet20, batch 128, 20 steps, 2 ranks
//   build/bench/data_parallel_bench --model cnn --steps 40 --ranks 2 --threads 2
//
// The input is random (speed does not depend on pixel values); the steps are those of the
// trainer (train/loop.h, plain cross-entropy, momentum SGD), after 3 warm-up steps.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/models/classifier.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/train/trainer.h"
#include "metadistill/util/error.h"
#include "metadistill/util/process.h"
#include "metadistill/util/runtime.h"

using namespace metadistill;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string model = "resnet20";
  int64_t batch = 128, steps = 20, warmup = 3;
  int ranks = 2, threads = 2;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      check(i + 1 < argc, "{} needs a value", k);
      return argv[++i];
    };
    if (k == "--model") a.model = next();
    else if (k == "--batch") a.batch = std::stoll(next());
    else if (k == "--steps") a.steps = std::stoll(next());
    else if (k == "--ranks") a.ranks = std::stoi(next());
    else if (k == "--threads") a.threads = std::stoi(next());
    else fail("unknown argument '{}' (see the header of bench/data_parallel_bench.cpp)", k);
  }
  check(a.batch >= a.ranks && a.steps >= 1 && a.ranks >= 2 && a.threads >= 1,
        "expected --batch >= --ranks >= 2, --steps >= 1, --threads >= 1");
  return a;
}

// Seconds of `steps` trainer steps (after the warm-up) on this process or rank.
double time_steps(const Args& a, int threads, std::shared_ptr<DataParallel> group) {
  set_threads(threads);
  seed_everything(0);
  const std::vector<int64_t> shape = {3, 32, 32};
  const int64_t n = a.batch * (a.steps + a.warmup);
  DataSet data;
  data.x = torch::randn({n, 3, 32, 32});
  data.y = torch::randint(0, 10, {n}, torch::kLong);
  auto model = make_model(ModelSpec(a.model, 10, shape));
  FixedMetaOptimizer plain("plain", Metaparameters{1.0, 1.0});
  FitData fit;
  fit.train_set = &data;
  fit.train_ids = torch::arange(n, torch::kLong);
  DataSet none;
  none.x = data.x.slice(0, 0, 1);
  none.y = data.y.slice(0, 0, 1);
  fit.test_set = &none;
  TrainerOptions o = TrainerOptions().with_epochs(1).with_batch_size(a.batch).with_lr(0.05);
  o.optimizer = "momentum";
  o.data_parallel = group;
  // The warm-up: the first steps allocate and tune; timed separately and subtracted.
  TrainerOptions warm = o;
  auto warm_ids = fit.train_ids;
  fit.train_ids = warm_ids.slice(0, 0, a.batch * a.warmup);
  Trainer(warm).fit(*model, fit, plain);
  fit.train_ids = warm_ids.slice(0, a.batch * a.warmup);
  if (group) group->barrier();
  const auto t0 = Clock::now();
  Trainer(o).fit(*model, fit, plain);
  if (group) group->barrier();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The all-reduce of one step's gradients alone: milliseconds per call.
double time_all_reduce(const Args& a, DataParallel& group) {
  auto model = make_model(ModelSpec(a.model, 10, {3, 32, 32}));
  std::vector<torch::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(torch::randn_like(p));
  grads.push_back(torch::zeros({1}));
  const int reps = 20;
  group.barrier();
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) group.all_reduce_batch_mean(grads, a.batch / group.world_size());
  return 1000 * std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (std::getenv("WORLD_SIZE") != nullptr) {  // a rank started below
      auto group = DataParallel::from_environment();
      const double s = time_steps(a, std::max(1, a.threads / a.ranks), group);
      const double ms = time_all_reduce(a, *group);
      if (group->rank() == 0) std::cout << fmt::format("{} {}\n", s, ms) << std::flush;
      return 0;
    }
    int64_t params = 0;
    for (const auto& p : make_model(ModelSpec(a.model, 10, {3, 32, 32}))->parameters())
      params += p.numel();
    const double one = time_steps(a, a.threads, nullptr);
    // The ranks: this program again, with torchrun's variables; rank 0 prints its timings.
    const int port = free_tcp_port();
    int pipefd[2];
    check(::pipe(pipefd) == 0, "pipe failed");
    std::vector<pid_t> pids;
    for (int r = 0; r < a.ranks; ++r) {
      const pid_t pid = ::fork();
      check(pid >= 0, "fork failed");
      if (pid == 0) {
        ::setenv("MASTER_ADDR", "127.0.0.1", 1);
        ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        ::setenv("RANK", std::to_string(r).c_str(), 1);
        ::setenv("WORLD_SIZE", std::to_string(a.ranks).c_str(), 1);
        if (r == 0) ::dup2(pipefd[1], STDOUT_FILENO);
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        ::execv(current_executable().c_str(), argv);
        ::_exit(127);
      }
      pids.push_back(pid);
    }
    ::close(pipefd[1]);
    std::string out;
    char buf[256];
    ssize_t got = 0;
    while ((got = ::read(pipefd[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(got));
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a rank failed (process {})", pid);
    }
    double ranked = 0, reduce_ms = 0;
    check(std::sscanf(out.c_str(), "%lf %lf", &ranked, &reduce_ms) == 2,
          "rank 0 printed no timings: '{}'", out);
    const double images = static_cast<double>(a.batch * a.steps);
    const double bytes = 4.0 * static_cast<double>(params);
    // A ring all-reduce sends and receives 2(R−1)/R of the bucket per rank.
    const double moved = 2.0 * (a.ranks - 1) / a.ranks * bytes;
    std::cout << fmt::format(
        "model {} ({} parameters, gradient bucket {:.2f} MB float32), batch {} (global), {} steps\n"
        "1 process x {} threads: {:.1f} images/s ({:.1f} ms/step)\n"
        "{} ranks x {} thread(s): {:.1f} images/s ({:.1f} ms/step)\n"
        "speedup {:.2f}; scaling efficiency {:.0f}% (speedup x {} / {} threads in all)\n"
        "all-reduce of one step's gradients: {:.2f} ms here (localhost); a ring moves {:.2f} MB "
        "per rank per step: {:.1f} ms at 1 Gbit/s, {:.1f} ms at 10 Gbit/s\n",
        a.model, params, bytes / 1e6, a.batch, a.steps, a.threads, images / one,
        1000 * one / static_cast<double>(a.steps), a.ranks, std::max(1, a.threads / a.ranks),
        images / ranked, 1000 * ranked / static_cast<double>(a.steps), one / ranked,
        100 * one / ranked * a.threads / (a.ranks * std::max(1, a.threads / a.ranks)), a.threads,
        a.ranks * std::max(1, a.threads / a.ranks), reduce_ms, moved / 1e6, 1000 * moved / 125e6, 1000 * moved / 1250e6);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
