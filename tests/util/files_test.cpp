#include "metadistill/util/files.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "metadistill/util/error.h"
#include "test_util.h"

namespace metadistill {
namespace {

namespace fs = std::filesystem;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

// The file's bytes, read here without read_file.
std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_plain(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

// Bytes 0..255 and back, with NULs in the middle: what text-mode I/O would mangle.
std::string binary_content() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  s += std::string("\0\0mid\r\n\xff\xfe\x80", 10);
  for (int i = 255; i >= 0; --i) s.push_back(static_cast<char>(i));
  return s;
}

// FNV-1a, 64 bits, written here from its definition.
std::string fnv1a(const std::string& s, uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<size_t>(i)] = digits[h & 0xf];
  return out;
}

bool is_lower_hex(const std::string& s) {
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  return true;
}

// write_file_atomic creates missing parent folders and writes the exact bytes.
TEST(Files, AtomicWriteCreatesTheParentFolder) {
  TempDir dir("files");
  const fs::path path = dir.path() / "a" / "b" / "out.bin";
  const std::string content = binary_content();
  write_file_atomic(path, content);
  ASSERT_TRUE(fs::is_regular_file(path));
  EXPECT_EQ(bytes_of(path), content);
}

// A second write replaces the whole file (no tail of a longer first version stays), and no
// temporary file is left in the folder.
TEST(Files, AtomicWriteReplacesTheWholeFileAndLeavesNoTemporary) {
  TempDir dir("files");
  const fs::path path = dir / "state.json";
  write_file_atomic(path, std::string(5000, 'L'));
  write_file_atomic(path, "short");
  EXPECT_EQ(bytes_of(path), "short");
  write_file_atomic(path, "");
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 0u);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"state.json"});
}

// read_file returns the exact bytes of a file written independently (NUL and high bytes, CR LF),
// and "" for an empty file; it round-trips with write_file_atomic.
TEST(Files, ReadFileReturnsExactBytes) {
  TempDir dir("files");
  const std::string content = binary_content();
  write_plain(dir / "raw.bin", content);
  const std::string got = read_file(dir / "raw.bin");
  EXPECT_EQ(got.size(), content.size());
  EXPECT_EQ(got, content);
  write_plain(dir / "empty", "");
  EXPECT_EQ(read_file(dir / "empty"), "");
  write_file_atomic(dir / "again.bin", content);
  EXPECT_EQ(read_file(dir / "again.bin"), content);
}

// Reading a missing file is an Error naming its path.
TEST(Files, ReadingAMissingFileIsAnErrorNamingIt) {
  TempDir dir("files");
  const fs::path missing = dir / "nowhere" / "absent.txt";
  expect_error([&] { read_file(missing); }, {missing.string()});
}

// hash_bytes is FNV-1a 64 as 16 lower-case hex digits: it matches an implementation written here
// and the published test vectors, is stable, and depends on the content and the seed.
TEST(FileHash, HashBytesIsFnv1a64InSixteenHexDigits) {
  const std::string content = binary_content();
  const std::string h = hash_bytes(content.data(), content.size());
  EXPECT_EQ(h.size(), 16u);
  EXPECT_TRUE(is_lower_hex(h)) << h;
  EXPECT_EQ(h, fnv1a(content));
  EXPECT_EQ(hash_bytes(content.data(), content.size()), h);  // stable
  // Published FNV-1a 64 vectors (offset basis for the empty input).
  EXPECT_EQ(hash_bytes("", 0), "cbf29ce484222325");
  EXPECT_EQ(hash_bytes("a", 1), "af63dc4c8601ec8c");
  EXPECT_EQ(hash_bytes("foobar", 6), "85944171f73967e8");
  // One flipped bit, or one more byte, changes the hash.
  std::string flipped = content;
  flipped[100] = static_cast<char>(flipped[100] ^ 0x01);
  EXPECT_NE(hash_bytes(flipped.data(), flipped.size()), h);
  EXPECT_NE(hash_bytes(content.data(), content.size() - 1), h);
  // The seed replaces the offset basis.
  const std::string seeded = hash_bytes(content.data(), content.size(), 12345);
  EXPECT_NE(seeded, h);
  EXPECT_EQ(seeded, fnv1a(content, 12345));
  EXPECT_NE(hash_bytes(content.data(), content.size(), 12346), seeded);
}

// hash_string hashes the string's bytes, NULs included.
TEST(FileHash, HashStringIsTheHashOfItsBytes) {
  const std::string s("ab\0cd", 5);
  EXPECT_EQ(hash_string(s), hash_bytes(s.data(), s.size()));
  EXPECT_EQ(hash_string(s), fnv1a(s));
  EXPECT_NE(hash_string(s), hash_string("ab"));
  EXPECT_EQ(hash_string("x").size(), 16u);
}

