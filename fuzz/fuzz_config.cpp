// The YAML config reader (experiment/config.h) on arbitrary files.
#include "fuzz_common.h"
#include "metadistill/experiment/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = metadistill::fuzz::input_file(".yaml");
  metadistill::fuzz::write_input(path, data, size);
  try {
    const metadistill::Config c = metadistill::load_config(path);
    (void)c.to_json().dump();  // what a run stores must be writable
  } catch (const metadistill::Error&) {
  }
  return 0;
}
