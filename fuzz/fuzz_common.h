#pragma once
// Shared pieces of the libFuzzer harnesses (scripts/fuzz.sh builds and runs them). A harness
// feeds the bytes to one reader; the reader may refuse them only with `metadistill::Error` (a
// message naming the file and the problem). Anything else that escapes — another exception
// type, a crash, a sanitizer report, a hang — is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <torch/torch.h>

#include "metadistill/util/error.h"

namespace metadistill::fuzz {

// One file per process, rewritten for every input: the readers under test take paths.
inline std::filesystem::path input_file(const std::string& extension) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("metadistill-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir / ("input" + extension);
}

inline void write_input(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

}  // namespace metadistill::fuzz

// Each harness is its own program and includes this header once: one intra-op thread, since
// inputs are small and a fuzzer process runs one input at a time.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}
