#include "metadistill/experiment/search_run.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// The authors' synthetic data with a short student schedule: one training takes a fraction of a
// second.
Config tiny_config(const TempDir& dir) {
  Config c = default_config();
  c.out = dir.path().string();
  c.teacher.trainer.epochs = 3000;
  c.student.trainer.epochs = 200;
  c.student.trainer.eval_every = 20;
  c.resolve_paths();
  return c;
}

}  // namespace

TEST(SearchRun, IntegrationTrialsThenRetrainAndResumeWithoutTraining) {
  TempDir dir("searchrun");
  const Config c = tiny_config(dir);
  const Prepared p = prepare(c);
  ASSERT_TRUE(p.data.val_is_test);  // the search must still validate on the validation rows
  SearchRunOptions o = SearchRunOptions()
                           .with_search(SearchSettings()
                                            .with_sampler("tpe")
                                            .with_trials(4)
                                            .with_startup(2)
                                            .with_trial_epochs(100))
                           .with_seed(3)
                           .with_study(dir / "s" / "study.db")
                           .with_dir(dir / "s");
  std::vector<std::string> started;
  o.on_training_start = [&](const std::string& phase, const std::filesystem::path&, int64_t epochs) {
    started.push_back(phase + ":" + std::to_string(epochs));
  };
  const SearchRunResult r = run_search(c, p, o);
  EXPECT_EQ(r.summary.ran, 4);
  ASSERT_EQ(r.trials.size(), 4u);
  ASSERT_TRUE(r.summary.best.has_value());
  // The best trial has the lowest validation loss, and its λ is what was retrained.
  for (const auto& t : r.trials) {
    ASSERT_EQ(t.state, TrialState::kComplete);
    EXPECT_GE(*t.value, *r.summary.best->value);
  }
  EXPECT_DOUBLE_EQ(r.best.lambda1, r.summary.best->params[0]);
  ASSERT_TRUE(r.retrain.has_value());
  EXPECT_FALSE(r.retrain->stored);
  EXPECT_EQ(r.retrain->trial, r.summary.best->number);
  EXPECT_EQ(r.retrain->train_rows, p.data.train_idx.numel() + p.data.val_idx.numel());
  EXPECT_EQ(r.retrain->train.steps, 200);       // the full schedule, not the trials' 100
  EXPECT_EQ(r.retrain->train.history.size(), 10u);  // evaluated every 20 epochs
  EXPECT_EQ(started, (std::vector<std::string>{"trial 0:100", "trial 1:100", "trial 2:100",
                                               "trial 3:100", "retrain:200"}));
  // Trials trained 100 steps on D_train with the trial's λ; the objective is the best val loss
  // of the trial's evaluated epochs, which the trial folder records.
  const auto metrics = read_file(dir / "s" / "trial-0" / "metrics.csv");
  EXPECT_NE(metrics.find("\n100,"), std::string::npos) << metrics;
  EXPECT_GT(r.seconds, r.retrain->train.seconds);

  // Again: nothing is trained, the retrain comes from the study.
  started.clear();
  const SearchRunResult again = run_search(c, p, o);
  EXPECT_EQ(again.summary.ran, 0);
  ASSERT_TRUE(again.retrain.has_value());
  EXPECT_TRUE(again.retrain->stored);
  EXPECT_TRUE(started.empty());
  EXPECT_DOUBLE_EQ(again.retrain->train.final_test_accuracy, r.retrain->train.final_test_accuracy);
  EXPECT_EQ(again.retrain->train.history.size(), r.retrain->train.history.size());
  EXPECT_NEAR(again.seconds, r.seconds, 1e-6 + 1e-9 * r.seconds);

  // More trials on the same study: only the missing ones run, then a new retrain if the best
  // changed.
  o.search.trials = 6;
  const SearchRunResult more = run_search(c, p, o);
  EXPECT_EQ(more.summary.ran, 2);
  EXPECT_EQ(more.trials.size(), 6u);
}

TEST(SearchRun, IntegrationTheSameSeedGivesTheSameSearch) {
  TempDir dir("searchseed");
  const Config c = tiny_config(dir);
  const Prepared p = prepare(c);
  auto run = [&](const std::string& name, uint64_t seed) {
    return run_search(c, p,
                      SearchRunOptions()
                          .with_search(SearchSettings().with_sampler("random").with_trials(3).with_trial_epochs(50))
                          .with_seed(seed)
                          .with_study(dir / name / "study.db")
                          .with_dir(dir / name));
  };
  const auto a = run("a", 1), b = run("b", 1), other = run("c", 2);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a.trials[i].params, b.trials[i].params);
    EXPECT_DOUBLE_EQ(*a.trials[i].value, *b.trials[i].value);
  }
  EXPECT_NE(a.trials[0].params, other.trials[0].params);
  EXPECT_DOUBLE_EQ(a.retrain->train.final_test_accuracy, b.retrain->train.final_test_accuracy);
}

