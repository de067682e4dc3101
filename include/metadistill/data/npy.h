#pragma once
/// NumPy `.npy` files (format versions 1.0-3.0), read strictly: little-endian float16/32/64,
/// int32/64 or uint8, C order; anything else, a truncated file or trailing bytes is an error
/// naming the file. https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#include <filesystem>
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// The array in `path` as a CPU tensor of the file's dtype and shape. Throws `Error` naming the
/// file and the problem: missing, not a .npy file (magic), an unsupported version or dtype
/// (`'>f4'`, `'O'`, ...), Fortran order, a malformed header, or a data size that disagrees with
/// the shape.
torch::Tensor read_npy(const std::filesystem::path& path);

/// Parses .npy bytes (`where` names them in errors).
torch::Tensor parse_npy(const std::string& bytes, const std::string& where);

/// `t` as .npy bytes (version 1.0, C order, little-endian; float16/32/64, int32/64, uint8).
std::string npy_bytes(const torch::Tensor& t);

/// Writes `t` as a .npy file atomically.
void write_npy(const torch::Tensor& t, const std::filesystem::path& path);

}  // namespace metadistill
