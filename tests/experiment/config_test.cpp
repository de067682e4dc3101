#include "metadistill/experiment/config.h"

#include <gtest/gtest.h>

#include "metadistill/data/image_codec.h"
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

// Files and values no one should pass: refused, naming the file and the key.
TEST(Config, RefusesEmptyFilesFoldersAndOutOfRangeMethodSettings) {
  TempDir dir("cfgbad");
  for (const std::string text : {"", "# only a comment\n\n# data: {name: fmnist}\n", "{}\n"}) {
    const auto msg = load_error(dir, text);
    EXPECT_TRUE(contains_all(msg, {"config", "c.yaml", "empty"})) << "'" << text << "': " << msg;
  }
  std::filesystem::create_directories(dir / "folder.yaml");
  const auto folder = metadistill::testing::error_of([&] { load_config(dir / "folder.yaml"); });
  EXPECT_TRUE(contains_all(folder, {(dir / "folder.yaml").string(), "is a folder"})) << folder;

  auto msg = load_error(dir, "method: {settings: {gamma: .nan}}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "method.settings.gamma = nan", "(0, 100]"})) << msg;
  msg = load_error(dir, "method: {settings: {gamma: 1e308}}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "method.settings.gamma = 1e+308", "(0, 100]"})) << msg;
  msg = load_error(dir, "method: {settings: {gamma: -.inf}}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "method.settings.gamma = -inf"})) << msg;
  msg = load_error(dir, "method: {settings: {every: often}}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "method.settings.every", "an integer", "often"})) << msg;
  msg = load_error(dir, "method: {settings: {gama: 0.1}}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "method.settings", "unknown key 'gama'"})) << msg;
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

namespace {

// ROOT/train/<a|b>/<i>.png, 12 x 16 pixels: grey (one channel) or colour.
void write_small_folder(const std::filesystem::path& root, bool grey) {
  auto gen = at::detail::createCPUGenerator(3);
  for (const char* cls : {"a", "b"})
    for (int i = 0; i < 3; ++i) {
      const auto img = torch::randint(0, 256, {grey ? 1 : 3, 12, 16}, gen, torch::kInt64);
      write_image(img.to(torch::kUInt8),
                  root / "train" / cls / (std::to_string(i) + ".png"));
    }
}

}  // namespace

// A folder with nothing but its root: channels from the files, image defaults for the models
// and trainings (not the synthetic experiment's logistic regressions), and its own output folder.
TEST(Config, AFolderGetsImageDefaultsAndItsChannelsFromTheFiles) {
  TempDir dir("cfgdefaults");
  write_small_folder(dir / "grey", true);
  write_small_folder(dir / "colour", false);
  const auto load = [&](const std::string& yaml) {
    write_file_atomic(dir / "c.yaml", yaml);
    return load_config(dir / "c.yaml");
  };
  Config c = load("data: {name: folder, root: " + (dir / "grey/").string() + "}\n");
  EXPECT_EQ(c.data.channels, 1);
  EXPECT_EQ(c.teacher.model, "resnet8");
  EXPECT_EQ(c.student.model, "cnn");
  EXPECT_EQ(c.teacher.trainer.epochs, 15);
  EXPECT_EQ(c.student.trainer.epochs, 20);
  EXPECT_EQ(c.teacher.trainer.augmentation, "none");
  EXPECT_EQ(c.student.trainer.optimizer, "momentum");
  EXPECT_EQ(c.student.trainer.eval_every, 1);
  EXPECT_EQ(c.student.trainer.checkpoint_every, 1);
  EXPECT_EQ(c.method.extra.at("val_temperature").get<double>(), 1.0);
  EXPECT_EQ(c.out, "runs/folder-grey");
  EXPECT_EQ(load("data: {name: folder, root: " + (dir / "colour").string() + "}\n").data.channels,
            3);
  // What the file says wins: channels, models, trainings, output.
  c = load("data: {name: folder, root: " + (dir / "grey").string() + ", channels: 3}\n" +
           "out: mine\nstudent: {model: conv-tiny, train: {epochs: 3}}\n");
  EXPECT_EQ(c.data.channels, 3);
  EXPECT_EQ(c.student.model, "conv-tiny");
  EXPECT_EQ(c.student.trainer.epochs, 3);
  EXPECT_EQ(c.student.trainer.optimizer, "momentum");  // the keys it leaves out keep the defaults
  EXPECT_EQ(c.teacher.model, "resnet8");
  EXPECT_EQ(c.out, "mine");
  // A root that is not there keeps 3 channels; the loader names the missing folder later.
  EXPECT_EQ(load("data: {name: folder, root: " + (dir / "nowhere").string() + "}\n").data.channels,
            3);
  // Other data keep their defaults.
  EXPECT_EQ(load("data: {name: fmnist}\n").student.model, default_config().student.model);
}

// Found by scripts/fuzz.sh: a mapping used as a key made yaml-cpp's own exception escape
// (a crash for a library user, a message without the file for the CLI).
TEST(Config, KeysOfTheWrongKindAreNamedWithTheFile) {
  TempDir dir("cfgkeys");
  auto msg = load_error(dir, "variants:\n  ? {a: 1}\n  : {method: none}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "line 2", "wrong kind"})) << msg;
  msg = load_error(dir, "? [runs, seeds]\n: 3\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "wrong kind"})) << msg;
  // Found by scripts/fuzz.sh: bytes that are not UTF-8 reached the JSON writer, whose exception
  // named no file.
  msg = load_error(dir, "runs: 3\nmethod:\n  settings: {gamma: \"a\xff\"}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "line 3", "not UTF-8", "0xff"})) << msg;
  msg = load_error(dir, "out: \"\xed\xa0\x80\"\n");  // a UTF-16 surrogate
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "line 1", "not UTF-8"})) << msg;
  // Found by scripts/fuzz.sh: a NUL in a key made yaml-cpp hand on bytes that are not UTF-8,
  // and the JSON writer's exception escaped the reader.
  static const char kNul[] = "runs: 3\nmethod:\n  settings: {tange\x10\x00_clip: 0.1}\n";
  msg = load_error(dir, std::string(kNul, sizeof(kNul) - 1));
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "line 3", "control character", "0x10"})) << msg;
  write_file_atomic(dir / "c.yaml", "out: \"r\xc3\xa9sultats-\xce\xbb\xf0\x9f\x99\x82\"\n");
  EXPECT_EQ(load_config(dir / "c.yaml").out, "r\xc3\xa9sultats-\xce\xbb\xf0\x9f\x99\x82");
}

TEST(Config, SearchAndBudgetKeysAndTheirErrors) {
  TempDir dir("cfgsearch");
  Config d = default_config();
  EXPECT_EQ(d.search.trials, 10);
  EXPECT_LT(d.search.startup, d.search.trials);  // an honest TPE by default (DESIGN.md 3.5)
  EXPECT_EQ(d.budget.seconds, 0);
  write_file_atomic(dir / "c.yaml", R"(
methods: [none, tpe, random-search]
search: {trials: 4, startup: 2, objective: val-accuracy, gamma_rule: hyperopt, candidates: 12,
         trial_epochs: 3, prune: true, max_failures: 2}
budget: {seconds: 90.5}
)");
  auto c = load_config(dir / "c.yaml");
  EXPECT_EQ(c.methods, (std::vector<std::string>{"none", "tpe", "random-search"}));
  EXPECT_EQ(c.search.trials, 4);
  EXPECT_EQ(c.search.startup, 2);
  EXPECT_EQ(c.search.objective, "val-accuracy");
  EXPECT_EQ(c.search.gamma_rule, "hyperopt");
  EXPECT_EQ(c.search.candidates, 12);
  EXPECT_EQ(c.search.trial_epochs, 3);
  EXPECT_TRUE(c.search.prune);
  EXPECT_EQ(c.search.max_failures, 2);
  EXPECT_DOUBLE_EQ(c.budget.seconds, 90.5);
  EXPECT_EQ(c.to_json()["search"]["trials"], 4);
  EXPECT_EQ(c.to_json()["budget"]["seconds"], 90.5);

  auto msg = load_error(dir, "search: {trails: 4}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.trails", "unknown key", "trials"})) << msg;
  msg = load_error(dir, "search: {trials: 0}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.trials", "0", ">= 1"})) << msg;
  msg = load_error(dir, "search: {trials: five}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.trials", "integer", "five"})) << msg;
  msg = load_error(dir, "search: {startup: -1}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.startup", "-1"})) << msg;
  msg = load_error(dir, "search: {objective: test-accuracy}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.objective", "test-accuracy", "val-loss"})) << msg;
  msg = load_error(dir, "search: {gamma_rule: sqrt}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.gamma_rule", "sqrt", "hyperopt"})) << msg;
  msg = load_error(dir, "search: {candidates: 0}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.candidates", "0"})) << msg;
  msg = load_error(dir, "search: {trial_epochs: -3}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.trial_epochs", "-3"})) << msg;
  msg = load_error(dir, "search: {prune: maybe}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.prune", "true or false", "maybe"})) << msg;
  msg = load_error(dir, "search: {max_failures: 0}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search.max_failures", "0"})) << msg;
  msg = load_error(dir, "search: [1, 2]\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "search", "mapping"})) << msg;
  msg = load_error(dir, "budget: {seconds: -5}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "budget.seconds", "-5"})) << msg;
  msg = load_error(dir, "budget: {minutes: 5}\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "budget.minutes", "unknown key", "seconds"})) << msg;
  msg = load_error(dir, "methods: [tpe, hyperopt]\n");
  EXPECT_TRUE(contains_all(msg, {"c.yaml", "hyperopt", "random-search", "tpe"})) << msg;
}

// The built-in default (what `metadistill experiment` runs with no config) is the shipped
// configs/synthetic.yaml, setting for setting.
TEST(Config, BuiltInDefaultEqualsTheShippedSyntheticConfig) {
  const std::filesystem::path root = METADISTILL_SOURCE_DIR;
  auto shipped = load_config(root / "configs" / "synthetic.yaml").to_json();
  auto builtin = default_config().to_json();
  shipped.erase("source");
  builtin.erase("source");
  EXPECT_EQ(builtin.dump(2), shipped.dump(2));
}

// Image data checkpoints every epoch by default (a 50-epoch run killed late resumes, and its
// metrics.csv grows as it trains); synthetic runs keep the authors' setting; a config overrides.
TEST(Config, CheckpointDefaultsFollowTheKindOfData) {
  TempDir dir("cfg");
  const auto fmnist = load_config(std::filesystem::path(METADISTILL_SOURCE_DIR) / "configs/fmnist.yaml");
  EXPECT_EQ(fmnist.student.trainer.checkpoint_every, 1);
  EXPECT_EQ(fmnist.teacher.trainer.checkpoint_every, 1);
  const auto synthetic =
      load_config(std::filesystem::path(METADISTILL_SOURCE_DIR) / "configs/synthetic.yaml");
  EXPECT_EQ(synthetic.student.trainer.checkpoint_every, 0);
  write_file_atomic(dir / "c.yaml", "data: {name: fmnist}\nstudent: {train: {checkpoint_every: 5}}\n");
  EXPECT_EQ(load_config(dir / "c.yaml").student.trainer.checkpoint_every, 5);
}

// Variants: a named method with its own settings, λ, learning rate and loss scale, listed in
// `methods` like a registered method; the run of a variant trains with the merged config.
TEST(Config, VariantsMergeTheirSettingsIntoTheMethodTheyVary) {
  TempDir dir("cfgvariants");
  write_file_atomic(dir / "c.yaml", R"(
first_seed: 100
reference: grid-a
method: {name: naive, settings: {gamma: 0.1, every: 2}}
variants:
  grid-a: {method: fixed, lambda1: 0.25, temperature: 4, kd_scale: t_squared}
  slow-ce: {method: fixed, lambda1: 1, lr: 0.1}
  online-a: {method: gradient, settings: {hypergradient: online, mu: 0.9}}
methods: [none, grid-a, slow-ce, online-a]
)");
  auto c = load_config(dir / "c.yaml");
  EXPECT_EQ(c.first_seed, 100);
  EXPECT_EQ(c.reference, "grid-a");
  std::string base;
  auto a = c.for_method("grid-a", base);
  EXPECT_EQ(base, "fixed");
  EXPECT_DOUBLE_EQ(a.method.fixed.lambda1, 0.25);
  EXPECT_DOUBLE_EQ(a.method.fixed.temperature, 4);
  EXPECT_TRUE(a.method.given_initial);
  EXPECT_EQ(a.student.trainer.kd_scale, "t_squared");
  EXPECT_EQ(a.student.trainer.lr, c.student.trainer.lr);
  auto s = c.for_method("slow-ce", base);
  EXPECT_DOUBLE_EQ(s.student.trainer.lr, 0.1);
  EXPECT_EQ(s.student.trainer.kd_scale, c.student.trainer.kd_scale);
  auto o = c.for_method("online-a", base);
  EXPECT_EQ(base, "gradient");
  EXPECT_EQ(o.method.extra.at("hypergradient"), "online");
  EXPECT_EQ(o.method.extra.at("every"), 2);  // the config's settings stay under the variant's
  EXPECT_FALSE(o.method.given_initial);
  auto plain = c.for_method("none", base);
  EXPECT_EQ(base, "none");
  EXPECT_EQ(plain.to_json(), c.to_json());
  EXPECT_EQ(c.to_json().at("variants").at("grid-a").at("kd_scale"), "t_squared");

  EXPECT_TRUE(contains_all(load_error(dir, "variants: {a: {method: bogus}}\n"),
                           {"variants.a.method 'bogus'", "gradient"}));
  EXPECT_TRUE(contains_all(load_error(dir, "variants: {gradient: {method: fixed}}\n"),
                           {"variants.gradient", "registered method"}));
  EXPECT_TRUE(contains_all(load_error(dir, "variants: {a: {lambda1: 0.5}}\n"),
                           {"variants.a", "'method'"}));
  EXPECT_TRUE(contains_all(load_error(dir, "variants: {a: {method: fixed, lambda1: 2}}\n"),
                           {"variants.a", "lambda1"}));
  EXPECT_TRUE(contains_all(
      load_error(dir, "variants: {a: {method: gradient, settings: {mu: 3, hypergradient: online}}}\n"),
      {"variants.a", "mu = 3"}));
  EXPECT_TRUE(contains_all(load_error(dir, "variants: {a: {method: fixed, colour: red}}\n"),
                           {"unknown key 'variants.a.colour'"}));
  EXPECT_TRUE(contains_all(load_error(dir, "methods: [b]\nvariants: {a: {method: fixed}}\n"),
                           {"unknown method 'b'", "variants"}));
}

// A variant's `train:` overrides keys of student.train with the same reader and checks.
TEST(Config, VariantsOverrideStudentTrainingKeys) {
  TempDir dir("cfgvarianttrain");
  write_file_atomic(dir / "c.yaml", R"(
student: {train: {epochs: 3, lr: 1.0}}
variants:
  normed: {method: gradient, train: {step_norm: ce, lr: 0.5}, settings: {order: before}}
methods: [none, normed]
)");
  auto c = load_config(dir / "c.yaml");
  std::string base;
  auto n = c.for_method("normed", base);
  EXPECT_EQ(base, "gradient");
  EXPECT_EQ(n.student.trainer.step_norm, "ce");
  EXPECT_DOUBLE_EQ(n.student.trainer.lr, 0.5);
  EXPECT_EQ(n.student.trainer.epochs, 3);  // the keys it does not name stay the config's
  EXPECT_EQ(c.student.trainer.step_norm, "none");
  EXPECT_EQ(c.to_json().at("variants").at("normed").at("train").at("step_norm"), "ce");

  EXPECT_TRUE(contains_all(
      load_error(dir, "variants: {a: {method: fixed, train: {colour: red}}}\n"),
      {"unknown key 'variants.a.train.colour'"}));
  EXPECT_TRUE(contains_all(
      load_error(dir, "variants: {a: {method: fixed, train: {step_norm: huge}}}\n"),
      {"variants.a", "step_norm"}));
}

// loss: the loss and its metaparameters in one section, read into the same settings as their
// other places; the same setting in both places is refused.
TEST(Config, LossSectionSetsTheHintonLossAndItsMetaparameters) {
  TempDir dir("cfgloss");
  write_file_atomic(dir / "c.yaml", R"(
student: {train: {epochs: 2}}
loss: {kind: hinton, lambda1: 0.25, temperature: 4, kd_scale: t_squared, step_norm: ce}
)");
  const auto c = load_config(dir / "c.yaml");
  EXPECT_DOUBLE_EQ(c.method.fixed.lambda1, 0.25);
  EXPECT_DOUBLE_EQ(c.method.fixed.temperature, 4);
  EXPECT_EQ(c.student.trainer.kd_scale, "t_squared");
  EXPECT_EQ(c.student.trainer.step_norm, "ce");
  // The same config spelled the old way has the same settings (and so the same run keys).
  write_file_atomic(dir / "d.yaml", R"(
student: {train: {epochs: 2, kd_scale: t_squared, step_norm: ce}}
method: {lambda1: 0.25, temperature: 4}
)");
  auto d = load_config(dir / "d.yaml");
  d.source = c.source;
  EXPECT_EQ(d.to_json(), c.to_json());

  EXPECT_TRUE(contains_all(load_error(dir, "loss: {kind: softmax}\n"),
                           {"loss.kind 'softmax'", "hinton or vid"}));
  EXPECT_TRUE(contains_all(
      load_error(dir, "loss: {lambda1: 0.5}\nmethod: {lambda1: 0.25}\n"),
      {"loss.lambda1", "method.lambda1", "twice"}));
  EXPECT_TRUE(contains_all(
      load_error(dir, "loss: {step_norm: ce}\nstudent: {train: {step_norm: ce}}\n"),
      {"loss.step_norm", "student.train.step_norm"}));
  EXPECT_TRUE(contains_all(load_error(dir, "loss: {kind: hinton, beta: 0.5}\n"),
                           {"unknown key 'loss.beta'"}));
  EXPECT_TRUE(contains_all(load_error(dir, "loss: {lambda1: 2}\n"), {"lambda1"}));
}
