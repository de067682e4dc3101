#include "metadistill/experiment/run_queue.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(200);

std::string key(const std::string& kind, const std::string& name) {
  return "metadistill/queue/" + kind + "/" + name;
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The files of a run folder as one value: for each, its relative path and its contents, both
// length-prefixed (8 bytes, little-endian).
std::string pack(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name != ".lock" && name.find(".tmp") == std::string::npos)
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) {
    const std::string rel = f.lexically_relative(dir).generic_string();
    const std::string data = read_file(f);
    put_u64(out, rel.size());
    out += rel;
    put_u64(out, data.size());
    out += data;
  }
  return out;
}

// Inverse of `pack`: (relative path, contents) pairs; throws `Error` on a malformed value or a
// path that would leave the run folder.
std::vector<std::pair<std::string, std::string>> unpack(const std::string& in,
                                                        const std::string& what) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t at = 0;
  auto take = [&](size_t n) {
    check(n <= in.size() - at, "{}: truncated delivery ({} bytes)", what, in.size());
    std::string s = in.substr(at, n);
    at += n;
    return s;
  };
  auto u64 = [&] {
    const std::string b = take(8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[static_cast<size_t>(i)]);
    return static_cast<size_t>(v);
  };
  while (at < in.size()) {
    std::string rel = take(u64());
    const fs::path p(rel);
    bool escapes = p.is_absolute() || rel.empty();
    for (const auto& part : p) escapes = escapes || part == "..";
    check(!escapes, "{}: delivered file '{}' is outside the run folder", what, rel);
    std::string data = take(u64());
    out.emplace_back(std::move(rel), std::move(data));
  }
  return out;
}

// Runs a store call of a rank other than 0; a failure means rank 0 (which hosts the store) is gone.
template <typename F>
auto on_store(int rank, const std::string& what, F&& call) -> decltype(call()) {
  if (rank == 0) return call();
  try {
    return call();
  } catch (const std::exception& e) {
    fail("rank {}: rank 0 is gone (its store stopped answering) while this rank {}: {}", rank,
         what, first_line(e.what()));
  }
}

}  // namespace

RunQueue::RunQueue(const DataParallelOptions& options)
    : options_(options),
      rendezvous_(meet(options)),
      beats_(static_cast<size_t>(options.world_size), -1),
      beat_seen_(static_cast<size_t>(options.world_size), Clock::now()) {
  if (root()) return;
  // The heartbeat, on its own connection: rank 0 takes a rank whose counter stops for the
  // timeout for lost.
  auto store = connect_store(options_);
  heartbeat_ = std::thread([this, store] {
    try {
      while (!stop_) {
        store->add(key("beat", std::to_string(rank())), 1);
        for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(kPoll);
      }
    } catch (const std::exception&) {
      // Rank 0 is gone; the main thread finds out at its next store call.
    }
  });
}

RunQueue::~RunQueue() {
  stop_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

std::unique_ptr<RunQueue> RunQueue::join(const DataParallelOptions& options) {
  return std::unique_ptr<RunQueue>(new RunQueue(options));
}

std::unique_ptr<RunQueue> RunQueue::from_environment() {
  const DataParallelOptions o = DataParallelOptions::from_environment();
  o.validate();
  if (o.world_size == 1) return nullptr;
  return join(o);
}

std::string RunQueue::share(const std::string& name, const std::string& value) {
  auto& store = rendezvous_.store;
  const std::string k = key("share", name);
  if (root()) {
    store->set(k, bytes(value));
    return value;
  }
  return on_store(rank(), "waited for its " + name, [&] {
    while (!store->check({k})) std::this_thread::sleep_for(kPoll);
    return text(store->get(k));
  });
}

bool RunQueue::claim(const std::string& run) {
  const auto me = bytes(std::to_string(rank()));
  return on_store(rank(), "claimed " + run,
                  [&] { return rendezvous_.store->compareSet(key("owner", run), {}, me) == me; });
}

void RunQueue::deliver(const std::string& run, const fs::path& dir) {
  const auto value = bytes(pack(dir));
  on_store(rank(), "delivered " + run, [&] { rendezvous_.store->set(key("result", run), value); });
}

void RunQueue::report_failure(const std::string& run, const std::string& message) {
  on_store(rank(), "reported the failure of " + run,
           [&] { rendezvous_.store->set(key("error", run), bytes(message)); });
}

bool RunQueue::lost(int r) {
  auto& store = rendezvous_.store;
  const auto i = static_cast<size_t>(r);
  const int64_t beat = store->add(key("beat", std::to_string(r)), 0);
  if (beat != beats_[i]) {
    beats_[i] = beat;
    beat_seen_[i] = Clock::now();
    return false;
  }
  return std::chrono::duration<double>(Clock::now() - beat_seen_[i]).count() > options_.timeout;
}

void RunQueue::assign(const std::string& run, int r) {
  check(root(), "RunQueue::assign: only rank 0 assigns runs");
  check(r >= 0 && r < world_size(), "RunQueue::assign: rank {} of {}", r, world_size());
  rendezvous_.store->set(key("owner", run), bytes(std::to_string(r)));
}

std::optional<RunQueue::Collected> RunQueue::try_collect(const std::string& run,
                                                         const fs::path& dir) {
  check(root(), "RunQueue::collect: only rank 0 collects");
  auto& store = rendezvous_.store;
  const std::string owner_key = key("owner", run);
  if (store->check({key("result", run)})) {
    const auto files = unpack(text(store->get(key("result", run))), (dir / "").string());
    fs::create_directories(dir);
    // result.json marks a finished run: it goes last.
    for (const bool last : {false, true})
      for (const auto& [rel, data] : files) {
        if ((rel == "result.json") != last) continue;
        fs::create_directories((dir / rel).parent_path());
        write_file_atomic(dir / rel, data);
      }
    store->deleteKey(key("result", run));  // written here: the store lets it go
    return Collected::kDelivered;
  }
  if (store->check({key("error", run)}))
    fail("run {} failed on rank {}: {}", run, text(store->get(owner_key)),
         text(store->get(key("error", run))));
  const auto me = bytes("0");
  if (!store->check({owner_key})) {
    if (store->compareSet(owner_key, {}, me) == me) return Collected::kTakenOver;
    return std::nullopt;
  }
  const auto owner = store->get(owner_key);
  const int r = std::stoi(text(owner));
  const bool finished = store->check({key("done", std::to_string(r))});
  if (finished && store->check({key("result", run)})) return std::nullopt;  // delivered just now
  if (r == 0 || ((finished || lost(r)) && store->compareSet(owner_key, owner, me) == me))
    return Collected::kTakenOver;
  return std::nullopt;
}

RunQueue::Collected RunQueue::collect(const std::string& run, const fs::path& dir,
                                      const std::function<void()>& waiting) {
  auto last_call = Clock::now();
  for (;;) {
    if (const auto c = try_collect(run, dir)) return *c;
    if (waiting && Clock::now() - last_call > std::chrono::seconds(1)) {
      waiting();
      last_call = Clock::now();
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void RunQueue::finish() {
  auto& store = rendezvous_.store;
  if (!root()) {
    on_store(rank(), "finished", [&] { store->set(key("done", std::to_string(rank())), bytes("1")); });
    stop_ = true;
    if (heartbeat_.joinable()) heartbeat_.join();
    return;
  }
  for (int r = 1; r < world_size(); ++r)
    while (!store->check({key("done", std::to_string(r))}) && !lost(r))
      std::this_thread::sleep_for(kPoll);
}

}  // namespace metadistill
