#include "metadistill/util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "metadistill/util/error.h"

namespace metadistill {

namespace fs = std::filesystem;

void write_file_atomic(const fs::path& path, const std::string& content) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  // Unique per process and per call: two threads writing the same path (the ranks' threads of a
  // search) must not share one temporary file.
  static std::atomic<uint64_t> calls{0};
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid()) + "." +
                       std::to_string(calls.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  check(fd >= 0, "cannot create {}: {}", tmp.string(), std::strerror(errno));
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write {}: {}", tmp.string(), std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp.string(), path.string(), std::strerror(err));
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open {}: {}", path.string(),
        fs::exists(path) ? "not readable" : "no such file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hash_bytes(const void* data, size_t size, uint64_t seed) {
  uint64_t h = seed;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}", h);
}

std::string hash_string(const std::string& s) { return hash_bytes(s.data(), s.size()); }

std::string hash_tensor(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  std::string header = fmt::format("{}|{}", c.sizes(), std::string(c.dtype().name()));
  return hash_string(header + hash_bytes(c.data_ptr(), c.nbytes()));
}

void save_tensor_atomic(const torch::Tensor& t, const fs::path& path) {
  std::ostringstream ss;
  torch::save(t.detach().to(torch::kCPU), ss);
  write_file_atomic(path, ss.str());
}

torch::Tensor load_tensor(const fs::path& path) {
  check(fs::exists(path), "cannot open {}: no such file", path.string());
  torch::Tensor t;
  try {
    torch::load(t, path.string());
  } catch (const c10::Error& e) {
    fail("{}: not a tensor file written by metadistill ({})", path.string(),
         std::string(e.what_without_backtrace()));
  }
  return t;
}

}  // namespace metadistill
