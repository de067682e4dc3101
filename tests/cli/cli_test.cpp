// Every subcommand of the `metadistill` program (apps/metadistill/) run end to end on tiny
// settings, and its main error path checked by what the message names.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "metadistill/data/image_codec.h"
#include "metadistill/experiment/config.h"
#include "metadistill/search/study.h"
#include "metadistill/util/files.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace metadistill;
using metadistill::testing::CliRun;
using metadistill::testing::contains_all;
using metadistill::testing::describe;
using metadistill::testing::TempDir;

namespace {

// The synthetic data of the paper with a small teacher budget and 100 student epochs: every
// command below finishes in a second or two.
const char* kTinyConfig = R"(preset: tiny
runs: 1
threads: 1
methods: [none, gradient]
data: {name: synthetic, variant: reference, val_is_test: true}
teacher:
  model: logreg
  train: {epochs: 2000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, checkpoint_every: 0}
student:
  model: logreg
  train: {epochs: 100, batch_size: 0, lr: 1.0, lr_step: 0, eval_every: 20, checkpoint_every: 0}
method:
  settings: {val_temperature: 0.1, gamma: 0.1}
search: {trials: 2, startup: 2}
)";

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = (dir_ / "tiny.yaml").string();
    write_file_atomic(config_, kTinyConfig);
  }

  // Runs the program; on an unexpected exit code the failure shows the command and its output.
  CliRun run(const std::vector<std::string>& args, bool expect_success = true) {
    CliRun r = metadistill::testing::run_cli(args);
    if (expect_success)
      EXPECT_EQ(r.exit_code, 0) << describe(args, r);
    else
      EXPECT_NE(r.exit_code, 0) << describe(args, r);
    last_ = describe(args, r);
    return r;
  }

  std::string out(const std::string& name) const { return (dir_ / name).string(); }

  TempDir dir_{"cli"};
  std::string config_;
  std::string last_;  // the last command and its output, for failure messages
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(line);
  return v;
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

}  // namespace

TEST_F(Cli, IntegrationExperimentPrintsAndStoresTheTable) {
  const auto r = run({"experiment", config_, "--out", out("exp"), "--methods", "none,gradient",
                      "--runs", "1"});
  EXPECT_TRUE(contains_all(r.out, {"| none | 1 |", "| gradient | 1 |", out("exp")})) << last_;
  for (auto f : {"table.md", "table.csv", "runs.csv", "experiment.json"})
    EXPECT_TRUE(fs::exists(dir_ / "exp" / f)) << f;
  const auto rows = lines(read_file(dir_ / "exp" / "runs.csv"));
  ASSERT_EQ(rows.size(), 3u);  // header, none, gradient
  EXPECT_EQ(read_json(dir_ / "exp" / "runs" / "gradient" / "seed0" / "result.json")["steps"], 100);

  // A method the program does not know is named, with the known ones, before anything runs.
  const auto bad = run({"experiment", config_, "--out", out("bad"), "--methods", "none,bogus"},
                       false);
  EXPECT_TRUE(contains_all(bad.err, {"unknown method 'bogus'", "gradient", "tpe"})) << last_;
  EXPECT_FALSE(fs::exists(dir_ / "bad" / "teacher.pt")) << "trained a teacher before failing";
}

TEST_F(Cli, IntegrationReportRedrawsTheTableOfAFolder) {
  run({"experiment", config_, "--out", out("exp"), "--methods", "none", "--runs", "1", "-q"});
  const std::string table = read_file(dir_ / "exp" / "table.md");
  fs::remove(dir_ / "exp" / "table.md");
  fs::remove(dir_ / "exp" / "table.csv");
  const auto r = run({"report", out("exp")});
  EXPECT_EQ(read_file(dir_ / "exp" / "table.md"), table);
  EXPECT_TRUE(fs::exists(dir_ / "exp" / "table.csv"));
  EXPECT_NE(r.out.find(table), std::string::npos) << last_;

  const auto bad = run({"report", out("nothing-here")}, false);
  EXPECT_TRUE(contains_all(bad.err, {out("nothing-here"), "not an experiment folder"})) << last_;
}

