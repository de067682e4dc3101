// The CIFAR-10 binary batch reader (data/cifar.h) on arbitrary files.
#include "fuzz_common.h"
#include "metadistill/data/cifar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = metadistill::fuzz::input_file(".bin");
  metadistill::fuzz::write_input(path, data, size);
  try {
    const auto [images, labels] = metadistill::read_cifar_binary({path});
    if (images.size(0) != labels.size(0) || labels.numel() > 0 && labels.max().item<int64_t>() > 9)
      std::abort();
  } catch (const metadistill::Error&) {
  }
  return 0;
}
