#include "metadistill/train/rendezvous.h"

#include <unistd.h>

#include <chrono>

#include <fmt/format.h>

#include "metadistill/util/error.h"

namespace metadistill {

namespace {

c10d::TCPStoreOptions store_options(const DataParallelOptions& o, bool server, bool wait) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(o.port);
  so.isServer = server;
  so.numWorkers = static_cast<size_t>(o.world_size);
  so.waitWorkers = wait;
  so.timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout * 1000));
  return so;
}

}  // namespace

std::string rank_key(int rank) { return fmt::format("metadistill/rank/{}", rank); }

std::string this_host() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return s.substr(0, nl == std::string::npos ? std::string::npos : nl).substr(0, 300);
}

Rendezvous meet(const DataParallelOptions& options) {
  options.validate();
  const std::string where = fmt::format("{}:{}", options.master_addr, options.port);
  Rendezvous r;
  try {
    r.store = c10::make_intrusive<c10d::TCPStore>(
        options.master_addr, store_options(options, options.rank == 0, true));
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    if (options.rank == 0 && (msg.find("in use") != std::string::npos ||
                              msg.find("EADDRINUSE") != std::string::npos))
      fail("rank 0 cannot host the rendezvous store on {}: the port is in use (another run? set "
           "MASTER_PORT to a free port)", where);
    if (options.rank == 0)
      fail("rank 0: not all {} ranks joined the rendezvous at {} within {} s (is WORLD_SIZE = {} "
           "right, and were that many processes started?): {}",
           options.world_size, where, options.timeout, options.world_size, first_line(msg));
    fail("rank {}: cannot reach the rendezvous store of rank 0 at {} within {} s (check "
         "MASTER_ADDR and MASTER_PORT, and that rank 0 runs): {}",
         options.rank, where, options.timeout, first_line(msg));
  }
  // Every rank announces itself ("host pid"); a rank that does not within the timeout was not
  // started, or WORLD_SIZE is wrong.
  const std::string me = fmt::format("{} {}", this_host(), static_cast<long>(::getpid()));
  for (int k = 0; k < options.world_size; ++k) {
    try {
      if (k == 0) r.store->set(rank_key(options.rank), std::vector<uint8_t>(me.begin(), me.end()));
      const auto v = r.store->get(rank_key(k));
      r.peers.emplace_back(v.begin(), v.end());
    } catch (const std::exception& e) {
      fail("rank {}: not all {} ranks joined the rendezvous at {} within {} s: rank {} is missing "
           "(is WORLD_SIZE = {} right, and were that many processes started?): {}",
           options.rank, options.world_size, where, options.timeout, k, options.world_size,
           first_line(e.what()));
    }
  }
  return r;
}

c10::intrusive_ptr<c10d::TCPStore> connect_store(const DataParallelOptions& options) {
  try {
    return c10::make_intrusive<c10d::TCPStore>(options.master_addr,
                                               store_options(options, false, false));
  } catch (const std::exception& e) {
    fail("rank {}: cannot reach the rendezvous store of rank 0 at {}:{}: {}", options.rank,
         options.master_addr, options.port, first_line(e.what()));
  }
}

}  // namespace metadistill
