#include "common.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "metadistill/util/error.h"
#include "metadistill/util/process.h"
#include "metadistill/util/runtime.h"

namespace metadistill::cli {

namespace {
// Cap of the intra-op threads, per core.
constexpr int kMaxThreadsPerCore = 4;

std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}
}  // namespace

void remember_command_line(int argc, char** argv) { command_line().assign(argv, argv + argc); }

std::vector<std::string> worker_command_line(int threads) {
  std::vector<std::string> out = {current_executable().string()};
  const auto& args = command_line();
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--jobs" || a == "--threads") {
      ++i;  // and its value
      continue;
    }
    if (a.rfind("--jobs=", 0) == 0 || a.rfind("--threads=", 0) == 0) continue;
    // A worker never starts afresh: the process that starts it has already cleared what
    // --fresh discards, and the runs finished since then are this invocation's.
    if (a == "--fresh") continue;
    out.push_back(a);
  }
  out.insert(out.end(), {"--worker", "--threads", std::to_string(threads)});
  return out;
}

CLI::Validator seed_validator() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos) return "";
        return fmt::format("{}: expected a seed, an integer >= 0", v);
      },
      "SEED");
}

void add_common_options(CLI::App& app, CommonOptions& o) {
  app.add_option("config", o.config_path, "YAML config (default: the synthetic experiment)");
  app.add_option("--threads", o.threads,
                 "intra-op threads, >= 1 (default: all cores; more than 4x the cores are capped)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            try {
              size_t pos = 0;
              if (std::stoll(v, &pos) >= 1 && pos == v.size()) return "";
            } catch (const std::exception&) {
            }
            return fmt::format("{}: expected a thread count >= 1 (leave --threads out to use all "
                               "cores)",
                               v);
          },
          "N"));
  app.add_option("--device", o.device, "cpu, cuda or cuda:N (default: cpu)");
  app.add_option("--out", o.out, "output folder (default: from the config)");
  app.add_option("--epochs", o.epochs, "student epochs (overrides the config)")
      ->check(CLI::PositiveNumber);
  app.add_option("--data-root", o.data_root, "folder of the data files (overrides the config)");
  app.add_flag("-q,--quiet", o.quiet, "no per-epoch progress lines");
}

void add_jobs_options(CLI::App& app, int& jobs, bool& worker) {
  app.add_option("--jobs", jobs,
                 "runs executed at once, in this many processes (default 1); each gets cores / "
                 "jobs threads unless --threads is given")
      ->check(CLI::Range(1, 256));
  app.add_flag("--worker", worker, "(internal) run as a worker of a --jobs process")->group("");
}

int threads_per_job(int config_threads, int jobs) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = std::max(1, cores / std::max(1, jobs));
  if (config_threads > 0) threads = std::min(threads, config_threads);
  return set_threads(threads);
}

void refuse_ranks(const CommonOptions& o) {
  const char* ws = std::getenv("WORLD_SIZE");
  if (o.data_parallel || ws == nullptr || std::string(ws).empty() || std::string(ws) == "1") return;
  fail("WORLD_SIZE={} (started as a rank of a group): only `distill` and `train-teacher` train "
       "data-parallel, and only `experiment`, `multilayer`, `sweep` and `search` share their runs "
       "out across ranks; run this command "
       "as one process (without `metadistill launch`, torchrun or WORLD_SIZE), or use --jobs to "
       "run its runs side by side",
       ws);
}

Config resolve_config(const CommonOptions& o) {
  refuse_ranks(o);
  Config c = o.config_path.empty() ? default_config() : load_config(o.config_path);
  if (o.threads) c.threads = *o.threads;
  if (o.device) c.device = *o.device;
  if (o.out) c.out = *o.out;
  if (o.epochs) c.student.trainer.epochs = *o.epochs;
  if (o.data_root) c.data.root = *o.data_root;
  c.resolve_paths();
  c.validate();
  parse_device(c.device);
  // More threads than cores only add contention; a thousand made a run hang.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (c.threads > kMaxThreadsPerCore * cores) {
    std::cerr << fmt::format("{} {}: more than {}x the {} cores; using {} threads\n",
                             o.threads ? "--threads" : c.source + ": threads:", c.threads,
                             kMaxThreadsPerCore, cores, kMaxThreadsPerCore * cores);
    c.threads = kMaxThreadsPerCore * cores;
  }
  set_threads(c.threads);
  return c;
}

}  // namespace metadistill::cli
