#include "metadistill/train/rendezvous.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <vector>

#include "metadistill/util/error.h"
#include "ranks.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;
using metadistill::testing::rank_options;

// What a rank of this process announces: "host pid".
std::string this_process() {
  return this_host() + " " + std::to_string(static_cast<long>(::getpid()));
}

std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// rank_key is deterministic, holds the rank's number and differs from rank to rank.
TEST(Rendezvous, RankKeysAreDistinctPerRank) {
  std::set<std::string> keys;
  for (int r = 0; r < 200; ++r) {
    const std::string k = rank_key(r);
    EXPECT_EQ(rank_key(r), k);
    EXPECT_NE(k.find(std::to_string(r)), std::string::npos) << k;
    keys.insert(k);
  }
  EXPECT_EQ(keys.size(), 200u);
}

// this_host is this machine's host name, as gethostname gives it here, and never empty.
TEST(Rendezvous, ThisHostIsTheHostName) {
  const std::string host = this_host();
  EXPECT_FALSE(host.empty());
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) == 0) {
    EXPECT_EQ(host, std::string(name));
  } else {
    EXPECT_EQ(host, "?");
  }
}

// first_line cuts at the first newline and at 300 characters, whichever comes first.
TEST(Rendezvous, FirstLineCutsAtNewlineAndLength) {
  EXPECT_EQ(first_line("connect failed\nframe #0: c10::Error\nframe #1"), "connect failed");
  EXPECT_EQ(first_line("one line only"), "one line only");
  EXPECT_EQ(first_line(""), "");
  EXPECT_EQ(first_line("\nafter"), "");
  const std::string long_line(1000, 'x');
  EXPECT_EQ(first_line(long_line), std::string(300, 'x'));
  EXPECT_EQ(first_line(long_line + "\nmore"), std::string(300, 'x'));
  const std::string exact(300, 'y');
  EXPECT_EQ(first_line(exact + "\nz"), exact);
  EXPECT_EQ(first_line(std::string(299, 'w') + "\n"), std::string(299, 'w'));
}

// Two ranks (threads) meet on a free local port; both see the same peer list, one entry per rank,
// each "host pid" of this process; a further connection reads what rank 0 announced.
TEST(Rendezvous, TwoRanksMeetAndSeeEachOther) {
  const int port = free_tcp_port();
  std::vector<std::future<Rendezvous>> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(std::async(std::launch::async, [=] { return meet(rank_options(r, port)); }));
  std::vector<Rendezvous> met;
  for (auto& f : ranks) met.push_back(f.get());
  const std::vector<std::string> expected = {this_process(), this_process()};
  EXPECT_EQ(met[0].peers, expected);
  EXPECT_EQ(met[1].peers, expected);
  ASSERT_TRUE(met[0].store.defined());
  ASSERT_TRUE(met[1].store.defined());

  auto extra = connect_store(rank_options(1, port));
  ASSERT_TRUE(extra.defined());
  EXPECT_EQ(as_string(extra->get(rank_key(0))), this_process());
  EXPECT_EQ(as_string(extra->get(rank_key(1))), this_process());
}

// The peers come in rank order: rank 0 meets a second rank that announces another "host pid"
// under rank_key(1), and lists it second.
TEST(Rendezvous, PeersAreListedByRank) {
  const int port = free_tcp_port();
  auto rank0 = std::async(std::launch::async, [=] { return meet(rank_options(0, port)); });
  // Rank 1 by hand: a store client that counts as a worker and announces itself.
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = false;
  so.numWorkers = 2;
  so.waitWorkers = true;
  so.timeout = std::chrono::milliseconds(20000);
  auto rank1 = c10::make_intrusive<c10d::TCPStore>(std::string("127.0.0.1"), so);
  const std::string other = "elsewhere 4242";
  rank1->set(rank_key(1), std::vector<uint8_t>(other.begin(), other.end()));
  const Rendezvous r = rank0.get();
  ASSERT_EQ(r.peers.size(), 2u);
  EXPECT_EQ(r.peers[0], this_process());
  EXPECT_EQ(r.peers[1], other);
  EXPECT_EQ(as_string(rank1->get(rank_key(0))), this_process());
}

// Options are validated before anything is opened, and a rank other than 0 with nobody hosting
// the store fails within its timeout with an Error naming the address and port.
TEST(Rendezvous, BadOptionsAndAnUnreachableStoreAreErrors) {
  DataParallelOptions bad = rank_options(2, free_tcp_port());
  expect_error([&] { meet(bad); }, {"RANK = 2"});

  const int port = free_tcp_port();
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { meet(rank_options(1, port, 1.0)); },
               {"cannot reach", "127.0.0.1:" + std::to_string(port)});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace metadistill
