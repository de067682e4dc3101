#pragma once
// One setup function per subcommand (one file each); a subcommand's callback throws
// CommandResult with its exit code so that main can return it.
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

}  // namespace metadistill::cli
