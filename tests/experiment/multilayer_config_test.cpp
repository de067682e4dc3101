#include "metadistill/experiment/multilayer.h"

#include <gtest/gtest.h>

#include "metadistill/util/files.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

const char* kBase = R"(runs: 2
data: {name: fmnist, val_size: 6000}
teacher: {model: conv-tiny, file: t.pt}
student: {model: conv-very-tiny, train: {epochs: 1}}
)";

TEST(MultiLayerConfig, ReadsTheSectionOnTopOfAnOrdinaryConfig) {
  TempDir dir("mlcfg");
  write_file_atomic(dir / "c.yaml", std::string(kBase) + R"(multilayer:
  methods: [hinton, all-pairs-exact]
  teacher_taps: [conv1, conv2]
  student_taps: [conv2]
  beta: 0.25
  meta_lr: 0.5
  hyper_every: 2
  beta_lr: 0.05
  beta_min: 0.2
  beta_max: 0.9
  meta_optimizer: adam
  vid_weight_decay: true
)");
  auto c = load_multilayer_config(dir / "c.yaml");
  EXPECT_EQ(c.base.runs, 2);
  EXPECT_EQ(c.base.student.model, "conv-very-tiny");
  EXPECT_EQ(c.base.source, (dir / "c.yaml").string());
  EXPECT_EQ(c.methods, (std::vector<std::string>{"hinton", "all-pairs-exact"}));
  EXPECT_EQ(c.options.teacher_taps(), (std::vector<std::string>{"conv1", "conv2"}));
  EXPECT_DOUBLE_EQ(c.options.beta(), 0.25);
  EXPECT_DOUBLE_EQ(c.options.meta_lr(), 0.5);
  EXPECT_EQ(c.options.hyper_every(), 2);
  EXPECT_DOUBLE_EQ(c.options.beta_lr(), 0.05);
  EXPECT_DOUBLE_EQ(c.options.beta_min(), 0.2);
  EXPECT_DOUBLE_EQ(c.options.beta_max(), 0.9);
  EXPECT_EQ(c.options.meta_optimizer(), "adam");
  EXPECT_TRUE(c.sensitivity.beta.empty());
  EXPECT_TRUE(c.options.vid_weight_decay());
}

// The loss keys in the one `loss:` section of kind vid: the same options as under
// `multilayer:`; such a `loss:` section alone makes the config a multi-layer one.
TEST(MultiLayerConfig, ReadsTheLossKeysFromALossSectionOfKindVid) {
  TempDir dir("mlcfgloss");
  write_file_atomic(dir / "c.yaml", std::string(kBase) + R"(loss:
  kind: vid
  teacher_taps: [conv1, conv2]
  student_taps: [conv2]
  beta: 0.25
  temperature: 2
multilayer: {methods: [hinton, all-pairs-fd], meta_lr: 0.5}
)");
  EXPECT_TRUE(has_multilayer_section(dir / "c.yaml"));
  auto c = load_multilayer_config(dir / "c.yaml");
  EXPECT_EQ(c.methods, (std::vector<std::string>{"hinton", "all-pairs-fd"}));
  EXPECT_EQ(c.options.teacher_taps(), (std::vector<std::string>{"conv1", "conv2"}));
  EXPECT_EQ(c.options.student_taps(), (std::vector<std::string>{"conv2"}));
  EXPECT_DOUBLE_EQ(c.options.beta(), 0.25);
  EXPECT_DOUBLE_EQ(c.options.temperature(), 2);
  EXPECT_DOUBLE_EQ(c.options.meta_lr(), 0.5);
  // Without a multilayer: section: the default methods.
  write_file_atomic(dir / "d.yaml", std::string(kBase) +
                                        "loss: {kind: vid, teacher_taps: [conv1], "
                                        "student_taps: [conv1]}\n");
  EXPECT_TRUE(has_multilayer_section(dir / "d.yaml"));
  EXPECT_EQ(load_multilayer_config(dir / "d.yaml").options.teacher_taps(),
            (std::vector<std::string>{"conv1"}));
  // A Hinton loss section is not a multi-layer config.
  write_file_atomic(dir / "e.yaml", std::string(kBase) + "loss: {kind: hinton, lambda1: 0.5}\n");
  EXPECT_FALSE(has_multilayer_section(dir / "e.yaml"));
  // The same key in both places, and a Hinton key in a vid loss, are refused by name.
  write_file_atomic(dir / "f.yaml", std::string(kBase) +
                                        "loss: {kind: vid, beta: 0.3}\nmultilayer: {beta: 0.4}\n");
  expect_error([&] { load_multilayer_config(dir / "f.yaml"); },
               {"loss.beta", "multilayer.beta", "twice"});
  write_file_atomic(dir / "g.yaml", std::string(kBase) + "loss: {kind: vid, kd_scale: none}\n");
  expect_error([&] { load_multilayer_config(dir / "g.yaml"); }, {"unknown key 'loss.kd_scale'"});
}

