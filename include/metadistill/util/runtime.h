#pragma once
/// Process-wide run-time settings: device and thread count, chosen at run time so that the same
/// binary runs against a CPU or a CUDA LibTorch.
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// Parses "cpu", "cuda" or "cuda:N"; throws `Error` for anything else or when CUDA is asked for
/// but this LibTorch has no CUDA device.
torch::Device parse_device(const std::string& name);

/// Sets LibTorch's intra-op thread count; `threads <= 0` means all cores.
/// Returns the count in force.
int set_threads(int threads);

/// Seeds LibTorch's global generators (CPU and, when present, CUDA).
void seed_everything(uint64_t seed);

}  // namespace metadistill
