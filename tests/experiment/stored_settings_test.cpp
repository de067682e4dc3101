// Stored runs know the settings that made them (STYLE.md item 19): `experiment` reuses a stored
// run and `distill --resume` continues a checkpoint only when their settings key matches; a
// mismatch is refused naming what differs, `--fresh` starts afresh, and runs stored before
// settings keys are accepted with a warning.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "metadistill/util/files.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::describe;
using metadistill::testing::run_cli;
using metadistill::testing::TempDir;

namespace {

std::string tiny_config(double gamma) {
  return metadistill::testing::synthetic_config(
      "logreg", 60, 1.0, 20, 20, "{val_temperature: 0.1, gamma: " + std::to_string(gamma) + "}",
      "preset: tiny\nruns: 1\n");
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

class StoredSettings : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file_atomic(dir_ / "a.yaml", tiny_config(0.1));
    write_file_atomic(dir_ / "b.yaml", tiny_config(0.2));
  }
  std::string cfg(const char* name) const { return (dir_ / name).string(); }
  std::string out() const { return (dir_ / "exp").string(); }
  metadistill::testing::CliRun run(const std::vector<std::string>& args, bool succeed) {
    auto r = run_cli(args);
    if (succeed)
      EXPECT_EQ(r.exit_code, 0) << describe(args, r);
    else
      EXPECT_NE(r.exit_code, 0) << describe(args, r);
    last_ = describe(args, r);
    return r;
  }
  TempDir dir_{"stored"};
  std::string last_;
};

}  // namespace

TEST_F(StoredSettings, IntegrationExperimentReusesOnlyRunsOfTheSameSettings) {
  const std::vector<std::string> base = {"experiment", cfg("a.yaml"), "--out", out(),
                                         "--methods", "none,gradient", "-q"};
  run(base, true);
  const fs::path none = dir_ / "exp" / "runs" / "none" / "seed0" / "result.json";
  const fs::path gradient = dir_ / "exp" / "runs" / "gradient" / "seed0" / "result.json";
  ASSERT_TRUE(fs::exists(gradient));
  EXPECT_TRUE(read_json(gradient).contains("settings_key"));
  const auto stored_at = fs::last_write_time(gradient);

  // The same settings: every run is reused, nothing is trained again.
  run(base, true);
  EXPECT_EQ(fs::last_write_time(gradient), stored_at);

  // Fewer epochs: refused, naming the setting with its stored and its new value, and --fresh.
  auto fewer = base;
  fewer.insert(fewer.end(), {"--epochs", "40"});
  auto r = run(fewer, false);
  EXPECT_TRUE(contains_all(r.err, {"student.train.epochs: 60 -> 40", none.string(),
                                   gradient.string(), "--fresh"}))
      << last_;
  EXPECT_EQ(fs::last_write_time(gradient), stored_at) << "a refused run was overwritten";

  // Another γ_λ: refused for `gradient` only (`none` does not read it).
  auto other_gamma = base;
  other_gamma[1] = cfg("b.yaml");
  r = run(other_gamma, false);
  EXPECT_TRUE(contains_all(r.err, {"method.settings.gamma: 0.1 -> 0.2", gradient.string()}))
      << last_;
  EXPECT_EQ(r.err.find(none.string()), std::string::npos) << last_;

  // --fresh: trained again with the new settings, which the table then shows.
  fewer.push_back("--fresh");
  run(fewer, true);
  EXPECT_EQ(read_json(gradient)["steps"], 40);
  EXPECT_EQ(read_json(none)["steps"], 40);
}

TEST_F(StoredSettings, IntegrationExperimentAcceptsRunsStoredBeforeSettingsKeysWithAWarning) {
  const std::vector<std::string> args = {"experiment", cfg("a.yaml"), "--out", out(),
                                         "--methods", "none", "-q"};
  run(args, true);
  const fs::path result = dir_ / "exp" / "runs" / "none" / "seed0" / "result.json";
  // As written before settings keys existed (the long experiments in results/).
  auto j = read_json(result);
  j.erase("settings");
  j.erase("settings_key");
  write_file_atomic(result, j.dump(2));
  const auto stored_at = fs::last_write_time(result);
  const auto r = run(args, true);
  EXPECT_TRUE(contains_all(r.err, {result.string(), "stored before settings keys",
                                   "assuming the current settings"}))
      << last_;
  EXPECT_EQ(fs::last_write_time(result), stored_at) << "the stored run was not reused";
}

TEST_F(StoredSettings, IntegrationDistillResumesOnlyACheckpointOfTheSameSettings) {
  const std::vector<std::string> base = {"distill", cfg("a.yaml"), "--out", out(),
                                         "--method", "gradient", "-q"};
  run(base, true);
  const fs::path run_dir = dir_ / "exp" / "distill" / "gradient-seed0";
  ASSERT_TRUE(fs::exists(run_dir / "checkpoint.pt"));
  // Resuming with another γ_λ would mix two runs: refused, naming it.
  auto other = base;
  other[1] = cfg("b.yaml");
  other.push_back("--resume");
  auto r = run(other, false);
  EXPECT_TRUE(contains_all(r.err, {(run_dir / "checkpoint.pt").string(),
                                   "method.settings.gamma: 0.1 -> 0.2", "--fresh"}))
      << last_;
  // The same settings resume (the run is finished: nothing left to train).
  auto same = base;
  same.push_back("--resume");
  run(same, true);
  // --fresh starts afresh with the new settings.
  other.back() = "--fresh";
  run(other, true);
  EXPECT_EQ(read_json(run_dir / "result.json")["settings"]["method"]["settings"]["gamma"], 0.2);
}
