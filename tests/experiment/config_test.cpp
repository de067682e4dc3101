#include "metadistill/experiment/config.h"

#include <gtest/gtest.h>

#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::TempDir;

namespace {
std::string load_error(const TempDir& dir, const std::string& yaml) {
  auto path = dir / "c.yaml";
  write_file_atomic(path, yaml);
  try {
    load_config(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, ReadsKeysOnTopOfDefaults) {
  TempDir dir("cfg");
  write_file_atomic(dir / "c.yaml", R"(
preset: test
runs: 3
data: {name: synthetic, variant: paper}
student:
  model: mlp
  train: {epochs: 7, lr: 0.5, optimizer: adam}
method: {name: fixed, lambda1: 0.2, temperature: 3, settings: {gamma: 0.1, clip: null}}
)");
  auto c = load_config(dir / "c.yaml");
  EXPECT_EQ(c.preset, "test");
  EXPECT_EQ(c.runs, 3);
  EXPECT_EQ(c.data.variant, "paper");
  EXPECT_EQ(c.student.model, "mlp");
  EXPECT_EQ(c.student.trainer.epochs, 7);
  EXPECT_EQ(c.student.trainer.optimizer, "adam");
  EXPECT_EQ(c.teacher.model, "logreg");  // default kept
  EXPECT_DOUBLE_EQ(c.method.fixed.lambda1, 0.2);
  EXPECT_DOUBLE_EQ(c.method.extra.at("gamma").get<double>(), 0.1);
}

TEST(Config, ErrorsNameTheKeyAndTheFile) {
  TempDir dir("cfgerr");
  auto msg = load_error(dir, "student:\n  train: {epochz: 3}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "student.train.epochz", "unknown key"})) << msg;
  msg = load_error(dir, "student:\n  train: {epochs: many}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "student.train.epochs", "integer", "many"})) << msg;
  msg = load_error(dir, "method: {lambda1: 1.5}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "lambda1", "1.5"})) << msg;
  msg = load_error(dir, "student: {model: bignet}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "bignet", "cnn"})) << msg;
  msg = load_error(dir, "data: {name: imagenet}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "imagenet"})) << msg;
  msg = load_error(dir, "student:\n  train: {lr: -2}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "lr", "-2"})) << msg;
  msg = load_error(dir, "data: [1, 2\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "YAML"})) << msg;
  msg = load_error(dir, "methods: [none, bogus]\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "bogus"})) << msg;
  try {
    load_config(dir / "missing.yaml");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_TRUE(contains_all(e.what(), {"missing.yaml", "no such file"}));
  }
}

TEST(Config, ShippedConfigsLoad) {
  const std::filesystem::path root = METADISTILL_SOURCE_DIR;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(root / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_config(e.path())) << e.path();
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST(Config, ImageFolderKeysAndTheirErrors) {
  TempDir dir("cfgfolder");
  write_file_atomic(dir / "c.yaml", R"(
data: {name: folder, root: /data/flowers, classes: [rose, tulip], image_size: [24, 32],
       channels: 1, on_bad_image: skip, on_size_mismatch: resize, mean: [0.5], std: [0.25],
       train_split: training, test_split: testing}
)");
  auto c = load_config(dir / "c.yaml");
  EXPECT_EQ(c.data.name, "folder");
  EXPECT_EQ(c.data.classes, (std::vector<std::string>{"rose", "tulip"}));
  EXPECT_EQ(c.data.image_size, (std::vector<int64_t>{24, 32}));
  EXPECT_EQ(c.data.channels, 1);
  EXPECT_EQ(c.data.on_bad_image, "skip");
  EXPECT_EQ(c.data.on_size_mismatch, "resize");
  EXPECT_EQ(c.data.train_split, "training");
  EXPECT_EQ(c.to_json()["data"]["std"][0].get<double>(), 0.25);
  auto msg = load_error(dir, "data: {name: cifar10, on_bad_image: ignore}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "on_bad_image", "ignore", "skip"})) << msg;
  msg = load_error(dir, "data: {name: cifar10, on_size_mismatch: crop}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "on_size_mismatch", "crop", "resize"})) << msg;
  msg = load_error(dir, "data: {name: folder}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "data.root", "folder"})) << msg;
  msg = load_error(dir, "data: {name: folder, root: x, image_size: [32]}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "image_size", "height, width"})) << msg;
  msg = load_error(dir, "data: {name: folder, root: x, mean: [0.5, 0.5, 0.5]}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "data.mean", "data.std"})) << msg;
  msg = load_error(dir, "data: {name: folder, root: x, mean: [0.5], std: [0]}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "data.std", "0"})) << msg;
  msg = load_error(dir, "data: {name: folder, root: x, channels: 2}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "channels", "2"})) << msg;
  msg = load_error(dir, "teacher:\n  train: {lr_schedule: linear}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "lr_schedule", "linear", "cosine"})) << msg;
}
