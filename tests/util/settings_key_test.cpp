// Settings keys: equal settings give equal keys whatever their order, and a mismatch names
// every differing setting with its old and new value.
#include <gtest/gtest.h>

#include "metadistill/util/settings_key.h"
#include "test_util.h"

using namespace metadistill;

namespace {

nlohmann::json settings(int64_t epochs, double gamma) {
  return {{"student", {{"model", "logreg"}, {"train", {{"epochs", epochs}, {"lr", 1.0}}}}},
          {"method", {{"name", "gradient"}, {"settings", {{"gamma", gamma}}}}},
          {"seed", 0}};
}

}  // namespace

TEST(SettingsKey, EqualSettingsGiveEqualKeysWhateverTheOrder) {
  nlohmann::json a = {{"x", 1}, {"y", "two"}};
  nlohmann::json b;
  b["y"] = "two";
  b["x"] = 1;
  EXPECT_EQ(settings_key(a), settings_key(b));
  EXPECT_NE(settings_key(a), settings_key(nlohmann::json{{"x", 2}, {"y", "two"}}));
  EXPECT_EQ(settings_key(a).size(), 16u);
}

TEST(SettingsKey, DifferencesNameEveryChangedLeafWithOldAndNewValue) {
  auto stored = settings(500, 0.1), current = settings(100, 0.2);
  current["method"]["settings"]["clip"] = 0.01;
  const auto diff = settings_differences(stored, current);
  ASSERT_EQ(diff.size(), 3u);
  EXPECT_EQ(diff[0], "method.settings.clip: (absent) -> 0.01");
  EXPECT_EQ(diff[1], "method.settings.gamma: 0.1 -> 0.2");
  EXPECT_EQ(diff[2], "student.train.epochs: 500 -> 100");
  EXPECT_TRUE(settings_differences(stored, stored).empty());
}

TEST(SettingsKey, StoredRecordsMatchDifferOrAreLegacy) {
  const auto record = settings_record(settings(500, 0.1));
  EXPECT_EQ(check_stored_settings(record, settings(500, 0.1), "r.json"), StoredSettings::kMatch);
  metadistill::testing::expect_error(
      [&] { check_stored_settings(record, settings(100, 0.1), "r.json"); },
      {"r.json", "other settings", "student.train.epochs: 500 -> 100", "--fresh"});
  // Stored before settings keys: accepted, the caller warns.
  EXPECT_EQ(check_stored_settings(nlohmann::json{{"method", "none"}}, settings(1, 1), "r.json"),
            StoredSettings::kLegacy);
  EXPECT_NE(legacy_settings_warning("r.json").find("stored before settings keys"),
            std::string::npos);
}
