#include "metadistill/util/runtime.h"

#include <cstdlib>
#include <thread>

#include "metadistill/util/error.h"

namespace metadistill {

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    check(torch::cuda::is_available(),
          "device '{}': this LibTorch build has no CUDA device available (use --device cpu)", name);
    try {
      return torch::Device(name);
    } catch (const c10::Error&) {
      fail("device '{}': expected cpu, cuda or cuda:N", name);
    }
  }
  fail("device '{}': expected cpu, cuda or cuda:N", name);
}

std::string rank_device(const std::string& device) {
  const char* local = std::getenv("LOCAL_RANK");
  if (device != "cuda" || local == nullptr || *local == '\0') return device;
  char* end = nullptr;
  const long rank = std::strtol(local, &end, 10);
  check(end != nullptr && *end == '\0' && rank >= 0,
        "LOCAL_RANK='{}': expected the rank's index on its machine, an integer >= 0", local);
  return fmt::format("cuda:{}", rank);
}

int set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  return threads;
}

std::mutex& generator_mutex() {
  static std::mutex m;
  return m;
}

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
}

}  // namespace metadistill
