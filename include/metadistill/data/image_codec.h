#pragma once
/// JPEG and PNG images in memory and on disk, decoded with the Debian-packaged libjpeg-turbo and
/// libpng into channel-first uint8 tensors [C, H, W], and resized.
///
/// Neither library may end the process on bad input: libjpeg's default error handler calls
/// exit(), so decoding installs an error handler that jumps back (setjmp/longjmp) and throws
/// `Error`; libpng is used through its simplified API, which runs every libpng call under its own
/// setjmp and reports errors as a message. libjpeg's warnings (a truncated file is only a warning
/// to it, the missing rows being filled with grey) are errors here: a corrupt image never enters
/// a data set silently.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// Container format of an encoded image, recognised by its first bytes (not its file name).
enum class ImageFormat { kUnknown, kJpeg, kPng };

/// The format of encoded bytes: JPEG starts with FF D8 FF, PNG with 89 'P' 'N' 'G' 0D 0A 1A 0A.
ImageFormat detect_image_format(const void* data, size_t size);

/// "jpeg", "png" or "unknown".
std::string to_string(ImageFormat format);

/// Decodes JPEG or PNG bytes into uint8 [channels, H, W]. `channels` is 3 (R, G, B; grey images
/// are replicated into the three channels) or 1 (grey; colour images are converted with the
/// libraries' luma weights). PNG: palette and low bit depths are expanded, 16-bit samples reduced
/// to 8 bits, an alpha channel composited onto black. Throws `Error` naming `name` (a file name,
/// for messages) and the library's message for bytes that are neither JPEG nor PNG, truncated or
/// corrupt data, and colour spaces the libraries cannot convert (e.g. CMYK JPEG).
torch::Tensor decode_image(const void* data, size_t size, int64_t channels,
                           const std::string& name);

/// Reads and decodes an image file, see `decode_image`; throws `Error` naming the path when it
/// cannot be read.
torch::Tensor read_image(const std::filesystem::path& path, int64_t channels = 3);

/// Encodes uint8 [C, H, W] (C = 1 or 3) as a baseline JPEG of the given quality (1..100, 4:2:0
/// chroma subsampling for colour). Throws `Error` for another shape or dtype.
std::string encode_jpeg(const torch::Tensor& image, int quality = 90);

/// Encodes uint8 [C, H, W] (C = 1 or 3) as an 8-bit PNG (lossless). Throws `Error` for another
/// shape or dtype.
std::string encode_png(const torch::Tensor& image);

/// Encodes uint8 [C, H, W] by the file name's extension (.jpg/.jpeg: JPEG of quality 90, .png:
/// PNG) and writes it atomically. Throws `Error` for another extension.
void write_image(const torch::Tensor& image, const std::filesystem::path& path);

/// Resizes uint8 [C, H, W] to [C, height, width]: bilinear interpolation with antialiasing when
/// shrinking (the area each output pixel covers is averaged, as in PIL), rounded to the nearest
/// integer. Returns the input when the size already matches.
torch::Tensor resize_image(const torch::Tensor& image, int64_t height, int64_t width);

}  // namespace metadistill
