#include "metadistill/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "metadistill/util/error.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

// One IDX file opened for reading. zlib reads plain files through the same calls (it checks
// for the gzip magic 1f 8b and otherwise copies bytes as they are), so one reader serves both.
class IdxStream {
 public:
  explicit IdxStream(const fs::path& path) : path_(path.string()) {
    check(fs::exists(path), "IDX file {}: no such file", path_);
    check(!fs::is_directory(path), "IDX file {}: is a folder, expected a file", path_);
    file_ = gzopen(path_.c_str(), "rb");
    check(file_ != nullptr, "IDX file {}: cannot open: {}", path_, std::strerror(errno));
    // A larger buffer than zlib's 8 KiB default halves the time for the 47 MB training images.
    gzbuffer(file_, 1 << 18);
  }
  ~IdxStream() {
    if (file_ != nullptr) gzclose(file_);
  }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;

  const std::string& path() const { return path_; }

  // Reads up to `n` bytes and returns how many arrived; fewer means the input ended. A corrupt
  // gzip stream throws here, while a gzip stream that is merely cut short ends early (zlib
  // reports it as Z_BUF_ERROR; see `ended_early`) so the caller can say how much was missing.
  int64_t read(void* dst, int64_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    int64_t got = 0;
    while (got < n) {
      // gzread takes an unsigned count and returns an int: stay well below INT_MAX per call.
      const auto chunk = static_cast<unsigned>(std::min<int64_t>(n - got, int64_t{1} << 30));
      const int r = gzread(file_, out + got, chunk);
      if (r < 0) {
        int code = Z_OK;
        const char* message = gzerror(file_, &code);
        if (code == Z_DATA_ERROR) fail("IDX file {}: corrupt gzip stream ({})", path_, message);
        fail("IDX file {}: read error ({})", path_, message);
      }
      if (r == 0) break;
      got += r;
    }
    return got;
  }

  // Counts the bytes left until the end of the input (consuming them). Reading to the end also
  // makes zlib check the gzip trailer (CRC-32 and length), which it only does at the end.
  int64_t count_rest() {
    std::array<unsigned char, 1 << 16> buffer;
    int64_t total = 0;
    while (const int64_t got = read(buffer.data(), static_cast<int64_t>(buffer.size()))) {
      total += got;
      if (got < static_cast<int64_t>(buffer.size())) break;
    }
    return total;
  }

  // Bytes the input can still hold after the `consumed` ones read so far, known before reading
  // them: exact for a plain file; for gzip at most 1032 times the compressed size (deflate's
  // largest expansion) plus a margin. So that a short file whose header promises gigabytes fails
  // before they are allocated.
  int64_t room(int64_t consumed) const {
    const auto size = static_cast<int64_t>(fs::file_size(path_));
    if (plain()) return size - consumed;
    return 1032 * size + 4096;
  }
  bool plain() const { return gzdirect(file_) == 1; }

