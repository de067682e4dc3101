// Opening a search study (search/study.h) from an arbitrary file: SQLite's own checks, then ours
// on the tables and the stored settings.
#include "fuzz_common.h"
#include "metadistill/search/study.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = metadistill::fuzz::input_file(".db");
  // A stale write-ahead log of the previous input must not be replayed into this one.
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  metadistill::fuzz::write_input(path, data, size);
  try {
    metadistill::Study study = metadistill::Study::load(path);
    (void)study.trials();
    (void)study.counts();
    (void)study.best_trial();
  } catch (const metadistill::Error&) {
  }
  return 0;
}
