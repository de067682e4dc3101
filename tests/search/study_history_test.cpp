// A study's history (search/study_history.h): best-so-far rows, CSV, JSON and plots.
#include "metadistill/search/study_history.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "metadistill/search/search.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::TempDir;

TEST(SearchHistory, ExportsCsvJsonAndPlots) {
  TempDir dir("search-history");
  SearchSpace space = metaparameter_space();
  Study study = Study::open(dir / "h.db", StudySettings()
                                              .with_name("h")
                                              .with_space(space)
                                              .with_direction(Direction::kMaximize)
                                              .with_objective({{"name", "val-accuracy"}}));
  RandomSampler sampler(2);
  optimize(
      study, sampler,
      [](TrialContext& ctx) {
        if (ctx.number() == 2) throw Error("boom, with a comma");
        return ctx.param("lambda1");
      },
      SearchSettings().with_trials(5));
  const auto rows = study_history(study.trials(), study.direction());
  ASSERT_EQ(rows.size(), 6u);
  // The best so far only rises when maximizing, and skips failed trials.
  for (size_t i = 1; i < rows.size(); ++i)
    if (rows[i].best_so_far && rows[i - 1].best_so_far)
      EXPECT_GE(*rows[i].best_so_far, *rows[i - 1].best_so_far);
  EXPECT_EQ(rows[2].state, "failed");
  EXPECT_EQ(rows[2].best_so_far, rows[1].best_so_far);

  const auto files = export_history(study, dir / "out");
  const std::string csv = read_file(files.csv);
  EXPECT_TRUE(contains_all(csv, {"number,state,value,best_so_far,lambda1,temperature,retry_of",
                                 "\"boom, with a comma\""}));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  const auto j = nlohmann::json::parse(read_file(files.json));
  EXPECT_EQ(j["study"]["direction"], "maximize");
  EXPECT_EQ(j["trials"].size(), 6u);
  EXPECT_TRUE(j["trials"][2]["value"].is_null());
  EXPECT_TRUE(contains_all(read_file(files.script),
                           {"set terminal pngcairo", "set terminal svg", "using 1:4"}));
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    EXPECT_TRUE(contains_all(files.plot_warning, {"gnuplot not found"}));
    GTEST_SKIP() << "gnuplot is not installed: plots not checked";
  }
  EXPECT_EQ(files.plot_warning, "");
  EXPECT_GT(std::filesystem::file_size(files.png), 1000u);
  EXPECT_TRUE(contains_all(read_file(files.svg), {"<svg"}));
}
