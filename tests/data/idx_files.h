#pragma once
// IDX files for the data tests that read them (idx_test, fashion_mnist_test): the real
// Fashion-MNIST files when installed, read once, and small IDX files written on the fly.
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "metadistill/data/dataset.h"
#include "metadistill/data/fashion_mnist.h"
#include "metadistill/data/idx.h"

namespace metadistill::testing {

inline const std::filesystem::path kRealRoot = "/usr/share/datasets/fashion-mnist";

inline bool have_real_data() {
  return std::filesystem::exists(kRealRoot / "train-images-idx3-ubyte.gz") &&
         std::filesystem::exists(kRealRoot / "train-labels-idx1-ubyte.gz") &&
         std::filesystem::exists(kRealRoot / "t10k-images-idx3-ubyte.gz") &&
         std::filesystem::exists(kRealRoot / "t10k-labels-idx1-ubyte.gz");
}

#define SKIP_WITHOUT_REAL_DATA()                                                           \
  if (!::metadistill::testing::have_real_data())                                           \
  GTEST_SKIP() << "Fashion-MNIST not found in " << ::metadistill::testing::kRealRoot       \
               << " (install the Debian package dataset-fashion-mnist)"

inline void put_be32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

// The bytes of an IDX file: magic, sizes, data.
inline std::string idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims,
                             const std::vector<uint8_t>& data) {
  std::string out;
  put_be32(out, magic);
  for (uint32_t d : dims) put_be32(out, d);
  out.append(data.begin(), data.end());
  return out;
}

inline std::string image_file(uint32_t n, uint32_t rows, uint32_t cols, uint8_t seed = 0) {
  // Pseudo-random pixels, so that the gzip'd file is about as long as the data and cutting it
  // in half cuts into the pixels.
  std::vector<uint8_t> data(static_cast<size_t>(n) * rows * cols);
  uint32_t state = 12345u + seed;
  for (auto& p : data) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  return idx_bytes(2051, {n, rows, cols}, data);
}

inline std::string label_file(const std::vector<uint8_t>& labels) {
  return idx_bytes(2049, {static_cast<uint32_t>(labels.size())}, labels);
}

inline void write_gz(const std::filesystem::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// The real data, read once for all tests that need it.
struct RealData {
  torch::Tensor train_images, train_labels, test_images, test_labels;
  DataBundle bundle;  // default options
};

inline const RealData& real_data() {
  static const RealData data = [] {
    RealData d;
    d.train_images = read_idx_images(kRealRoot / "train-images-idx3-ubyte.gz");
    d.train_labels = read_idx_labels(kRealRoot / "train-labels-idx1-ubyte.gz");
    d.test_images = read_idx_images(kRealRoot / "t10k-images-idx3-ubyte.gz");
    d.test_labels = read_idx_labels(kRealRoot / "t10k-labels-idx1-ubyte.gz");
    d.bundle = load_fashion_mnist();
    return d;
  }();
  return data;
}

}  // namespace metadistill::testing
