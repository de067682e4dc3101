#include "metadistill/train/data_parallel.h"

// c10d's Gloo process group is compiled into Debian's libtorch; its header is guarded by this
// macro, which LibTorch's CMake package does not define for users.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#ifdef METADISTILL_WITH_NCCL
// A CUDA LibTorch with NCCL, configured with -DMETADISTILL_NCCL=ON (not built on this project's
// CPU-only CI).
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "metadistill/train/rendezvous.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

int64_t env_integer(const char* name, int64_t fallback) {
  const std::string v = env_or(name, "");
  if (v.empty()) return fallback;
  size_t used = 0;
  int64_t out = 0;
  try {
    out = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  check(used == v.size(), "environment variable {}='{}': expected an integer", name, v);
  return out;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// No such process, or a zombie (ended, not yet reaped by its parent).
bool process_gone(long pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');  // the state follows the command name in parentheses
  return close != std::string::npos && close + 2 < line.size() &&
         (line[close + 2] == 'Z' || line[close + 2] == 'X');
}

}  // namespace

DataParallelOptions DataParallelOptions::from_environment() {
  DataParallelOptions o;
  o.world_size = static_cast<int>(env_integer("WORLD_SIZE", 1));
  o.rank = static_cast<int>(env_integer("RANK", 0));
  o.master_addr = env_or("MASTER_ADDR", o.master_addr);
  o.port = static_cast<int>(env_integer("MASTER_PORT", o.port));
  o.local_rank = static_cast<int>(env_integer("LOCAL_RANK", 0));
  o.backend = env_or("METADISTILL_DIST_BACKEND", o.backend);
  const std::string t = env_or("METADISTILL_DIST_TIMEOUT", "");
  if (!t.empty()) {
    char* end = nullptr;
    o.timeout = std::strtod(t.c_str(), &end);
    check(end != nullptr && *end == '\0', "METADISTILL_DIST_TIMEOUT='{}': expected seconds", t);
  }
  return o;
}

void DataParallelOptions::validate() const {
  check(world_size >= 1, "WORLD_SIZE = {}: expected >= 1", world_size);
  check(rank >= 0 && rank < world_size, "RANK = {}: expected a rank in [0, {}) (WORLD_SIZE {})",
        rank, world_size, world_size);
  check(port >= 1 && port <= 65535, "MASTER_PORT = {}: expected a port in [1, 65535]", port);
  check(!master_addr.empty(), "MASTER_ADDR is empty: expected rank 0's address");
  check(std::isfinite(timeout) && timeout > 0,
        "METADISTILL_DIST_TIMEOUT = {}: expected seconds > 0", timeout);
  check(backend == "gloo" || backend == "nccl",
        "METADISTILL_DIST_BACKEND = '{}': expected gloo or nccl", backend);
#ifndef METADISTILL_WITH_NCCL
  check(backend != "nccl",
        "METADISTILL_DIST_BACKEND = nccl: this build has no NCCL (configure with "
        "-DMETADISTILL_NCCL=ON against a CUDA LibTorch); gloo carries CUDA tensors too");
#endif
  check(local_rank >= 0, "LOCAL_RANK = {}: expected >= 0", local_rank);
}

struct DataParallel::Impl {
  DataParallelOptions options;
  std::chrono::milliseconds timeout{60000};
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  // Where the collectives' tensors must be: undefined for Gloo (any device), this rank's GPU for
  // NCCL (a tensor elsewhere travels there and back).
  std::optional<torch::Device> device;

  // Runs `op` on `tensors` on the collectives' device; copies the result back.
  template <typename Op>
  void on_device(std::vector<torch::Tensor>& tensors, Op&& op) {
    if (!device) return op(tensors);
    std::vector<torch::Tensor> moved;
    for (const auto& t : tensors) moved.push_back(t.to(*device).contiguous());
    op(moved);
    for (size_t i = 0; i < tensors.size(); ++i)
      if (moved[i].data_ptr() != tensors[i].data_ptr()) tensors[i].copy_(moved[i]);
  }
  // "host pid" of every rank, read at the rendezvous: names a lost rank later.
  std::vector<std::string> peers;

  // Which rank is gone, as far as this rank can tell. A peer on this host is gone when its
  // process is (or is a zombie); a process that was killed closes its sockets a moment before it
  // becomes a zombie, so look for a second.
  std::string lost_rank() const {
    const std::string host = this_host();
    for (int attempt = 0; attempt < 20; ++attempt) {
      for (int k = 0; k < static_cast<int>(peers.size()); ++k) {
        if (k == options.rank) continue;
        std::istringstream in(peers[static_cast<size_t>(k)]);
        std::string peer_host;
        long pid = 0;
        if ((in >> peer_host >> pid) && peer_host == host && pid > 0 && process_gone(pid))
          return fmt::format("rank {} (process {} on {}) is gone", k, pid, host);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (options.rank != 0) {
      try {
        store->check({rank_key(0)});
      } catch (const std::exception&) {
        return "rank 0 is gone (its rendezvous store stopped answering)";
      }
    }
    return "a peer rank stopped answering (on another host, or stuck)";
  }

  // Runs a collective and waits for it; any failure becomes an `Error` naming the lost rank.
  template <typename F>
  void collective(const char* what, F&& start) {
    try {
      auto work = start();
      work->wait(timeout);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail("rank {} of {}: {} failed within {} s: {}. {}", options.rank, options.world_size, what,
           options.timeout, lost_rank(), first_line(e.what()));
    }
  }
};

DataParallel::DataParallel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataParallel::~DataParallel() = default;

std::shared_ptr<DataParallel> DataParallel::join(const DataParallelOptions& options) {
  options.validate();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout * 1000));
  const std::string where = fmt::format("{}:{}", options.master_addr, options.port);
  Rendezvous met = meet(options);
  impl->store = met.store;
  impl->peers = std::move(met.peers);
  try {
    if (options.backend == "nccl") {
#ifdef METADISTILL_WITH_NCCL
      impl->device = torch::Device(torch::kCUDA, options.local_rank);
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = impl->timeout;
      impl->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, options.rank,
                                                                options.world_size, no);
      return std::shared_ptr<DataParallel>(new DataParallel(std::move(impl)));
#endif
    }
    auto go = c10d::ProcessGroupGloo::Options::create(impl->timeout);
    const std::string iface = env_or("GLOO_SOCKET_IFNAME", "");
    if (!iface.empty())
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    else if (is_loopback(options.master_addr))
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    go->threads = 1;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, options.rank,
                                                              options.world_size, go);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank {} of {}: the ranks did not connect within {} s through the store at {}: {}",
         options.rank, options.world_size, options.timeout, where, first_line(e.what()));
  }
  return std::shared_ptr<DataParallel>(new DataParallel(std::move(impl)));
}

