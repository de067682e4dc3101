// The run queue of experiments across machines (experiment/run_queue.h): ranks are threads of this
// process here, each with its own store connection, as the ranks of data_parallel_test are.
#include "metadistill/experiment/run_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "metadistill/util/files.h"
#include "ranks.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

using metadistill::testing::rank_options;

// Joins two ranks (rank 0 hosts the store and waits for rank 1).
std::pair<std::unique_ptr<RunQueue>, std::unique_ptr<RunQueue>> two_ranks(double timeout = 30) {
  const int port = free_tcp_port();
  auto r1 = std::async(std::launch::async, [&] { return RunQueue::join(rank_options(1, port, timeout)); });
  auto r0 = RunQueue::join(rank_options(0, port, timeout));
  return {std::move(r0), r1.get()};
}

}  // namespace

TEST(RunQueue, EveryRunGoesToExactlyOneRankAndItsFilesReachRankZero) {
  auto ranks = two_ranks();
  auto& q0 = ranks.first;
  auto& q1 = ranks.second;
  EXPECT_TRUE(q0->root());
  EXPECT_FALSE(q1->root());
  // Rank 0's value is everyone's.
  EXPECT_EQ(q0->share("plan", "a b c"), "a b c");
  EXPECT_EQ(q1->share("plan", "ignored"), "a b c");

  // Both ranks claim the same 200 runs at once: each run goes to one of them, for good.
  std::vector<std::string> runs;
  for (int i = 0; i < 200; ++i) runs.push_back("runs/m/seed" + std::to_string(i));
  auto claims_of = [&runs](RunQueue& q) {
    std::vector<char> got;
    for (const auto& r : runs) got.push_back(q.claim(r) ? 1 : 0);
    return got;
  };
  auto other = std::async(std::launch::async, [&] { return claims_of(*q1); });
  const auto mine = claims_of(*q0);
  const auto theirs = other.get();
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(mine[i] + theirs[i], 1) << runs[i];
  EXPECT_EQ(claims_of(*q0), mine);  // asked again: the same answers
  EXPECT_EQ(claims_of(*q1), theirs);

  // Rank 1 delivers the files of a run (binary contents, a subfolder); lock files stay.
  const std::string run = "runs/m/seed-rank1", undelivered = "runs/m/seed-kept";
  ASSERT_TRUE(q1->claim(run));
  ASSERT_TRUE(q1->claim(undelivered));
  EXPECT_FALSE(q0->claim(run));
  TempDir there("rank1"), here("rank0");
  const std::string binary("\0\x01\xff payload\n", 12);
  std::filesystem::create_directories(there / "trial-0");
  write_file_atomic(there / "result.json", R"({"final_test_accuracy": 0.5})");
  write_file_atomic(there / "metrics.csv", "epoch,loss\n1,0.3\n");
  write_file_atomic(there / "trial-0" / "student.pt", binary);
  write_file_atomic(there / ".lock", "");
  q1->deliver(run, there.path());
  EXPECT_EQ(q0->collect(run, here / "runs" / "m"), RunQueue::Collected::kDelivered);
  EXPECT_EQ(read_file(here / "runs" / "m" / "result.json"), R"({"final_test_accuracy": 0.5})");
  EXPECT_EQ(read_file(here / "runs" / "m" / "metrics.csv"), "epoch,loss\n1,0.3\n");
  EXPECT_EQ(read_file(here / "runs" / "m" / "trial-0" / "student.pt"), binary);
  EXPECT_FALSE(std::filesystem::exists(here / "runs" / "m" / ".lock"));

  // A run rank 1 claimed but never delivered before it finished is rank 0's to run.
  q1->finish();
  EXPECT_EQ(q0->collect(undelivered, here / "x"), RunQueue::Collected::kTakenOver);
  EXPECT_TRUE(q0->claim(undelivered));
  q0->finish();  // rank 1 has finished: returns
}

// A rank that stops (killed: here destroyed without `finish`) is lost once its heartbeat has been
// silent for the timeout; rank 0 takes its run over and does not wait for it at the end.
TEST(RunQueue, ALostRanksRunIsTakenOverAfterTheTimeout) {
  auto ranks = two_ranks(/*timeout=*/1.0);
  auto& q0 = ranks.first;
  auto& q1 = ranks.second;
  ASSERT_TRUE(q1->claim("runs/gradient/seed3"));
  q1.reset();
  TempDir here("rank0");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(q0->collect("runs/gradient/seed3", here.path()), RunQueue::Collected::kTakenOver);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.9);
  EXPECT_LT(waited, 10);
  EXPECT_TRUE(q0->claim("runs/gradient/seed3"));  // rank 0 holds it now
  q0->finish();
}

TEST(RunQueue, ARunThatFailedOnItsRankFailsCollectWithTheRanksMessage) {
  auto ranks = two_ranks();
  auto& q0 = ranks.first;
  auto& q1 = ranks.second;
  ASSERT_TRUE(q1->claim("runs/proposed/seed1"));
  q1->report_failure("runs/proposed/seed1", "loss is nan at step 17");
  TempDir here("rank0");
  expect_error([&] { q0->collect("runs/proposed/seed1", here.path()); },
               {"runs/proposed/seed1", "rank 1", "loss is nan at step 17"});
  q1->finish();
  q0->finish();
}

// What arrives over the network is checked: a delivered path that leaves the run folder, or a
// truncated value, is refused and nothing is written outside.
TEST(RunQueue, ADeliveryThatLeavesTheRunFolderIsRefused) {
  auto ranks = two_ranks();
  auto& q0 = ranks.first;
  auto& q1 = ranks.second;
  const auto u64 = [](uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return s;
  };
  auto raw = connect_store(rank_options(1, q0->options().port));
  TempDir here("rank0");
  const std::string evil = "../escaped.txt";
  const std::string value = u64(evil.size()) + evil + u64(3) + "bad";
  ASSERT_TRUE(q1->claim("runs/a/seed0"));
  raw->set("metadistill/queue/result/runs/a/seed0", std::vector<uint8_t>(value.begin(), value.end()));
  expect_error([&] { q0->collect("runs/a/seed0", here / "run"); }, {"../escaped.txt", "outside"});
  EXPECT_FALSE(std::filesystem::exists(here / "escaped.txt"));
  const std::string cut = u64(100) + "result.json";
  ASSERT_TRUE(q1->claim("runs/a/seed1"));
  raw->set("metadistill/queue/result/runs/a/seed1", std::vector<uint8_t>(cut.begin(), cut.end()));
  expect_error([&] { q0->collect("runs/a/seed1", here / "run"); }, {"truncated"});
  q1->finish();
  q0->finish();
}
