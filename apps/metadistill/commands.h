#pragma once
// One setup function per subcommand (one file each); a subcommand's callback throws
// CommandResult with its exit code so that main can return it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace metadistill::cli {

struct CommandResult {
  int code;
  explicit CommandResult(int c) : code(c) {}
};

/// Keeps the program's command line, for worker processes (`--jobs`).
void remember_command_line(int argc, char** argv);
/// The command line of a worker: this program's, without `--jobs` and `--threads`, with
/// `--worker --threads THREADS`.
std::vector<std::string> worker_command_line(int threads);

struct CommonOptions;
/// `metadistill multilayer` (and `experiment` with a config that has a `multilayer:` section):
/// every method × runs of a multi-layer experiment, or its sensitivity study.
struct MultiLayerRun {
  std::vector<std::string> methods;
  int64_t runs = 0;
  std::optional<uint64_t> seed;
  bool sensitivity = false;
  bool fresh = false;
  int jobs = 1;
  bool worker = false;
};
int run_multilayer(const CommonOptions& common, const MultiLayerRun& run);
/// `metadistill distill` with a multi-layer config: one run of one method (the config's first
/// unless given), data-parallel when started as ranks of a group.
struct MultiLayerDistill {
  std::optional<std::string> method;
  uint64_t seed = 0;
  bool resume = false;
  bool fresh = false;
};
int run_multilayer_distill(const CommonOptions& common, const MultiLayerDistill& run);

void setup_distill(CLI::App& app);
void setup_train_teacher(CLI::App& app);
void setup_experiment(CLI::App& app);
void setup_sweep(CLI::App& app);
void setup_search(CLI::App& app);
void setup_multilayer(CLI::App& app);
void setup_diagnose(CLI::App& app);
void setup_init(CLI::App& app);
void setup_export(CLI::App& app);
void setup_train_optimizer(CLI::App& app);
void setup_launch(CLI::App& app);

}  // namespace metadistill::cli
