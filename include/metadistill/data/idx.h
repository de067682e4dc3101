#pragma once
/// Readers for the IDX format of MNIST and Fashion-MNIST (LeCun et al., "THE MNIST DATABASE").
///
/// An IDX file is a big-endian header, magic 0x000008DD (unsigned bytes, DD dimensions) followed
/// by one 32-bit size per dimension, then the bytes row-major. Files may be gzip'd (detected by the
/// gzip magic 1f 8b) or plain. Every error names the file and what was expected, e.g.
/// `IDX file /x/train-images-idx3-ubyte.gz: expected magic 2051, found 2049`.
#include <cstdint>
#include <filesystem>

#include <torch/torch.h>

namespace metadistill {

/// Magic number of an IDX image file (unsigned bytes, 3 dimensions: count, rows, columns).
constexpr int64_t kIdxImagesMagic = 2051;
/// Magic number of an IDX label file (unsigned bytes, 1 dimension: count).
constexpr int64_t kIdxLabelsMagic = 2049;
/// Largest number of rows or columns an image header may declare; more means a corrupt header.
constexpr int64_t kIdxMaxSide = 4096;
/// Largest data size (bytes after the header) a header may declare: 4 GiB.
constexpr int64_t kIdxMaxBytes = int64_t{1} << 32;

/// Reads an IDX image file (magic 2051), gzip'd or plain, into uint8 [N, rows, cols].
/// Throws `Error` naming the file for a missing file, a wrong magic, absurd dimensions, a corrupt
/// gzip stream, or fewer (or more) bytes than the header promises.
torch::Tensor read_idx_images(const std::filesystem::path& path);

/// Reads an IDX label file (magic 2049), gzip'd or plain, into int64 [N] (values 0..255; the
/// caller checks the class range). Throws `Error` as `read_idx_images` does.
torch::Tensor read_idx_labels(const std::filesystem::path& path);

}  // namespace metadistill
