#include "metadistill/data/npy.h"

#include <gtest/gtest.h>

#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// The header numpy 1.24 writes for np.save(f, np.zeros((2, 3), np.float32)), padded to 64 bytes.
std::string numpy_header(const std::string& dict) {
  std::string h = dict;
  const size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(h.size()));
  out.push_back('\0');
  return out + h;
}

}  // namespace

TEST(Npy, ReadsWhatItWritesForEveryDtypeAndShape) {
  TempDir dir("npy");
  for (auto type : {torch::kFloat, torch::kHalf, torch::kDouble, torch::kInt, torch::kLong,
                    torch::kByte}) {
    for (const auto& shape : {std::vector<int64_t>{5}, std::vector<int64_t>{2, 3},
                              std::vector<int64_t>{2, 1, 4}, std::vector<int64_t>{0, 3}}) {
      const auto t = (torch::rand(shape) * 100).to(type);
      write_npy(t, dir / "a.npy");
      const auto back = read_npy(dir / "a.npy");
      EXPECT_EQ(back.scalar_type(), type);
      EXPECT_TRUE(back.equal(t)) << c10::toString(type) << " " << c10::IntArrayRef(shape);
    }
  }
  // The header says what numpy writes, and the data start at a multiple of 64.
  const std::string bytes = npy_bytes(torch::zeros({2, 3}));
  EXPECT_NE(bytes.find("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"),
            std::string::npos);
  EXPECT_EQ((bytes.size() - 24) % 64, 0u);
  EXPECT_NE(npy_bytes(torch::zeros({4})).find("'shape': (4,)"), std::string::npos);
}

TEST(Npy, ParsesANumpyHeaderWithItsPadding) {
  const float values[6] = {1, 2, 3, 4, 5, 6};
  const std::string bytes =
      numpy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") +
      std::string(reinterpret_cast<const char*>(values), sizeof(values));
  const auto t = parse_npy(bytes, "x.npy");
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t[1][2].item<float>(), 6.0f);
}

TEST(Npy, RefusesWhatItCannotReadExactly) {
  const std::string data(24, '\0');
  const auto with = [&](const std::string& dict, const std::string& body) {
    return numpy_header(dict) + body;
  };
  expect_error([&] { parse_npy("PK\x03\x04 not numpy", "a.npy"); }, {"a.npy", "not a .npy file"});
  expect_error(
      [&] { parse_npy(with("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", data), "b.npy"); },
      {"b.npy", "'>f4'", "not supported"});
  expect_error(
      [&] { parse_npy(with("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", data), "c.npy"); },
      {"c.npy", "'|O'"});
  expect_error(
      [&] { parse_npy(with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data), "d.npy"); },
      {"d.npy", "Fortran order"});
  expect_error(
      [&] { parse_npy(with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data.substr(4)), "e.npy"); },
      {"e.npy", "needs 24 bytes, found 20"});
  expect_error(
      [&] { parse_npy(with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data + "xx"), "f.npy"); },
      {"f.npy", "found 26"});
  expect_error(
      [&] { parse_npy(with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", data), "g.npy"); },
      {"g.npy", "malformed"});
  expect_error([&] { read_npy("/nonexistent/h.npy"); }, {"/nonexistent/h.npy", "no such file"});
}
