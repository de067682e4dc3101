#include "metadistill/data/npy.h"

#include <cstring>
#include <regex>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

struct DType {
  const char* descr;
  torch::ScalarType type;
};

// Single-byte types carry '|' (no byte order); numpy also accepts '<' for them.
const DType kDTypes[] = {{"<f2", torch::kHalf},  {"<f4", torch::kFloat}, {"<f8", torch::kDouble},
                         {"<i4", torch::kInt},   {"<i8", torch::kLong},  {"|u1", torch::kByte},
                         {"<u1", torch::kByte}};

bool little_endian_host() {
  const uint16_t one = 1;
  return *reinterpret_cast<const uint8_t*>(&one) == 1;
}

}  // namespace

torch::Tensor parse_npy(const std::string& bytes, const std::string& where) {
  check(little_endian_host(), "{}: reading .npy files needs a little-endian machine", where);
  check(bytes.size() >= kMagicSize + 4 && std::memcmp(bytes.data(), kMagic, kMagicSize) == 0,
        "{}: not a .npy file (expected the magic \\x93NUMPY at the start)", where);
  const int major = static_cast<uint8_t>(bytes[6]);
  const int minor = static_cast<uint8_t>(bytes[7]);
  check(major >= 1 && major <= 3 && minor == 0,
        "{}: .npy format version {}.{}: expected 1.0, 2.0 or 3.0", where, major, minor);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
    offset = 10;
  } else {
    check(bytes.size() >= 12, "{}: truncated .npy header", where);
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[8 + i]);
    offset = 12;
  }
  check(bytes.size() >= offset + header_len, "{}: truncated .npy header ({} bytes announced)",
        where, header_len);
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  // The header is a Python dict literal with exactly these three keys (numpy writes them in
  // this order; any order is accepted).
  static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex fortran_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch m;
  check(std::regex_search(header, m, descr_re), "{}: .npy header has no 'descr': {}", where,
        header);
  const std::string descr = m[1];
  check(std::regex_search(header, m, fortran_re), "{}: .npy header has no 'fortran_order': {}",
        where, header);
  check(m[1] == "False",
        "{}: the array is in Fortran order; expected C order (save np.ascontiguousarray(a))",
        where);
  check(std::regex_search(header, m, shape_re), "{}: .npy header has no 'shape': {}", where,
        header);
  std::vector<int64_t> shape;
  {
    const std::string dims = m[1];
    static const std::regex dim_re(R"(\s*(\d+)\s*(,|$))");
    auto it = std::sregex_iterator(dims.begin(), dims.end(), dim_re);
    size_t consumed = 0;
    for (; it != std::sregex_iterator(); ++it) {
      check(static_cast<size_t>(it->position()) == consumed, "{}: .npy shape ({}) is malformed",
            where, dims);
      shape.push_back(std::stoll((*it)[1]));
      consumed = it->position() + it->length();
    }
    check(dims.find_first_not_of(" \t", consumed) == std::string::npos,
          "{}: .npy shape ({}) is malformed", where, dims);
  }
  const DType* dtype = nullptr;
  for (const auto& d : kDTypes)
    if (descr == d.descr) dtype = &d;
  check(dtype != nullptr,
        "{}: .npy dtype '{}' is not supported: expected little-endian float16/32/64 ('<f2', "
        "'<f4', '<f8'), int32/64 ('<i4', '<i8') or uint8 ('|u1')",
        where, descr);

  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  const size_t expected = static_cast<size_t>(count) * c10::elementSize(dtype->type);
  const size_t found = bytes.size() - offset;
  check(found == expected, "{}: .npy data of shape ({}) and dtype '{}' needs {} bytes, found {}",
        where, fmt::join(shape, ", "), descr, expected, found);
  auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype->type));
  if (expected > 0) std::memcpy(t.data_ptr(), bytes.data() + offset, expected);
  return t;
}

torch::Tensor read_npy(const std::filesystem::path& path) {
  check(std::filesystem::exists(path), "{}: no such file", path.string());
  return parse_npy(read_file(path), path.string());
}

std::string npy_bytes(const torch::Tensor& given) {
  const torch::Tensor t = given.detach().to(torch::kCPU).contiguous();
  const char* descr = nullptr;
  for (const auto& d : kDTypes)
    if (t.scalar_type() == d.type && descr == nullptr) descr = d.descr;
  check(descr != nullptr, ".npy: dtype {} cannot be written", c10::toString(t.scalar_type()));
  std::string shape;
  for (int64_t d : t.sizes()) shape += fmt::format("{}, ", d);
  if (t.dim() > 1) shape.resize(shape.size() - 2);  // (3,) for one dimension, (2, 3) otherwise
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}",
                                   descr, t.dim() == 1 ? shape.substr(0, shape.size() - 1) : shape);
  // Padded with spaces so that the data start at a multiple of 64, ending in a newline.
  const size_t total = kMagicSize + 4 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic, kMagicSize);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

void write_npy(const torch::Tensor& t, const std::filesystem::path& path) {
  write_file_atomic(path, npy_bytes(t));
}

}  // namespace metadistill
