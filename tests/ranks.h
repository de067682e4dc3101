#pragma once
// Two ranks of a group on this machine, for the tests of the rendezvous, the data-parallel
// engine and the run queue: rank `rank` of 2 meeting on 127.0.0.1:`port`.
#include "metadistill/train/data_parallel.h"

namespace metadistill::testing {

inline DataParallelOptions rank_options(int rank, int port, double timeout = 30) {
  DataParallelOptions o;
  o.rank = rank;
  o.world_size = 2;
  o.port = port;
  o.timeout = timeout;
  return o;
}

}  // namespace metadistill::testing
