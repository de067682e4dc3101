// `metadistill launch --nproc N -- COMMAND ...`: starts N ranks of a data-parallel command on
// this machine, with torchrun's environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
// LOCAL_RANK), and waits for them.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/util/error.h"
#include "metadistill/util/process.h"

namespace metadistill::cli {

namespace {

struct LaunchOptions {
  int nproc = 2;
  std::string master_addr = "127.0.0.1";
  std::optional<int> master_port;
  double timeout = 60;
  std::vector<std::string> command;
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  std::optional<int> code;  // exit code, 128 + signal
};

pid_t start_rank(const std::vector<std::string>& argv, const LaunchOptions& o, int port,
                 int rank) {
  const pid_t pid = ::fork();
  check(pid >= 0, "launch: cannot start rank {} (fork failed)", rank);
  if (pid > 0) return pid;
  // The child: dies with the launcher; torchrun's variables; then the program itself.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  ::setenv("MASTER_ADDR", o.master_addr.c_str(), 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  ::setenv("RANK", std::to_string(rank).c_str(), 1);
  ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
  ::setenv("METADISTILL_DIST_TIMEOUT", fmt::format("{}", o.timeout).c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  std::cerr << "launch: cannot run " << argv[0] << "\n";
  ::_exit(127);
}

int run(const LaunchOptions& o) {
  check(o.nproc >= 1, "--nproc {}: expected >= 1", o.nproc);
  check(std::isfinite(o.timeout) && o.timeout > 0, "--timeout {}: expected seconds > 0", o.timeout);
  check(!o.command.empty(), "launch: no command (metadistill launch --nproc N -- distill ...)");
  check(o.command.front() == "distill" || o.command.front() == "train-teacher" ||
            o.command.front() == "experiment" || o.command.front() == "multilayer" ||
            o.command.front() == "sweep" || o.command.front() == "search",
        "launch: '{}' has no mode for ranks; expected distill or train-teacher (data-parallel) "
        "or experiment, multilayer, sweep, search (runs and trials shared out)",
        o.command.front());
  const int port = o.master_port ? *o.master_port : free_tcp_port();
  std::vector<std::string> argv = {current_executable().string()};
  argv.insert(argv.end(), o.command.begin(), o.command.end());
  // The cores divided among the ranks, unless the command says.
  if (std::find(o.command.begin(), o.command.end(), "--threads") == o.command.end()) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    argv.push_back("--threads");
    argv.push_back(std::to_string(std::max(1, cores / o.nproc)));
  }
  std::cerr << fmt::format("launch: {} ranks, rendezvous at {}:{}\n", o.nproc, o.master_addr, port);
  std::vector<Rank> ranks;
  for (int r = 0; r < o.nproc; ++r) ranks.push_back({r, start_rank(argv, o, port, r), {}});

  // Reaps the ranks. After the first failure the others get the collective timeout (and a
  // margin) to end by themselves, naming the lost rank; then they are stopped.
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;
  int first_failure = 0;
  auto running = [&] {
    return std::count_if(ranks.begin(), ranks.end(), [](const Rank& r) { return !r.code; });
  };
  while (running() > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (auto& r : ranks) {
        if (r.pid != pid) continue;
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (*r.code != 0) {
          std::cerr << fmt::format("launch: rank {} (process {}) {} {}\n", r.rank, pid,
                                   WIFEXITED(status) ? "exited with code" : "was killed by signal",
                                   WIFEXITED(status) ? *r.code : WTERMSIG(status));
          if (first_failure == 0) {
            first_failure = *r.code;
            deadline = Clock::now() + std::chrono::milliseconds(
                                          static_cast<int64_t>((o.timeout + 10) * 1000));
          }
        }
      }
      continue;
    }
    if (deadline && Clock::now() > *deadline) {
      for (auto& r : ranks)
        if (!r.code) {
          std::cerr << fmt::format("launch: stopping rank {} (process {})\n", r.rank, r.pid);
          ::kill(r.pid, SIGTERM);
        }
      deadline.reset();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return first_failure;
}

}  // namespace

void setup_launch(CLI::App& app) {
  auto o = std::make_shared<LaunchOptions>();
  auto* sub = app.add_subcommand(
      "launch", "run a data-parallel command as N ranks on this machine (torchrun's environment)");
  sub->add_option("--nproc", o->nproc, "number of ranks (processes)")->check(CLI::PositiveNumber);
  sub->add_option("--master-addr", o->master_addr, "rank 0's address (MASTER_ADDR)");
  sub->add_option("--master-port", o->master_port, "rendezvous port (default: a free one)")
      ->check(CLI::Range(1, 65535));
  sub->add_option("--timeout", o->timeout,
                  "seconds a rank waits for the others before it reports one lost")
      ->check(CLI::PositiveNumber);
  sub->add_option("command", o->command, "the command and its arguments, after --")
      ->expected(-1)
      ->required();
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
