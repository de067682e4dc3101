#pragma once
/// Cooperation between processes on one machine: advisory file locks (who runs which piece of
/// work; a lock dies with its process, so a killed worker never leaves a stale one) and worker
/// processes (the same program started again with other arguments).
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace metadistill {

/// An exclusive `flock` on a file (created if missing), held until destruction or `release`.
/// The kernel drops it when the holding process dies, however it dies.
class FileLock {
 public:
  /// Takes the lock if no other process holds it; std::nullopt otherwise.
  static std::optional<FileLock> try_acquire(const std::filesystem::path& path);
  /// Waits until the lock is free, then takes it.
  static FileLock acquire(const std::filesystem::path& path);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  void release();
  const std::filesystem::path& path() const { return path_; }

 private:
  FileLock(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  static int open_lock_file(const std::filesystem::path& path);
  std::filesystem::path path_;
  int fd_ = -1;
};

/// A child process running `argv` (argv[0] is the program's path). Its standard output goes to
/// /dev/null, its standard error is shared with ours; it is killed if we die first (Linux).
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess& operator=(ChildProcess&&) = delete;
  /// Kills a child still running and reaps it.
  ~ChildProcess();

  /// Waits for the child; returns its exit code (128 + signal when a signal ended it).
  int wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// The path of the running program (/proc/self/exe resolved).
std::filesystem::path current_executable();

}  // namespace metadistill
