// Model files (train/checkpoint.h): missing and corrupt files give clear errors.
#include "metadistill/train/checkpoint.h"

#include <gtest/gtest.h>

#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/train/teacher.h"
#include "metadistill/util/files.h"
#include "metadistill/util/runtime.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::TempDir;

TEST(ModelFile, CorruptOrMissingFilesGiveClearErrors) {
  TempDir dir("modelfile");
  try {
    load_model_file(dir / "absent.pt");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_TRUE(metadistill::testing::contains_all(e.what(), {"absent.pt", "no such file"})) << e.what();
  }
  auto model = make_model(ModelSpec("logreg", 2, {3}));
  save_model_file(*model, ModelSpec("logreg", 2, {3}), dir / "m.pt");
  auto bytes = read_file(dir / "m.pt");
  write_file_atomic(dir / "trunc.pt", bytes.substr(0, bytes.size() / 2));
  try {
    load_model_file(dir / "trunc.pt");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_TRUE(metadistill::testing::contains_all(e.what(), {"trunc.pt"})) << e.what();
  }
  auto loaded = load_model_file(dir / "m.pt");
  EXPECT_EQ(loaded.spec.name, "logreg");
  EXPECT_TRUE(loaded.model->parameters()[0].equal(model->parameters()[0]));
}
