#pragma once
/// File helpers: atomic writes (temp file + rename, so a killed process never leaves a torn
/// file), whole-file reads and content hashes for cache keys.
#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// Writes `content` to `path` atomically: a temporary file in the same folder, fsync, rename.
/// Creates the parent folder when missing.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);

/// Reads a whole file; throws `Error` naming the path when it cannot be read.
std::string read_file(const std::filesystem::path& path);

/// 64-bit FNV-1a hash of bytes, as 16 hex digits.
std::string hash_bytes(const void* data, size_t size, uint64_t seed = 0xcbf29ce484222325ULL);
/// Hash of a string's bytes.
std::string hash_string(const std::string& s);
/// Hash of a tensor's shape, dtype and contents (moved to CPU, made contiguous).
std::string hash_tensor(const torch::Tensor& t);

/// Saves a tensor with torch::save, atomically.
void save_tensor_atomic(const torch::Tensor& t, const std::filesystem::path& path);
/// Loads a tensor saved by `save_tensor_atomic`; throws `Error` naming the path on failure.
torch::Tensor load_tensor(const std::filesystem::path& path);

}  // namespace metadistill
