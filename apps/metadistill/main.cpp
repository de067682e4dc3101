// metadistill: knowledge distillation with gradient-optimized metaparameters.
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "metadistill/util/error.h"

int main(int argc, char** argv) {
  using namespace metadistill;
  CLI::App app{"metadistill: knowledge distillation with gradient-optimized metaparameters"};
  app.require_subcommand(1);
  cli::setup_distill(app);
  cli::setup_train_teacher(app);
  cli::setup_experiment(app);
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
