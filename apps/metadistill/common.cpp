#include "common.h"

#include <iostream>

#include "metadistill/util/runtime.h"

namespace metadistill::cli {

void add_common_options(CLI::App& app, CommonOptions& o) {
  app.add_option("config", o.config_path, "YAML config (default: the synthetic experiment)");
  app.add_option("--threads", o.threads, "intra-op threads (default: all cores)");
  app.add_option("--device", o.device, "cpu, cuda or cuda:N (default: cpu)");
  app.add_option("--out", o.out, "output folder (default: from the config)");
  app.add_option("--epochs", o.epochs, "student epochs (overrides the config)")
      ->check(CLI::PositiveNumber);
  app.add_option("--data-root", o.data_root, "folder of the data files (overrides the config)");
  app.add_flag("-q,--quiet", o.quiet, "no per-epoch progress lines");
}

Config resolve_config(const CommonOptions& o) {
  Config c = o.config_path.empty() ? default_config() : load_config(o.config_path);
  if (o.threads) c.threads = *o.threads;
  if (o.device) c.device = *o.device;
  if (o.out) c.out = *o.out;
  if (o.epochs) c.student.trainer.epochs = *o.epochs;
  if (o.data_root) c.data.root = *o.data_root;
  c.resolve_paths();
  c.validate();
  parse_device(c.device);
  set_threads(c.threads);
  return c;
}

}  // namespace metadistill::cli