TEST(MultiLayerConfig, NamesTheFileAndKeyOfABadValue) {
  TempDir dir("mlcfg");
  const auto path = dir / "bad.yaml";
  write_file_atomic(path, std::string(kBase) + "multilayer:\n  methods: [none]\n  betta: 0.3\n");
  expect_error([&] { load_multilayer_config(path); },
               {path.string(), "'multilayer.betta'", "beta"});
  write_file_atomic(path, std::string(kBase) + "multilayer:\n  methods: [each-with-each]\n");
  expect_error([&] { load_multilayer_config(path); }, {path.string(), "'each-with-each'"});
  write_file_atomic(path, std::string(kBase) + "multilayer:\n  beta: high\n");
  expect_error([&] { load_multilayer_config(path); }, {"multilayer.beta", "a number", "high"});
  write_file_atomic(path, std::string(kBase) + "multilayer:\n  methods: [all-pairs-fd]\n"
                    "  teacher_taps: [conv1]\n  student_taps: [conv1]\n  beta: 0.1\n  beta_min: 0.2\n");
  expect_error([&] { load_multilayer_config(path); }, {path.string(), "beta = 0.1", "beta_min"});
  // An error of the ordinary sections names this file, not a temporary copy.
  write_file_atomic(path, std::string(kBase) + "colour: red\nmultilayer: {methods: [none]}\n");
  expect_error([&] { load_multilayer_config(path); }, {path.string(), "'colour'"});
}

TEST(MultiLayerConfig, ShippedConfigsLoad) {
  for (const char* name :
       {"multilayer-fmnist.yaml", "multilayer-fmnist-resnet.yaml", "multilayer-cifar10.yaml",
        "multilayer-cifar10-resnet.yaml"}) {
    auto c = load_multilayer_config(std::filesystem::path(METADISTILL_SOURCE_DIR) / "configs" / name);
    EXPECT_GE(c.methods.size(), 5u) << name;
    EXPECT_EQ(c.options.teacher_taps().size(), 3u) << name;
    EXPECT_EQ(c.options.meta_optimizer(), "adam") << name;
  }
  auto c = load_multilayer_config(std::filesystem::path(METADISTILL_SOURCE_DIR) / "configs" /
                                  "multilayer-fmnist.yaml");
  EXPECT_EQ(c.sensitivity.beta.size(), 5u);
  EXPECT_EQ(c.sensitivity.temperature.size(), 5u);
  auto fixed = load_multilayer_config(std::filesystem::path(METADISTILL_SOURCE_DIR) / "configs" /
                                      "multilayer-fmnist-lambda-only.yaml");
  EXPECT_EQ(fixed.options.beta_lr(), 0.0);
  EXPECT_EQ(fixed.base.teacher_file, c.base.teacher_file);
}

}  // namespace
}  // namespace metadistill