TEST_F(Cli, IntegrationDistillTrainsOneStudentWithTheGivenMetaparameters) {
  const auto r = run({"distill", config_, "--out", out("d"), "--method", "fixed", "--lambda1",
                      "0.25", "--temperature", "2", "--seed", "1", "-q"});
  const auto run_dir = dir_ / "d" / "distill" / "fixed-seed1";
  EXPECT_TRUE(contains_all(r.out, {"fixed (seed 1): test accuracy final", run_dir.string()}))
      << last_;
  const auto j = read_json(run_dir / "result.json");
  EXPECT_EQ(j["method"], "fixed");
  EXPECT_EQ(j["seed"], 1);
  EXPECT_DOUBLE_EQ(j["initial"]["lambda1"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j["final"]["lambda1"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j["final"]["temperature"].get<double>(), 2.0);
  EXPECT_EQ(j["steps"], 100);
  const double acc = j["final_test_accuracy"].get<double>();
  EXPECT_GT(acc, 0.5);
  EXPECT_LE(acc, 1.0);
  // metrics.csv: the header and one row per evaluation (every 20 of 100 epochs).
  const auto metrics = lines(read_file(run_dir / "metrics.csv"));
  ASSERT_EQ(metrics.size(), 6u);
  EXPECT_EQ(metrics.back().substr(0, 4), "100,");
  EXPECT_TRUE(fs::exists(run_dir / "student.pt"));

  const auto bad = run({"distill", config_, "--out", out("bad"), "--method", "nosuch"}, false);
  EXPECT_TRUE(contains_all(bad.err, {"unknown method 'nosuch'", "fixed", "proposed"})) << last_;
  const auto range = run({"distill", config_, "--out", out("bad"), "--lambda1", "1.5"}, false);
  EXPECT_TRUE(contains_all(range.err, {"--lambda1/--temperature", "1.5"})) << last_;
}

TEST_F(Cli, IntegrationTrainTeacherSavesTheTeacher) {
  const auto file = dir_ / "teachers" / "t.pt";
  const auto r = run({"train-teacher", config_, "--out", out("t"), "--file", file.string(),
                      "--teacher-epochs", "500", "-q"});
  EXPECT_TRUE(fs::exists(file));
  EXPECT_GT(fs::file_size(file), 0u);
  EXPECT_TRUE(contains_all(r.out, {"teacher logreg on synthetic", "saved to " + file.string()}))
      << last_;
  const auto at = r.out.find("test accuracy ");
  ASSERT_NE(at, std::string::npos) << last_;
  const double acc = std::stod(r.out.substr(at + 14));
  EXPECT_GT(acc, 0.5) << last_;
  EXPECT_LE(acc, 1.0) << last_;

  const auto missing = out("no-such.yaml");
  const auto bad = run({"train-teacher", missing, "--out", out("bad")}, false);
  EXPECT_TRUE(contains_all(bad.err, {"config " + missing, "no such file"})) << last_;
}

TEST_F(Cli, IntegrationSearchRunsAStudyRetrainsTheBestAndExportsIt) {
  // No --trials: the config's search section (trials 2) applies, as in an experiment.
  const auto r = run({"search", config_, "--out", out("s"), "--sampler", "random", "--seed", "3",
                      "-q"});
  EXPECT_TRUE(contains_all(r.out, {"2 trials"})) << last_;
  const auto study_file = dir_ / "s" / "search" / "random.db";
  ASSERT_TRUE(fs::exists(study_file)) << last_;
  Study study = Study::load(study_file);
  const auto counts = study.counts();
  EXPECT_EQ(counts.complete, 2);
  EXPECT_EQ(counts.failed, 0);
  const auto best = study.best_trial();
  ASSERT_TRUE(best.has_value());
  EXPECT_TRUE(contains_all(r.out, {"best: trial " + std::to_string(best->number),
                                   "retrained on train ∪ val", "test accuracy"}))
      << last_;
  ASSERT_TRUE(study.attribute("retrain").has_value());
  // history.csv: the header and one row per trial.
  const auto history = dir_ / "s" / "search" / "random" / "history.csv";
  EXPECT_EQ(lines(read_file(history)).size(), 3u);
  EXPECT_TRUE(fs::exists(dir_ / "s" / "search" / "random" / "history.json"));

  // --export-only writes the history again from the study alone.
  fs::remove(history);
  const auto again = run({"search", config_, "--out", out("s"), "--sampler", "random",
                          "--export-only", "--study", study_file.string()});
  EXPECT_TRUE(fs::exists(history)) << last_;

  const auto missing = out("none.db");
  const auto bad = run({"search", config_, "--out", out("s"), "--export-only", "--study", missing},
                       false);
  EXPECT_TRUE(contains_all(bad.err, {"study " + missing, "no such file"})) << last_;
}

TEST_F(Cli, IntegrationSweepWritesOnePointPerSetting) {
  const auto r = run({"sweep", config_, "--out", out("w"), "--equal", "2,4", "--e2", "2", "--e1",
                      "2", "--runs", "1", "-q"});
  const auto sweep = dir_ / "w" / "sweep";
  const auto rows = lines(read_file(sweep / "sweep.csv"));
  ASSERT_EQ(rows.size(), 4u) << read_file(sweep / "sweep.csv");  // header + 2 equal + 1 e2 point
  // The share of hyper-steps in 100 steps of cycles of e1 hyper-steps and e2 extrapolated ones:
  // e1 = e2 = 2: 50 of 100; e1 = e2 = 4: 12 cycles of 8 and 4 hyper-steps left, 52 of 100.
  EXPECT_EQ(rows[1].substr(0, 10), "e1=e2,2,2,") << rows[1];
  EXPECT_EQ(rows[1].substr(rows[1].rfind(',') + 1), "0.5000") << rows[1];
  EXPECT_EQ(rows[2].substr(0, 10), "e1=e2,4,4,") << rows[2];
  EXPECT_EQ(rows[2].substr(rows[2].rfind(',') + 1), "0.5200") << rows[2];
  const std::string md = read_file(sweep / "sweep.md");
  EXPECT_NE(r.out.find(md), std::string::npos) << last_;

  const auto bad = run({"sweep", config_, "--out", out("bad"), "--equal", "1"}, false);
  EXPECT_TRUE(contains_all(bad.err, {"e1 = e2 = 1", "expected >= 2"})) << last_;
  EXPECT_FALSE(fs::exists(dir_ / "bad" / "teacher.pt")) << "trained a teacher before failing";
}

namespace {

// A two-class image folder, grey 28x28 (dark noise = "dark", bright noise = "light"), for the
// convolutional pair of the multi-layer command.
void write_two_class_folder(const fs::path& root) {
  auto gen = at::detail::createCPUGenerator(7);
  for (const std::string split : {"train", "test"}) {
    const int n = split == "train" ? 24 : 8;
    for (int cls = 0; cls < 2; ++cls)
      for (int i = 0; i < n; ++i) {
        auto img = torch::randint(0, 100, {1, 28, 28}, gen, torch::kInt64) + 155 * cls;
        write_image(img.to(torch::kUInt8),
                    root / split / (cls == 0 ? "dark" : "light") / (std::to_string(i) + ".png"));
      }
  }
}

// A multi-layer config on the two-class folder (written into `dir`/images) with `runs` runs of
// `methods`; returns its path.
std::string write_multilayer_config(const fs::path& dir, int runs, const std::string& methods) {
  write_two_class_folder(dir / "images");
  const fs::path config = dir / "multilayer.yaml";
  write_file_atomic(config, fmt::format(R"(preset: tiny
runs: {}
threads: 1
data: {{name: folder, root: {}, channels: 1, val_size: 8}}
teacher:
  model: conv-tiny
  train: {{epochs: 1, batch_size: 16, lr: 0.05, lr_step: 0, augmentation: none}}
student:
  model: conv-very-tiny
  train: {{epochs: 2, batch_size: 16, lr: 0.05, lr_step: 0, eval_every: 1}}
multilayer:
  methods: [{}]
  teacher_taps: [conv1, conv2]
  student_taps: [conv1, conv2]
)", runs, (dir / "images").string(), methods));
  return config.string();
}

}  // namespace

// The multi-layer experiment's runs shared out by two ranks (experiment/run_pool.h): the numbers
// of one process running them all.
TEST_F(Cli, IntegrationMultilayerRanksGiveTheOneProcessNumbers) {
  const std::string config = write_multilayer_config(dir_.path(), 2, "none, all-pairs-fd");
  run({"multilayer", config, "--out", out("one"), "-q"});
  const auto r = run({"launch", "--nproc", "2", "--", "multilayer", config, "--out", out("two"), "-q"});
  EXPECT_TRUE(contains_all(r.err, {"rank 1: "})) << last_;
  EXPECT_TRUE(contains_all(r.out, {"| none | 2 |", "| all-pairs-fd | 2 |"})) << last_;
  for (const std::string m : {"none", "all-pairs-fd"})
    for (const std::string s : {"seed0", "seed1"}) {
      const auto a = nlohmann::json::parse(read_file(dir_ / "one" / "runs" / m / s / "result.json"));
      const auto b = nlohmann::json::parse(read_file(dir_ / "two" / "runs" / m / s / "result.json"));
      EXPECT_EQ(a["result"]["final_test_accuracy"], b["result"]["final_test_accuracy"]) << m << s;
      EXPECT_EQ(a["result"]["lambda"], b["result"]["lambda"]) << m << s;
      EXPECT_EQ(a["settings_key"], b["settings_key"]) << m << s;
    }
}

// A new user's first run on their own folder of grey 12 x 12 images (a size the zoo was not
// designed for): a config that names only the data works the first time, one channel taken from
// the files, the default ResNet teacher and CNN student.
TEST_F(Cli, IntegrationOwnGreyFolderOfAnUnusualSizeWorksTheFirstTime) {
  auto gen = at::detail::createCPUGenerator(11);
  for (const std::string split : {"train", "test"})
    for (int cls = 0; cls < 3; ++cls)
      for (int i = 0; i < (split == "train" ? 16 : 6); ++i) {
        auto img = torch::randint(0, 80, {1, 12, 12}, gen, torch::kInt64) + 85 * cls;
        write_image(img.to(torch::kUInt8),
                    dir_ / "digits" / split / std::to_string(cls) / (std::to_string(i) + ".png"));
      }
  const std::string config = out("digits.yaml");
  write_file_atomic(config, "data: {name: folder, root: " + (dir_ / "digits").string() +
                                ", val_size: 12}\nthreads: 1\n");
  const auto r = run({"distill", config, "--method", "naive", "--epochs", "2", "--out", out("d"),
                      "-q"});
  EXPECT_TRUE(contains_all(r.out, {"folder:digits: 36 train / 12 val / 18 test", "teacher resnet8"}))
      << last_;
  const auto result =
      nlohmann::json::parse(read_file(dir_ / "d" / "distill" / "naive-seed0" / "result.json"));
  EXPECT_GT(result.at("final_test_accuracy").get<double>(), 0.5) << last_;  // 3 classes: chance 1/3
  const auto& settings = result.at("settings");
  EXPECT_EQ(settings.at("data").at("channels"), 1) << settings.dump(2);
  EXPECT_EQ(settings.at("student").at("model"), "cnn") << settings.dump(2);
}

// `init ROOT > my.yaml`: a starter config from what the folder holds, which the config reader
// reads back and a run trains with; a missing folder is named.
TEST_F(Cli, IntegrationInitWritesAStarterConfigThatRuns) {
  auto gen = at::detail::createCPUGenerator(5);
  for (const std::string split : {"train", "test"})
    for (const std::string cls : {"cat", "dog"})
      for (int i = 0; i < (split == "train" ? 10 : 4); ++i)
        write_image(torch::randint(0, 256, {3, 20, 24}, gen, torch::kInt64).to(torch::kUInt8),
                    dir_ / "pets" / split / cls / (std::to_string(i) + ".jpg"));
  const auto r = run({"init", out("pets")});
  EXPECT_TRUE(contains_all(r.out, {"train: 20 images in 2 classes (cat: 10, dog: 10)",
                                   "20x24, colour"}))
      << last_;
  write_file_atomic(dir_ / "pets.yaml", r.out);
  const Config c = load_config(dir_ / "pets.yaml");
  EXPECT_EQ(c.data.name, "folder");
  EXPECT_EQ(c.data.root, out("pets"));
  EXPECT_EQ(c.data.channels, 3);
  EXPECT_EQ(c.data.image_size, (std::vector<int64_t>{20, 24}));
  EXPECT_EQ(c.data.val_size, 2);
  EXPECT_EQ(c.student.model, "cnn");
  run({"distill", (dir_ / "pets.yaml").string(), "--epochs", "1", "--out", out("p"), "-q"});
  EXPECT_TRUE(std::filesystem::exists(dir_ / "p" / "distill" / "naive-seed0" / "result.json"))
      << last_;
  const auto bad = run({"init", out("nowhere")}, false);
  EXPECT_TRUE(contains_all(bad.err, {out("nowhere"), "no such folder"})) << last_;
}

TEST_F(Cli, IntegrationMultilayerTrainsEveryMethodAndWritesTheTable) {
  const std::string config = write_multilayer_config(dir_.path(), 1, "none, hinton, all-pairs-fd");
  const auto r = run({"multilayer", config, "--out", out("m"), "-q"});
  const auto m = dir_ / "m";
  EXPECT_TRUE(contains_all(r.out, {"| none | 1 |", "| hinton | 1 |", "| all-pairs-fd | 1 |"}))
      << last_;
  const auto rows = lines(read_file(m / "results.csv"));
  ASSERT_EQ(rows.size(), 4u) << read_file(m / "results.csv");
  for (size_t i = 1; i < rows.size(); ++i) {
    // method,seed,final_test_accuracy,...: an accuracy in [0, 1].
    std::istringstream cells(rows[i]);
    std::string method, seed, acc;
    std::getline(cells, method, ',');
    std::getline(cells, seed, ',');
    std::getline(cells, acc, ',');
    EXPECT_GE(std::stod(acc), 0.0) << rows[i];
    EXPECT_LE(std::stod(acc), 1.0) << rows[i];
  }
  EXPECT_TRUE(fs::exists(m / "table.md"));
  // The learned method wrote its final pair weights, 2 teacher x 2 student taps summing to 1
  // (a softmax), and their trajectory over its hyper-steps.
  const auto run_dir = m / "runs" / "all-pairs-fd" / "seed0";
  const auto pairs = lines(read_file(run_dir / "pairs.csv"));
  ASSERT_EQ(pairs.size(), 5u) << read_file(run_dir / "pairs.csv");
  double sum = 0;
  for (size_t i = 1; i < pairs.size(); ++i) sum += std::stod(pairs[i].substr(pairs[i].rfind(',') + 1));
  EXPECT_NEAR(sum, 1.0, 1e-6) << read_file(run_dir / "pairs.csv");
  const auto trajectory = lines(read_file(run_dir / "pair_weights.csv"));
  EXPECT_GT(trajectory.size(), 1u);

  const auto bad = run({"multilayer", config, "--out", out("bad"), "--methods", "none,bogus"},
                       false);
  EXPECT_TRUE(contains_all(bad.err, {"unknown method 'bogus'", "all-pairs-fd"})) << last_;
  EXPECT_FALSE(fs::exists(dir_ / "bad" / "teacher.pt")) << "trained a teacher before failing";

  // One experiment command: `experiment` runs a config with a multilayer: section as the
  // multi-layer experiment, to the same numbers (same seeds) as `multilayer`.
  const auto e = run({"experiment", config, "--out", out("e"), "--methods", "none,all-pairs-fd",
                      "-q"});
  EXPECT_TRUE(contains_all(e.out, {"| none | 1 |", "| all-pairs-fd | 1 |"})) << last_;
  const auto e_rows = lines(read_file(dir_ / "e" / "results.csv"));
  ASSERT_EQ(e_rows.size(), 3u) << read_file(dir_ / "e" / "results.csv");
  auto accuracy_of = [](const std::vector<std::string>& table, const std::string& method) {
    for (const auto& row : table)
      if (row.rfind(method + ",", 0) == 0) {
        const auto after_seed = row.find(',', method.size() + 1);
        return row.substr(after_seed + 1, row.find(',', after_seed + 1) - after_seed - 1);
      }
    return std::string("absent");
  };
  EXPECT_EQ(accuracy_of(e_rows, "none"), accuracy_of(rows, "none"));
  EXPECT_EQ(accuracy_of(e_rows, "all-pairs-fd"), accuracy_of(rows, "all-pairs-fd"));
  const auto budget = run({"experiment", config, "--out", out("e"), "--budget-seconds", "5"}, false);
  EXPECT_TRUE(contains_all(budget.err, {"--budget-seconds", "multi-layer", "time_limit"})) << last_;
}

// Everything that can be checked is checked before a teacher is trained or data decoded
// (STYLE.md item 18): each mistake fails at once, names the problem, and leaves no teacher.
TEST_F(Cli, IntegrationMistakesFailBeforeTheTeacherIsTrained) {
  const auto no_teacher = [&](const std::string& name) {
    EXPECT_FALSE(fs::exists(dir_ / name / "teacher.pt")) << "trained a teacher before failing\n"
                                                         << last_;
  };
  // An unknown method.
  auto r = run({"distill", config_, "--out", out("m"), "--method", "bogus"}, false);
  EXPECT_TRUE(contains_all(r.err, {"unknown method 'bogus'"})) << last_;
  no_teacher("m");

  // Method settings: an unknown key, a wrong type.
  const std::string settings = "settings: {val_temperature: 0.1, gamma: 0.1}";
  const auto with_settings = [&](const std::string& name, const std::string& replacement) {
    std::string t = kTinyConfig;
    t.replace(t.find(settings), settings.size(), replacement);
    write_file_atomic(dir_ / name, t);
    return out(name);
  };
  r = run({"distill", with_settings("k.yaml", "settings: {gamm: 0.1}"), "--out", out("k"),
           "--method", "gradient"},
          false);
  EXPECT_TRUE(contains_all(r.err, {"k.yaml", "method.settings", "unknown key 'gamm'"})) << last_;
  no_teacher("k");
  r = run({"experiment", with_settings("t.yaml", "settings: {gamma: fast}"), "--out", out("t")},
          false);
  EXPECT_TRUE(contains_all(r.err, {"t.yaml", "method.settings.gamma", "expected a number",
                                   "fast"}))
      << last_;
  no_teacher("t");

  // A student (or teacher) model whose input shape does not fit the data.
  std::string cnn = kTinyConfig;
  cnn.replace(cnn.find("student:\n  model: logreg"), 24, "student:\n  model: cnn   ");
  write_file_atomic(dir_ / "cnn.yaml", cnn);
  for (const std::string command : {"distill", "experiment", "search", "sweep"}) {
    r = run({command, out("cnn.yaml"), "--out", out("cnn-" + command)}, false);
    EXPECT_TRUE(contains_all(r.err, {"cnn.yaml", "student.model 'cnn' does not fit data "
                                     "synthetic", "[3]"}))
        << last_;
    no_teacher("cnn-" + command);
  }
  std::string resnet = kTinyConfig;
  resnet.replace(resnet.find("teacher:\n  model: logreg"), 24, "teacher:\n  model: resnet8");
  write_file_atomic(dir_ / "resnet.yaml", resnet);
  r = run({"distill", out("resnet.yaml"), "--out", out("resnet")}, false);
  EXPECT_TRUE(contains_all(r.err, {"teacher.model 'resnet8' does not fit data synthetic"}))
      << last_;
  no_teacher("resnet");

  // An output folder that cannot be created (inside a file).
  write_file_atomic(dir_ / "a-file", "x");
  const std::string unwritable = (dir_ / "a-file" / "out").string();
  for (const std::string command : {"distill", "experiment", "search", "sweep"}) {
    r = run({command, config_, "--out", unwritable}, false);
    EXPECT_TRUE(contains_all(r.err, {"output folder", unwritable})) << last_;
  }
}

// Values no one should pass are refused (or capped) with a message naming the flag or key.
TEST_F(Cli, IntegrationValuesNoOneShouldPassAreRefusedNamingTheFlagOrKey) {
  auto r = run({"distill", config_, "--out", out("z"), "--threads", "0"}, false);
  EXPECT_TRUE(contains_all(r.err, {"--threads", "0", "expected a thread count >= 1"})) << last_;
  r = run({"distill", config_, "--out", out("z"), "--seed", "-1"}, false);
  EXPECT_TRUE(contains_all(r.err, {"--seed", "-1", "expected a seed, an integer >= 0"})) << last_;
  r = run({"experiment", config_, "--out", out("z"), "--runs", "1", "--threads", "-3"}, false);
  EXPECT_TRUE(contains_all(r.err, {"--threads", "-3"})) << last_;
  EXPECT_FALSE(fs::exists(dir_ / "z" / "teacher.pt"));

  // A thousand threads: capped at 4x the cores, with a message; the run goes on.
  r = run({"distill", config_, "--out", out("many"), "--method", "none", "--threads", "1000",
           "-q"});
  EXPECT_TRUE(contains_all(r.err, {"--threads 1000", "more than 4x", "cores; using"})) << last_;

  // Configs: empty, comment-only, a folder.
  write_file_atomic(dir_ / "empty.yaml", "");
  write_file_atomic(dir_ / "comments.yaml", "# nothing here yet\n   \n# data: {name: fmnist}\n");
  for (const std::string name : {"empty.yaml", "comments.yaml"}) {
    r = run({"distill", out(name), "--out", out("z")}, false);
    EXPECT_TRUE(contains_all(r.err, {"config " + out(name), "empty"})) << last_;
  }
  fs::create_directories(dir_ / "conf.d");
  r = run({"experiment", out("conf.d"), "--out", out("z")}, false);
  EXPECT_TRUE(contains_all(r.err, {"config " + out("conf.d"), "is a folder"})) << last_;

  // method.settings.gamma: NaN, and far out of range.
  for (const auto& [value, expected] :
       std::vector<std::pair<std::string, std::string>>{{".nan", "nan"}, {"1e308", "1e+308"}}) {
    std::string t = kTinyConfig;
    const std::string from = "gamma: 0.1}";
    t.replace(t.find(from), from.size(), "gamma: " + value + "}");
    write_file_atomic(dir_ / "g.yaml", t);
    r = run({"distill", out("g.yaml"), "--out", out("z"), "--method", "gradient"}, false);
    EXPECT_TRUE(contains_all(r.err, {out("g.yaml"), "method.settings.gamma = " + expected,
                                     "expected a value in (0, 100]"}))
        << last_;
  }
  EXPECT_FALSE(fs::exists(dir_ / "z" / "teacher.pt"));
}
