#pragma once
// Runs the command-line program under test as a child process. Only test areas listed in
// METADISTILL_CLI_TEST_AREAS (tests/CMakeLists.txt) may include this: they depend on the CLI
// target, so METADISTILL_CLI is always the binary built from the current sources.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "metadistill/util/files.h"
#include "test_util.h"

#ifndef METADISTILL_CLI
#error "cli_runner.h needs METADISTILL_CLI: add the test area to METADISTILL_CLI_TEST_AREAS"
#endif

namespace metadistill::testing {

/// The path of the program built by the `metadistill_cli` target.
inline std::string cli_path() { return METADISTILL_CLI; }

/// Starts the program with `args`; its stdout and stderr go to the given files ("" = /dev/null).
/// With `gate` >= 0 (a pipe's read end; the child holds the write end too, so closing it is
/// not enough) the child first waits until it can read a byte from `gate`, so that the parent
/// can prepare what depends on the child's pid before the program runs.
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::string& out_file = "",
                       const std::string& err_file = "", int gate = -1) {
  // Everything the child needs is built before fork: between fork and exec only
  // async-signal-safe calls.
  const std::string bin = cli_path();
  std::vector<std::string> all = {bin};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = out_file.empty() ? "/dev/null" : out_file;
  const std::string err = err_file.empty() ? "/dev/null" : err_file;
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (gate >= 0) {
      char c;
      while (::read(gate, &c, 1) < 0 && errno == EINTR) {
      }
      ::close(gate);
    }
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) ::_exit(126);
    ::dup2(o, STDOUT_FILENO);
    ::dup2(e, STDERR_FILENO);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

/// Waits for `pid`; its exit code, or -1 when a signal ended it.
inline int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// What one run of the program did.
struct CliRun {
  int exit_code = -1;  // -1: ended by a signal
  std::string out, err;
};

/// Runs the program with `args` to its end.
inline CliRun run_cli(const std::vector<std::string>& args) {
  TempDir logs("cli-log");
  CliRun r;
  r.exit_code = wait_exit(spawn_cli(args, (logs / "out").string(), (logs / "err").string()));
  r.out = read_file(logs / "out");
  r.err = read_file(logs / "err");
  return r;
}

/// For failure messages: the command and what it printed.
inline std::string describe(const std::vector<std::string>& args, const CliRun& r) {
  std::string s = "metadistill";
  for (const auto& a : args) s += " " + a;
  return s + "\nexit " + std::to_string(r.exit_code) + "\n--- stdout\n" + r.out +
         "--- stderr\n" + r.err;
}

}  // namespace metadistill::testing
