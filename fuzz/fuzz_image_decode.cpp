// JPEG and PNG decoding (data/image_codec.h) on arbitrary bytes, to one and to three channels.
#include "fuzz_common.h"
#include "metadistill/data/image_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (int64_t channels : {1, 3}) {
    try {
      const torch::Tensor image = metadistill::decode_image(data, size, channels, "fuzz input");
      if (image.dim() != 3 || image.size(0) != channels || image.scalar_type() != torch::kUInt8)
        std::abort();  // a decoded image always has the promised layout
    } catch (const metadistill::Error&) {
    }
  }
  return 0;
}
