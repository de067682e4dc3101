#include "metadistill/data/image_codec.h"

// jpeglib.h needs size_t and FILE declared before it.
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

// Larger images are refused before a buffer is allocated, so that a corrupt header claiming
// 65 500 x 65 500 pixels gives an error instead of a 12 GB allocation.
constexpr int64_t kMaxPixels = int64_t{1} << 28;

// libjpeg's error manager extended with a jump target; libjpeg hands callbacks `cinfo->err`, a
// pointer to `pub`, the first member, which is cast back to the whole struct.
struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// Replaces libjpeg's error_exit, which would print and call exit().
void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// libjpeg reports a truncated file or corrupt entropy data only as a warning (level -1) and goes
// on with grey rows; a data set must not take such an image, so warnings abort like errors.
// Trace messages (level >= 0) are ignored.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  jpeg_error_exit(cinfo);
}

void install_jpeg_errors(JpegErrorManager& err) {
  jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.emit_message = jpeg_emit_message;
  err.message[0] = '\0';
}

// uint8 [C, H, W] with C = 1 or 3, else an `Error` naming `what`.
void check_encodable(const torch::Tensor& image, const char* what) {
  check(image.defined() && image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) &&
            image.scalar_type() == torch::kUInt8,
        "{}: expected a uint8 image [C, H, W] with C = 1 or 3, got {} of shape {}", what,
        image.defined() ? std::string(image.dtype().name()) : "undefined",
        image.defined() ? image.sizes() : c10::IntArrayRef{});
  check(image.size(1) > 0 && image.size(2) > 0 && image.size(1) <= 65500 && image.size(2) <= 65500,
        "{}: image size {}x{} outside 1..65500", what, image.size(1), image.size(2));
}

// Interleaved rows [H, W, C] from channel-first [C, H, W], as both libraries want them.
torch::Tensor to_hwc(const torch::Tensor& image) {
  return image.to(torch::kCPU).permute({1, 2, 0}).contiguous();
}

torch::Tensor from_hwc(std::vector<uint8_t>& pixels, int64_t height, int64_t width,
                       int64_t channels) {
  // clone, not contiguous(): for one channel the permuted view is already contiguous and would
  // keep pointing into `pixels`.
  return torch::from_blob(pixels.data(), {height, width, channels}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone(at::MemoryFormat::Contiguous);  // [C, H, W], owns its memory
}

// One JPEG decode: input, output and the error, kept outside the frame that calls setjmp.
struct JpegDecode {
  const unsigned char* data = nullptr;
  size_t size = 0;
  int64_t channels = 3;
  std::vector<uint8_t> pixels;  // [H, W, C]
  int64_t height = 0, width = 0;
  std::string error;  // empty on success
};

// Runs libjpeg on `d`. All state read after a longjmp back to the setjmp lives behind `d` or in
// `cinfo`/`err`, which only libjpeg writes (through pointers), so nothing is clobbered; C++
// objects are created only outside the jump region.
void run_jpeg_decode(JpegDecode& d) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  install_jpeg_errors(err);
  cinfo.err = &err.pub;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    d.error = err.message;
    return;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, d.data, static_cast<unsigned long>(d.size));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = d.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  d.height = cinfo.output_height;
  d.width = cinfo.output_width;
  if (cinfo.output_components != d.channels || d.height * d.width > kMaxPixels) {
    jpeg_destroy_decompress(&cinfo);
    d.error = fmt::format("{}x{} pixels with {} components cannot be decoded to {} channels "
                          "(at most {} pixels)",
                          d.height, d.width, cinfo.output_components, d.channels, kMaxPixels);
    return;
  }
  try {
    d.pixels.resize(static_cast<size_t>(d.height * d.width * d.channels));
  } catch (const std::bad_alloc&) {
    jpeg_destroy_decompress(&cinfo);
    d.error = "out of memory";
    return;
  }
  const size_t stride = static_cast<size_t>(d.width * d.channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = d.pixels.data() + cinfo.output_scanline * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
}

torch::Tensor decode_jpeg(const unsigned char* data, size_t size, int64_t channels,
                          const std::string& name) {
  JpegDecode d;
  d.data = data;
  d.size = size;
  d.channels = channels;
  run_jpeg_decode(d);
  check(d.error.empty(), "image {}: corrupt or truncated JPEG: {}", name, d.error);
  return from_hwc(d.pixels, d.height, d.width, channels);
}

torch::Tensor decode_png(const unsigned char* data, size_t size, int64_t channels,
                         const std::string& name) {
  // The simplified API (libpng 1.6) runs every libpng call under its own setjmp and frees its
  // state on failure, so no longjmp ever crosses this frame.
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size))
    fail("image {}: corrupt PNG: {}", name, image.message);
  const int64_t height = image.height, width = image.width;
  if (height * width > kMaxPixels) {
    png_image_free(&image);
    fail("image {}: PNG of {}x{} pixels is larger than the {} pixels accepted", name, height,
         width, kMaxPixels);
  }
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  // Zero-filled: with no background colour given, alpha is composited onto the buffer (black).
  std::vector<uint8_t> pixels;
  try {
    pixels.assign(PNG_IMAGE_SIZE(image), 0);
  } catch (...) {
    png_image_free(&image);
    throw;
  }
  if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr))
    fail("image {}: corrupt or truncated PNG: {}", name, image.message);
  return from_hwc(pixels, height, width, channels);
}

