#pragma once
/// Process-wide run-time settings: device and thread count, chosen at run time so that the same
/// binary runs against a CPU or a CUDA LibTorch.
#include <mutex>
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// Parses "cpu", "cuda" or "cuda:N"; throws `Error` for anything else or when CUDA is asked for
/// but this LibTorch has no CUDA device.
torch::Device parse_device(const std::string& name);

/// The device of one rank of a data-parallel group (train/data_parallel.h): "cuda" becomes
/// "cuda:<LOCAL_RANK>" when torchrun's LOCAL_RANK is set, one GPU per rank of a node as torchrun,
/// mpirun and Slurm launchers expect; "cpu", an explicit "cuda:N" or an unset LOCAL_RANK leave
/// `device` as it is. Throws `Error` naming LOCAL_RANK when it is not an integer >= 0.
std::string rank_device(const std::string& device);

/// Sets LibTorch's intra-op thread count; `threads <= 0` means all cores.
/// Returns the count in force.
int set_threads(int threads);

/// Seeds LibTorch's global generators (CPU and, when present, CUDA).
void seed_everything(uint64_t seed);

/// The lock of the process-wide generators: held while seeding them and drawing initial
/// parameters from them, so that trainers on several threads of one process (data-parallel ranks
/// as threads, a library user's parallel runs) draw what each would draw alone.
std::mutex& generator_mutex();

}  // namespace metadistill
