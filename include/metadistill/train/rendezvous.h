#pragma once
/// Where the ranks of one group meet (DESIGN.md 3.9): rank 0 hosts a `c10d::TCPStore` at
/// MASTER_ADDR:MASTER_PORT, every rank connects and announces itself ("host pid"). Data-parallel
/// training (train/data_parallel.h) builds its Gloo group on this store; the experiment run queue
/// (experiment/run_queue.h) uses the store alone.
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "metadistill/train/data_parallel.h"

namespace metadistill {

struct Rendezvous {
  c10::intrusive_ptr<c10d::TCPStore> store;
  /// "host pid" of every rank, by rank.
  std::vector<std::string> peers;
};

/// Joins the group of `options` (validated): rank 0 hosts the store and waits for the others.
/// Throws `Error` on a port in use, an unreachable MASTER_ADDR, or ranks that do not join within
/// the timeout (a wrong WORLD_SIZE), naming the address, port and counts.
Rendezvous meet(const DataParallelOptions& options);

/// One more client connection to the store of a group that has met (for a second thread: a
/// store client is not shared between threads).
c10::intrusive_ptr<c10d::TCPStore> connect_store(const DataParallelOptions& options);

/// The store key under which rank `rank` announced itself.
std::string rank_key(int rank);

/// This machine's host name ("?" when unknown).
std::string this_host();

/// The first line of a message, at most 300 characters (c10d's messages carry stack traces).
std::string first_line(const std::string& message);

}  // namespace metadistill
