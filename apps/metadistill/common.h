#pragma once
// Options every subcommand shares: the config file and the run-time overrides.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "metadistill/experiment/config.h"

namespace metadistill::cli {

struct CommonOptions {
  std::string config_path;
  std::optional<int> threads;
  std::optional<std::string> device;
  std::optional<std::string> out;
  std::optional<int64_t> epochs;
  std::optional<std::string> data_root;
  bool quiet = false;
  /// The command runs as a rank of a group (WORLD_SIZE > 1 in the environment): it trains
  /// data-parallel (distill, train-teacher) or shares out its runs (experiment); the other
  /// commands refuse to run as ranks.
  bool data_parallel = false;
};

/// Accepts a seed: an integer >= 0 (a negative one would wrap around to 2^64 − 1).
CLI::Validator seed_validator();
/// Adds the shared flags to a subcommand.
void add_common_options(CLI::App& app, CommonOptions& o);
/// Adds `--jobs N` (worker processes) and the hidden `--worker` flag they are started with.
void add_jobs_options(CLI::App& app, int& jobs, bool& worker);
/// Threads per process when `jobs` processes share the machine: the cores divided among them
/// (at least 1), or the config's count when it asks for fewer; sets it and returns it.
int threads_per_job(int config_threads, int jobs);
/// Loads the config (or the default), applies the flags, sets threads; returns it validated.
/// A thread count above 4× the cores (flag or config) is capped there, with a message.
/// Refuses to run as a rank of a data-parallel group (WORLD_SIZE > 1) unless the command trains
/// data-parallel: N ranks would each do the whole command and write the same files.
Config resolve_config(const CommonOptions& o);
/// Refuses a data-parallel launch for a command that has no data-parallel mode.
void refuse_ranks(const CommonOptions& o);

}  // namespace metadistill::cli
