// IDX readers (data/idx.h) on arbitrary files, plain or gzip'd (the reader detects gzip).
#include "fuzz_common.h"
#include "metadistill/data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = metadistill::fuzz::input_file(".idx");
  metadistill::fuzz::write_input(path, data, size);
  try {
    const torch::Tensor images = metadistill::read_idx_images(path);
    if (images.dim() != 3) std::abort();
  } catch (const metadistill::Error&) {
  }
  try {
    const torch::Tensor labels = metadistill::read_idx_labels(path);
    if (labels.dim() != 1) std::abort();
  } catch (const metadistill::Error&) {
  }
  return 0;
}