// One JPEG encode, kept outside the frame that calls setjmp (see `JpegDecode`).
struct JpegEncode {
  const uint8_t* pixels = nullptr;  // [H, W, C]
  int64_t height = 0, width = 0, channels = 3;
  int quality = 90;
  unsigned char* out = nullptr;  // malloc'ed by libjpeg
  unsigned long out_size = 0;
  std::string error;
};

void run_jpeg_encode(JpegEncode& e) {
  jpeg_compress_struct cinfo;
  JpegErrorManager err;
  install_jpeg_errors(err);
  cinfo.err = &err.pub;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    e.error = err.message;
    return;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &e.out, &e.out_size);
  cinfo.image_width = static_cast<JDIMENSION>(e.width);
  cinfo.image_height = static_cast<JDIMENSION>(e.height);
  cinfo.input_components = static_cast<int>(e.channels);
  cinfo.in_color_space = e.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, e.quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = static_cast<size_t>(e.width * e.channels);
  while (cinfo.next_scanline < cinfo.image_height) {
    // libjpeg's row type is not const; it only reads the rows.
    JSAMPROW row = const_cast<uint8_t*>(e.pixels) + cinfo.next_scanline * stride;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
}

}  // namespace

ImageFormat detect_image_format(const void* data, size_t size) {
  const auto* b = static_cast<const unsigned char*>(data);
  static const unsigned char kPngMagic[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (size >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::kJpeg;
  if (size >= 8 && std::memcmp(b, kPngMagic, 8) == 0) return ImageFormat::kPng;
  return ImageFormat::kUnknown;
}

std::string to_string(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "jpeg";
    case ImageFormat::kPng: return "png";
    default: return "unknown";
  }
}

torch::Tensor decode_image(const void* data, size_t size, int64_t channels,
                           const std::string& name) {
  check(channels == 1 || channels == 3, "image {}: channels must be 1 or 3, got {}", name,
        channels);
  const auto* bytes = static_cast<const unsigned char*>(data);
  switch (detect_image_format(data, size)) {
    case ImageFormat::kJpeg: return decode_jpeg(bytes, size, channels, name);
    case ImageFormat::kPng: return decode_png(bytes, size, channels, name);
    default: break;
  }
  std::string head;
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i)
    head += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
  fail("image {}: not a JPEG or PNG image ({} bytes, starting with [{}]; expected FF D8 FF or "
       "89 50 4E 47 0D 0A 1A 0A)",
       name, size, head);
}

torch::Tensor read_image(const fs::path& path, int64_t channels) {
  const std::string bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size(), channels, path.string());
}

std::string encode_jpeg(const torch::Tensor& image, int quality) {
  check_encodable(image, "encode_jpeg");
  check(quality >= 1 && quality <= 100, "encode_jpeg: quality {} outside 1..100", quality);
  const torch::Tensor hwc = to_hwc(image);  // [H, W, C]
  JpegEncode e;
  e.pixels = hwc.data_ptr<uint8_t>();
  e.height = image.size(1);
  e.width = image.size(2);
  e.channels = image.size(0);
  e.quality = quality;
  run_jpeg_encode(e);
  std::string result;
  if (e.error.empty()) result.assign(reinterpret_cast<const char*>(e.out), e.out_size);
  std::free(e.out);
  check(e.error.empty(), "encode_jpeg: {}", e.error);
  return result;
}

std::string encode_png(const torch::Tensor& image) {
  check_encodable(image, "encode_png");
  const torch::Tensor hwc = to_hwc(image);  // [H, W, C]
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.size(2));
  png.height = static_cast<png_uint_32>(image.size(1));
  png.format = image.size(0) == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  // First call: the size only; second call: the bytes.
  png_alloc_size_t size = 0;
  check(png_image_write_to_memory(&png, nullptr, &size, 0, hwc.data_ptr(), 0, nullptr) != 0,
        "encode_png: {}", png.message);
  std::string result(size, '\0');
  check(png_image_write_to_memory(&png, result.data(), &size, 0, hwc.data_ptr(), 0, nullptr) != 0,
        "encode_png: {}", png.message);
  result.resize(size);
  return result;
}

void write_image(const torch::Tensor& image, const fs::path& path) {
  std::string ext = path.extension().string();
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == ".jpg" || ext == ".jpeg") {
    write_file_atomic(path, encode_jpeg(image));
  } else if (ext == ".png") {
    write_file_atomic(path, encode_png(image));
  } else {
    fail("write_image {}: extension '{}': expected .jpg, .jpeg or .png", path.string(), ext);
  }
}

torch::Tensor resize_image(const torch::Tensor& image, int64_t height, int64_t width) {
  check(image.dim() == 3 && image.scalar_type() == torch::kUInt8,
        "resize_image: expected a uint8 image [C, H, W], got {} of shape {}",
        std::string(image.dtype().name()), image.sizes());
  check(height > 0 && width > 0, "resize_image: target size {}x{} must be positive", height,
        width);
  if (image.size(1) == height && image.size(2) == width) return image;
  namespace F = torch::nn::functional;
  // Antialiasing only matters when shrinking; without it a large image is sampled, not averaged.
  const bool shrink = height < image.size(1) || width < image.size(2);
  auto x = image.to(torch::kFloat32).unsqueeze(0);  // [1, C, H, W]
  auto y = F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{height, width})
                                 .mode(torch::kBilinear)
                                 .align_corners(false)
                                 .antialias(shrink));
  return y.squeeze(0).round_().clamp_(0, 255).to(torch::kUInt8).contiguous();  // [C, h, w]
}

}  // namespace metadistill