  // True when a gzip stream stopped before its end (a cut-off file or download).
  bool ended_early() const {
    int code = Z_OK;
    gzerror(file_, &code);
    return code == Z_BUF_ERROR;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

int64_t big_endian32(const unsigned char* p) {
  return (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | int64_t{p[3]};
}

// Names what a known magic belongs to, so that a swapped file is recognised at once.
std::string describe_magic(int64_t magic) {
  if (magic == kIdxImagesMagic) return " (an IDX image file)";
  if (magic == kIdxLabelsMagic) return " (an IDX label file)";
  return "";
}

std::string early_end_note(const IdxStream& in) {
  return in.ended_early() ? " (the gzip stream ends early)" : "";
}

// Reads the header: the magic, which must be `magic`, then `ndims` sizes.
std::vector<int64_t> read_header(IdxStream& in, int64_t magic, int ndims) {
  std::array<unsigned char, 4 + 4 * 3> bytes{};
  const int64_t header_size = 4 + 4 * ndims;
  const int64_t got = in.read(bytes.data(), header_size);
  // The magic is checked before the header's length, so a label file handed over as an image
  // file is reported as such even when it is shorter than an image header.
  if (got >= 4) {
    const int64_t found = big_endian32(bytes.data());
    check(found == magic, "IDX file {}: expected magic {}, found {}{}", in.path(), magic, found,
          describe_magic(found));
  }
  check(got == header_size, "IDX file {}: truncated: expected a {}-byte header, found {} bytes{}",
        in.path(), header_size, got, early_end_note(in));
  std::vector<int64_t> dims;
  for (int d = 0; d < ndims; ++d) dims.push_back(big_endian32(bytes.data() + 4 + 4 * d));
  return dims;
}

// Before allocating: the input can hold the `data_size` bytes the header promised.
void check_room(const IdxStream& in, int64_t data_size, int64_t header_size,
                const std::string& promise) {
  const int64_t room = in.room(header_size);
  check(data_size <= room,
        "IDX file {}: truncated: the header promises {} ({} bytes after the {}-byte header), "
        "{}",
        in.path(), promise, data_size, header_size,
        in.plain() ? fmt::format("found {} bytes", room)
                   : fmt::format("and this gzip file of {} bytes holds at most {}",
                                 fs::file_size(in.path()), room));
}

// Reads the `data_size` bytes the header promised into `dst`, then checks that the input ends
// there: nothing missing, nothing extra, and (for gzip) an intact trailer.
void read_body(IdxStream& in, void* dst, int64_t data_size, int64_t header_size,
               const std::string& promise) {
  const int64_t got = in.read(dst, data_size);
  check(got == data_size,
        "IDX file {}: truncated: the header promises {} ({} bytes after the {}-byte header), "
        "found {} bytes{}",
        in.path(), promise, data_size, header_size, got, early_end_note(in));
  const int64_t extra = in.count_rest();
  check(extra == 0,
        "IDX file {}: the header promises {} ({} bytes after the {}-byte header), found {} "
        "more bytes",
        in.path(), promise, data_size, header_size, extra);
  check(!in.ended_early(),
        "IDX file {}: truncated: the gzip stream ends before its checksum, after all {} data "
        "bytes",
        in.path(), data_size);
}

}  // namespace

torch::Tensor read_idx_images(const fs::path& path) {
  IdxStream in(path);
  const auto dims = read_header(in, kIdxImagesMagic, 3);
  const int64_t n = dims[0], rows = dims[1], cols = dims[2];
  // Sizes are bounded before allocating, so that a corrupt header fails with a message rather
  // than a bad_alloc. The sides first: then n * rows * cols cannot overflow (at most
  // 2^32 * 2^12 * 2^12; rows and cols straight from the header reach 2^32 each, and the
  // product of the three would not fit in 64 bits — found by scripts/fuzz.sh).
  const bool sides_ok = rows >= 1 && rows <= kIdxMaxSide && cols >= 1 && cols <= kIdxMaxSide;
  const int64_t data_size = sides_ok ? n * rows * cols : 0;
  check(sides_ok && data_size <= kIdxMaxBytes,
        "IDX file {}: absurd header: {} images of {}x{} pixels (expected 1 to {} rows and "
        "columns and at most {} bytes of pixels)",
        in.path(), n, rows, cols, kIdxMaxSide, kIdxMaxBytes);
  const std::string promise = fmt::format("{} images of {}x{} pixels", n, rows, cols);
  check_room(in, data_size, 16, promise);
  auto images = torch::empty({n, rows, cols}, torch::kUInt8);
  read_body(in, images.data_ptr<uint8_t>(), data_size, 16, promise);
  return images;
}

torch::Tensor read_idx_labels(const fs::path& path) {
  IdxStream in(path);
  // A 32-bit count stays below kIdxMaxBytes, so any count is a plausible header.
  const int64_t n = read_header(in, kIdxLabelsMagic, 1)[0];
  const std::string promise = fmt::format("{} labels", n);
  check_room(in, n, 8, promise);
  auto labels = torch::empty({n}, torch::kUInt8);
  read_body(in, labels.data_ptr<uint8_t>(), n, 8, promise);
  return labels.to(torch::kLong);
}

}  // namespace metadistill
