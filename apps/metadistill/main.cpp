// metadistill: knowledge distillation with gradient-optimized metaparameters.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "metadistill/util/error.h"

int main(int argc, char** argv) {
  // OpenMP threads spin while waiting by default; on a machine whose cores are shared (two cores
  // here), spinning threads slow a step down up to 4x (measured: cnn step 97 ms spinning, 26 ms
  // passive, with a second process busy). libgomp reads the policy when it is loaded, before
  // main, so set it and restart once; the user's own setting wins.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
  }
  using namespace metadistill;
  CLI::App app{"metadistill: knowledge distillation with gradient-optimized metaparameters"};
  app.require_subcommand(1);
  cli::remember_command_line(argc, argv);
  cli::setup_distill(app);
  cli::setup_train_teacher(app);
  cli::setup_experiment(app);
  cli::setup_sweep(app);
  cli::setup_search(app);
  cli::setup_multilayer(app);
  cli::setup_diagnose(app);
  cli::setup_init(app);
  cli::setup_export(app);
  cli::setup_train_optimizer(app);
  cli::setup_launch(app);
  try {
    app.parse(argc, argv);
  } catch (const cli::CommandResult& r) {
    return r.code;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "error (LibTorch): " << e.what_without_backtrace() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
