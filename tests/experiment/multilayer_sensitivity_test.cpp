#include "metadistill/experiment/multilayer_sensitivity.h"

#include <gtest/gtest.h>

#include "metadistill/experiment/plots.h"
#include "metadistill/util/files.h"
#include "cli_runner.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

// Real Fashion-MNIST, cut down so that a teacher and a dozen students train in seconds.
std::string tiny_config(const std::filesystem::path& out) {
  return R"(runs: 1
threads: 1
data: {name: fmnist, val_size: 100, limit_train: 600, limit_test: 200}
teacher: {model: conv-tiny, train: {epochs: 1, batch_size: 64, lr: 0.05, optimizer: momentum}}
student: {model: conv-very-tiny, train: {epochs: 1, batch_size: 64, lr: 0.05, optimizer: momentum}}
out: )" + out.string() + R"(
multilayer:
  methods: [hinton, pairwise]
  teacher_taps: [conv3]
  student_taps: [conv3]
  sensitivity: {methods: [hinton, pairwise], beta: [0.2, 0.8], temperature: [2, 8]}
)";
}

TEST(Sensitivity, OptionsChangeOneSettingOfTheRightMethod) {
  const auto base = MultiLayerOptions().teacher_taps({"conv1"}).student_taps({"conv1"}).beta(0.5);
  auto h = sensitivity_options(base, "hinton", "beta", 0.2);
  EXPECT_EQ(h.method(), "hinton");
  EXPECT_DOUBLE_EQ(h.hinton_lambda1(), 0.2);  // β of "hinton" is λ1, the weight of CE
  EXPECT_DOUBLE_EQ(h.beta(), 0.5);
  auto p = sensitivity_options(base, "pairwise", "beta", 0.9);
  EXPECT_DOUBLE_EQ(p.beta(), 0.9);
  EXPECT_DOUBLE_EQ(p.hinton_lambda1(), base.hinton_lambda1());
  auto t = sensitivity_options(base, "hinton", "temperature", 8);
  EXPECT_DOUBLE_EQ(t.temperature(), 8);
  // A learned β starting outside its range widens the range.
  auto l = sensitivity_options(MultiLayerOptions(base).beta_min(0.3), "all-pairs-fd", "beta", 0.1);
  EXPECT_DOUBLE_EQ(l.beta_min(), 0.1);
  expect_error([&] { sensitivity_options(base, "hinton", "gamma", 1); }, {"'gamma'"});
  expect_error([&] { sensitivity_options(base, "hinton", "temperature", -1); }, {"temperature"});
  SensitivityConfig bad;
  bad.beta = {0.5, 1.5};
  expect_error([&] { bad.validate(); }, {"beta = 1.5"});
  bad.beta = {};
  bad.methods = {"none"};
  expect_error([&] { bad.validate(); }, {"'none'"});
}

TEST(Sensitivity, ConfigReadsTheStudyAndNamesBadKeys) {
  TempDir dir("sens");
  const auto path = dir / "c.yaml";
  write_file_atomic(path, tiny_config(dir / "out"));
  auto c = load_multilayer_config(path);
  EXPECT_EQ(c.sensitivity.methods, (std::vector<std::string>{"hinton", "pairwise"}));
  EXPECT_EQ(c.sensitivity.beta, (std::vector<double>{0.2, 0.8}));
  EXPECT_EQ(c.sensitivity.temperature, (std::vector<double>{2, 8}));
  auto with = [&](const std::string& from, const std::string& to) {
    auto text = tiny_config(dir / "out");
    text.replace(text.find(from), from.size(), to);
    write_file_atomic(path, text);
  };
  with("temperature: [2, 8]", "temprature: [2, 8]");
  expect_error([&] { load_multilayer_config(path); },
               {path.string(), "'multilayer.sensitivity.temprature'"});
  with("beta: [0.2, 0.8]", "beta: [0.2, 2]");
  expect_error([&] { load_multilayer_config(path); }, {path.string(), "beta = 2"});
  with("beta: [0.2, 0.8]", "beta: low");
  expect_error([&] { load_multilayer_config(path); },
               {"multilayer.sensitivity.beta", "a list of numbers"});
}

TEST(Sensitivity, IntegrationEveryPointTrainsOnceAndFinishedRunsAreReused) {
  TempDir dir("sens");
  write_file_atomic(dir / "c.yaml", tiny_config(dir / "out"));
  auto c = load_multilayer_config(dir / "c.yaml");
  MultiLayerExperimentOptions o;
  o.verbose = false;
  auto r = run_multilayer_sensitivity(c, o);
  ASSERT_EQ(r.points.size(), 6u);  // 2 methods × 2 β + 2 T
  EXPECT_EQ(r.points[1].method, "hinton");
  EXPECT_EQ(r.points[1].value, 0.8);
  EXPECT_EQ(r.points[4].parameter, "temperature");
  for (const auto& p : r.points) {
    EXPECT_GT(p.final_test_accuracy, 0.2) << p.method << " " << p.value;
  }
  const auto out = dir / "out" / "sensitivity";
  const auto csv = read_file(out / "sensitivity.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  const auto md = read_file(out / "sensitivity.md");
  EXPECT_NE(md.find("| pairwise | beta | 0.2 | 1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| hinton | temperature | 8 | 1 |"), std::string::npos) << md;
  if (gnuplot_available())
    for (auto f : {"sensitivity-beta.png", "sensitivity-temperature.png"})
      EXPECT_GT(std::filesystem::file_size(out / "plots" / f), 1000u) << f;

  // The same study again trains nothing: every run is read back from its result.json.
  const auto student = out / "runs" / "pairwise-beta-0.8" / "seed0" / "student.pt";
  ASSERT_TRUE(std::filesystem::exists(student));
  const auto stamp = std::filesystem::last_write_time(student);
  auto again = run_multilayer_sensitivity(c, o);
  EXPECT_EQ(std::filesystem::last_write_time(student), stamp);
  ASSERT_EQ(again.points.size(), r.points.size());
  for (size_t i = 0; i < r.points.size(); ++i)
    EXPECT_EQ(again.points[i].final_test_accuracy, r.points[i].final_test_accuracy);

  // `metadistill sweep` of a multi-layer config is this study: every point is read back.
  const auto cli = metadistill::testing::run_cli({"sweep", (dir / "c.yaml").string(), "-q"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("| pairwise | beta | 0.2 | 1 |"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("sensitivity.csv"), std::string::npos) << cli.out;
  EXPECT_EQ(std::filesystem::last_write_time(student), stamp);
  const auto bad = metadistill::testing::run_cli({"sweep", (dir / "c.yaml").string(), "--equal", "2,4"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("sensitivity study"), std::string::npos) << bad.err;

  // Another setting in the same folder, or reuse switched off, trains again.
  auto session = open_multilayer_session(c, false);
  bool reused = true;
  auto mo = sensitivity_options(c.options, "pairwise", "beta", 0.8);
  train_multilayer_run(*session, c, mo, 0, student.parent_path(), true, false, &reused);
  EXPECT_TRUE(reused);
  // A run stored with other settings is refused naming them, never reused or continued ...
  expect_error(
      [&] {
        auto other = mo;
        train_multilayer_run(*session, c, other.vid_hidden(4), 0, student.parent_path(), true,
                             false, &reused);
      },
      {"result.json", "vid_hidden: 0 -> 4", "--fresh"});
  // ... and retrained when reuse is off (--fresh).
  train_multilayer_run(*session, c, mo, 0, student.parent_path(), false, false, &reused);
  EXPECT_FALSE(reused);
}

}  // namespace
}  // namespace metadistill