std::shared_ptr<DataParallel> DataParallel::from_environment() {
  const DataParallelOptions o = DataParallelOptions::from_environment();
  if (o.world_size == 1) {
    o.validate();
    return nullptr;
  }
  return join(o);
}

int DataParallel::rank() const { return impl_->options.rank; }
int DataParallel::world_size() const { return impl_->options.world_size; }
const DataParallelOptions& DataParallel::options() const { return impl_->options; }

Batch DataParallel::shard(const Batch& batch) const {
  const int64_t n = batch.x.size(0), r = rank(), w = world_size();
  const int64_t lo = r * n / w, hi = (r + 1) * n / w;
  Batch out;
  out.x = batch.x.narrow(0, lo, hi - lo);
  out.y = batch.y.narrow(0, lo, hi - lo);
  if (batch.idx.defined()) out.idx = batch.idx.narrow(0, lo, hi - lo);
  return out;
}

void DataParallel::all_reduce_batch_mean(std::vector<torch::Tensor>& means, int64_t count) {
  check(count >= 0, "all_reduce_batch_mean: count = {}: expected >= 0", count);
  // One flat bucket per dtype (float32 gradients travel as float32, as in PyTorch's DDP), each
  // holding count·mean of every tensor and the count itself, summed over the ranks.
  std::vector<c10::ScalarType> dtypes;
  for (const auto& m : means) {
    check(m.defined(), "all_reduce_batch_mean: an undefined tensor");
    if (std::find(dtypes.begin(), dtypes.end(), m.scalar_type()) == dtypes.end())
      dtypes.push_back(m.scalar_type());
  }
  torch::NoGradGuard no_grad;
  for (const auto dtype : dtypes) {
    std::vector<size_t> members;
    std::vector<torch::Tensor> parts;
    for (size_t i = 0; i < means.size(); ++i) {
      if (means[i].scalar_type() != dtype) continue;
      members.push_back(i);
      auto flat = means[i].detach().reshape(-1);
      // A rank without samples contributes nothing (its mean may be NaN).
      parts.push_back(count > 0 ? flat * static_cast<double>(count) : torch::zeros_like(flat));
    }
    parts.push_back(torch::full({1}, static_cast<double>(count), parts.front().options()));
    std::vector<torch::Tensor> bucket{torch::cat(parts)};
    impl_->on_device(bucket, [&](std::vector<torch::Tensor>& b) {
      impl_->collective("all-reduce of batch means", [&] {
        c10d::AllreduceOptions o;
        o.reduceOp = c10d::ReduceOp::SUM;
        return impl_->group->allreduce(b, o);
      });
    });
    const double total = bucket[0][-1].item<double>();
    check(total > 0, "all_reduce_batch_mean: no rank had samples");
    int64_t offset = 0;
    for (const size_t i : members) {
      auto& m = means[i];
      const int64_t k = m.numel();
      auto mean = (bucket[0].narrow(0, offset, k) / total).view(m.sizes());
      if (m.requires_grad())
        m = mean;
      else
        m.copy_(mean);
      offset += k;
    }
  }
}

