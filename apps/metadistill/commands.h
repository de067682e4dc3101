#pragma once
// One setup function per subcommand (one file each); a subcommand's callback throws
// CommandResult with its exit code so that main can return it.
#include <CLI/CLI.hpp>

namespace metadistill::cli {

struct CommandResult {
  int code;
  explicit CommandResult(int c) : code(c) {}
};

void setup_distill(CLI::App& app);
void setup_train_teacher(CLI::App& app);
void setup_experiment(CLI::App& app);
void setup_sweep(CLI::App& app);
void setup_search(CLI::App& app);
void setup_multilayer(CLI::App& app);

}  // namespace metadistill::cli
