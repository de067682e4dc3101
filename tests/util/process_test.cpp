#include "metadistill/util/process.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::TempDir;

// flock locks belong to an open file, so two FileLocks of one process exclude each other too.
TEST(FileLock, ExcludesASecondHolderUntilReleased) {
  TempDir dir("lock");
  auto first = FileLock::try_acquire(dir / "a.lock");
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(FileLock::try_acquire(dir / "a.lock").has_value());
  EXPECT_TRUE(FileLock::try_acquire(dir / "b.lock").has_value());  // another file: free
  first->release();
  EXPECT_TRUE(FileLock::try_acquire(dir / "a.lock").has_value());
  {
    FileLock moved = FileLock::acquire(dir / "a.lock");
    FileLock target = std::move(moved);  // the lock travels with the move
    EXPECT_FALSE(FileLock::try_acquire(dir / "a.lock").has_value());
  }
  EXPECT_TRUE(FileLock::try_acquire(dir / "a.lock").has_value());
}

// A lock held by a process that dies is free at once: no stale lock to clean up.
TEST(FileLock, LockOfAKilledProcessIsFree) {
  TempDir dir("lock");
  const auto lock = dir / "run.lock", ready = dir / "ready", go = dir / "go";
  // The child takes the lock (util-linux flock), says so, then waits on a fifo nobody writes.
  ASSERT_EQ(::mkfifo(go.c_str(), 0600), 0);
  ChildProcess child({"/bin/sh", "-c",
                      "exec flock '" + lock.string() + "' sh -c 'touch \"" + ready.string() +
                          "\"; read x < \"" + go.string() + "\"'"});
  while (!std::filesystem::exists(ready)) ::usleep(1000);  // a synchronization point, not a delay
  EXPECT_FALSE(FileLock::try_acquire(lock).has_value());
  ::kill(child.pid(), SIGKILL);
  EXPECT_EQ(child.wait(), 128 + SIGKILL);
  // flock's inner shell may outlive the parent for a moment; the lock goes with the last holder.
  std::ofstream(go) << "\n";
  FileLock taken = FileLock::acquire(lock);
  SUCCEED();
}

TEST(ChildProcess, ReportsTheExitCode) {
  EXPECT_EQ(ChildProcess({"/bin/sh", "-c", "exit 3"}).wait(), 3);
  EXPECT_EQ(ChildProcess({"/bin/true"}).wait(), 0);
  EXPECT_EQ(ChildProcess({"/nonexistent/program"}).wait(), 127);
}

}  // namespace
}  // namespace metadistill