BatchMeanReduce DataParallel::batch_mean_reduce() {
  return [this](std::vector<torch::Tensor>& means, int64_t count) {
    all_reduce_batch_mean(means, count);
  };
}

double DataParallel::all_reduce_max(double value) {
  std::vector<torch::Tensor> t{torch::full({1}, value, torch::kDouble)};
  impl_->on_device(t, [&](std::vector<torch::Tensor>& b) {
    impl_->collective("all-reduce (max)", [&] {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::MAX;
      return impl_->group->allreduce(b, o);
    });
  });
  return t[0].item<double>();
}

void DataParallel::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  check(root >= 0 && root < world_size(), "broadcast: root {} outside [0, {})", root, world_size());
  torch::NoGradGuard no_grad;
  for (auto& t : tensors) {
    // Gloo broadcasts dense contiguous tensors in place.
    auto buffer = t.detach().contiguous();
    std::vector<torch::Tensor> one{buffer};
    impl_->on_device(one, [&](std::vector<torch::Tensor>& b) {
      impl_->collective("broadcast", [&] {
        c10d::BroadcastOptions o;
        o.rootRank = root;
        return impl_->group->broadcast(b, o);
      });
    });
    if (buffer.data_ptr() != t.data_ptr()) t.detach().copy_(buffer);
  }
}

void DataParallel::barrier() {
  impl_->collective("barrier", [&] { return impl_->group->barrier(c10d::BarrierOptions()); });
}

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  check(fd >= 0, "free_tcp_port: cannot open a socket (errno {})", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  check(ok, "free_tcp_port: cannot bind a socket on 127.0.0.1 (errno {})", errno);
  return ntohs(addr.sin_port);
}

}  // namespace metadistill