// hash_tensor is stable, 16 hex digits, and depends on the contents, the shape (same bytes,
// another shape) and the dtype (same shape, all-zero bytes, another dtype).
TEST(TensorHash, DependsOnShapeDtypeAndContents) {
  torch::manual_seed(2);
  const auto t = torch::randn({3, 4});
  const std::string h = hash_tensor(t);
  EXPECT_EQ(h.size(), 16u);
  EXPECT_TRUE(is_lower_hex(h)) << h;
  EXPECT_EQ(hash_tensor(t), h);
  EXPECT_EQ(hash_tensor(t.clone()), h);  // equal contents, other storage

  auto changed = t.clone();
  changed[1][2].add_(1e-3);
  EXPECT_NE(hash_tensor(changed), h);

  EXPECT_NE(hash_tensor(t.reshape({4, 3})), h);
  EXPECT_NE(hash_tensor(t.reshape({12})), h);
  EXPECT_NE(hash_tensor(torch::zeros({2, 3})), hash_tensor(torch::zeros({3, 2})));
  EXPECT_NE(hash_tensor(torch::zeros({4}, torch::kFloat)),
            hash_tensor(torch::zeros({4}, torch::kInt32)));
  EXPECT_NE(hash_tensor(torch::zeros({2}, torch::kFloat64)),
            hash_tensor(torch::zeros({4}, torch::kFloat32)));
}

// A non-contiguous tensor (a transpose, a strided slice) hashes like its contiguous copy, and a
// tensor that requires grad like its detached values.
TEST(TensorHash, NonContiguousHashesLikeItsContiguousCopy) {
  torch::manual_seed(3);
  const auto t = torch::randn({5, 6});
  const auto transposed = t.t();
  ASSERT_FALSE(transposed.is_contiguous());
  EXPECT_EQ(hash_tensor(transposed), hash_tensor(transposed.contiguous()));
  EXPECT_NE(hash_tensor(transposed), hash_tensor(t));
  const auto strided = t.slice(1, 1, 6, 2);
  ASSERT_FALSE(strided.is_contiguous());
  EXPECT_EQ(hash_tensor(strided), hash_tensor(strided.contiguous()));
  const auto offset = t.slice(0, 2, 4);  // contiguous rows at a storage offset
  EXPECT_EQ(hash_tensor(offset), hash_tensor(offset.clone()));
  const auto leaf = t.clone().requires_grad_(true);
  EXPECT_EQ(hash_tensor(leaf), hash_tensor(t));
}

// save_tensor_atomic / load_tensor round-trip values, shape and dtype (float, int64, a
// non-contiguous view), leaving no temporary file.
TEST(TensorFile, SaveAndLoadRoundTrip) {
  TempDir dir("files");
  torch::manual_seed(4);
  const std::vector<torch::Tensor> tensors = {
      torch::randn({3, 4}), torch::arange(0, 10, torch::kLong).view({2, 5}),
      torch::randn({4, 6}).t(), torch::zeros({0, 3})};
  for (size_t i = 0; i < tensors.size(); ++i) {
    const fs::path path = dir / ("t" + std::to_string(i) + ".pt");
    save_tensor_atomic(tensors[i], path);
    const auto back = load_tensor(path);
    EXPECT_EQ(back.sizes(), tensors[i].sizes()) << i;
    EXPECT_EQ(back.scalar_type(), tensors[i].scalar_type()) << i;
    EXPECT_TRUE(back.equal(tensors[i])) << i;
  }
  EXPECT_EQ(names_in(dir.path()).size(), tensors.size());
  // Saving again replaces the file.
  save_tensor_atomic(torch::ones({2}), dir / "t0.pt");
  EXPECT_TRUE(load_tensor(dir / "t0.pt").equal(torch::ones({2})));
}

// Loading a missing file, a file that is not a tensor, or a truncated tensor file is an Error
// naming the path.
TEST(TensorFile, MissingOrCorruptFileIsAnErrorNamingThePath) {
  TempDir dir("files");
  const fs::path missing = dir / "missing.pt";
  expect_error([&] { load_tensor(missing); }, {missing.string()});

  const fs::path garbage = dir / "garbage.pt";
  write_plain(garbage, "this is not a tensor file\n");
  expect_error([&] { load_tensor(garbage); }, {garbage.string()});

  const fs::path whole = dir / "whole.pt", cut = dir / "cut.pt";
  save_tensor_atomic(torch::randn({64, 64}), whole);
  const std::string bytes = bytes_of(whole);
  ASSERT_GT(bytes.size(), 100u);
  write_plain(cut, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { load_tensor(cut); }, {cut.string()});
}

}  // namespace
}  // namespace metadistill