TEST(SearchRun, IntegrationBudgetRunsTrialsUntilSpentAndReportsTheBestTrial) {
  TempDir dir("searchbudget");
  Config c = tiny_config(dir);
  const Prepared p = prepare(c);
  SearchRunOptions o = SearchRunOptions()
                           .with_search(SearchSettings().with_sampler("tpe").with_startup(2).with_trial_epochs(100))
                           .with_budget_seconds(1.0)
                           .with_study(dir / "b" / "study.db")
                           .with_dir(dir / "b");
  const SearchRunResult r = run_search(c, p, o);
  EXPECT_GE(r.summary.ran, 2);  // a 100-step logistic regression takes well under 0.5 s
  EXPECT_GE(r.seconds, 1.0);    // runs until the budget is spent...
  double before_last = 0;
  for (size_t i = 0; i + 1 < r.trials.size(); ++i)
    before_last += r.trials[i].finished - r.trials[i].started;
  EXPECT_LT(before_last, 1.0);  // ...and starts no trial after that
  ASSERT_TRUE(r.retrain.has_value());
  EXPECT_EQ(r.retrain->trial, r.summary.best->number);
  // No retrain: the reported student is the best trial's own (D_train only, trial schedule).
  EXPECT_FALSE(std::filesystem::exists(dir / "b" / "retrain"));
  EXPECT_EQ(r.retrain->train_rows, p.data.train_idx.numel());
  const auto best_dir = dir / "b" / ("trial-" + std::to_string(r.summary.best->number));
  const auto j = nlohmann::json::parse(read_file(best_dir / "result.json"));
  EXPECT_DOUBLE_EQ(r.retrain->train.final_test_accuracy, j.at("final_test_accuracy").get<double>());
  // The budget is spent: running again adds no trial.
  const SearchRunResult again = run_search(c, p, o);
  EXPECT_EQ(again.summary.ran, 0);
  EXPECT_EQ(again.trials.size(), r.trials.size());
}

TEST(SearchRun, OptionsAndMissingValidationSplitAreErrors) {
  TempDir dir("searchopt");
  SearchRunOptions o = SearchRunOptions().with_study(dir / "s.db").with_dir(dir / "s");
  o.validate();
  auto with = [&](SearchSettings s) { return SearchRunOptions(o).with_search(std::move(s)); };
  expect_error([&] { with(SearchSettings().with_trials(0)).validate(); }, {"search.trials", "0"});
  expect_error([&] { with(SearchSettings().with_sampler("grid")).validate(); }, {"grid", "tpe"});
  expect_error([&] { with(SearchSettings().with_objective("test-acc")).validate(); },
               {"test-acc", "val-loss"});
  expect_error([&] { with(SearchSettings().with_max_failures(0)).validate(); },
               {"search.max_failures", "0"});
  expect_error([&] { SearchRunOptions(o).with_budget_seconds(-1).validate(); },
               {"budget_seconds", "-1"});
  EXPECT_TRUE(SearchSettings().with_trials(5).with_startup(5).tpe_is_random_search());
  EXPECT_FALSE(SearchSettings().with_trials(6).with_startup(5).tpe_is_random_search());
  EXPECT_FALSE(SearchSettings().with_sampler("random").with_trials(5).with_startup(5).tpe_is_random_search());
  EXPECT_TRUE(is_search_method("tpe"));
  EXPECT_TRUE(is_search_method("random-search"));
  EXPECT_FALSE(is_search_method("random"));

  // The config's search section becomes the options of the experiment methods.
  Config c = default_config();
  c.search.trials = 7;
  c.search.startup = 3;
  c.search.objective = "val-accuracy";
  c.search.trial_epochs = 11;
  c.budget.seconds = 2.5;
  const auto t = search_options_for(c, "tpe", 4, dir / "run");
  EXPECT_EQ(t.search.sampler, "tpe");
  EXPECT_EQ(t.search.trials, 7);
  EXPECT_EQ(t.search.startup, 3);
  EXPECT_EQ(t.search.objective, "val-accuracy");
  EXPECT_EQ(t.search.trial_epochs, 11);
  EXPECT_EQ(t.seed, 4u);
  EXPECT_DOUBLE_EQ(t.budget_seconds, 2.5);
  EXPECT_EQ(t.study, dir / "run" / "study.db");
  EXPECT_EQ(search_options_for(c, "random-search", 0, dir.path()).search.sampler, "random");
  expect_error([&] { search_options_for(c, "gradient", 0, dir.path()); }, {"gradient", "tpe"});
  // Different samplers' studies differ, so that one file is never resumed by the other.
  EXPECT_NE(search_study_settings(c, t).sampler,
            search_study_settings(c, search_options_for(c, "random-search", 4, dir.path())).sampler);
}
