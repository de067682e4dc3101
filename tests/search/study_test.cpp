#include "metadistill/search/study.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <csignal>
#include <fstream>
#include <map>
#include <set>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metadistill/search/search.h"
#include "metadistill/search/tpe.h"
#include "metadistill/util/error.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::error_of;
using metadistill::testing::TempDir;

namespace {

StudySettings settings(uint64_t seed = 1) {
  return StudySettings()
      .with_name("s")
      .with_direction(Direction::kMinimize)
      .with_space(metaparameter_space())
      .with_sampler(TpeOptions().with_seed(seed).with_startup_trials(4).to_json())
      .with_objective({{"name", "quadratic"}, {"epochs", 3}});
}

double quadratic(const ParamValues& x) {
  return (x[0] - 0.3) * (x[0] - 0.3) + (std::log10(x[1]) - 0.5) * (std::log10(x[1]) - 0.5);
}

// Runs `body` in a forked child and returns its pid; the child exits with 0 unless `body` throws.
template <typename F>
pid_t fork_worker(F&& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "worker %d: %s\n", static_cast<int>(::getpid()), e.what());
      code = 1;
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

void sql(const std::filesystem::path& path, const std::string& statement) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
}

}  // namespace

TEST(Study, StoresTrialsAndResumesThem) {
  TempDir dir("study");
  const auto path = dir / "sub" / "s.db";  // the folder is created
  TpeSampler sampler(TpeOptions().with_seed(1).with_startup_trials(4));
  {
    Study s = Study::open(path, settings());
    auto t = s.ask(sampler, 3);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->number, 0);
    EXPECT_EQ(t->state, TrialState::kRunning);
    EXPECT_EQ(t->worker, Study::current_worker());
    s.report(0, 1, 0.9);
    s.report(0, 2, NAN);
    s.tell(0, TrialState::kComplete, 0.5);
    auto u = s.ask(sampler, 3);
    s.tell(u->number, TrialState::kFailed, std::nullopt, "diverged");
    s.set_attribute("note", {{"k", 1}});
  }
  Study s = Study::open(path, settings());
  const auto trials = s.trials();
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_EQ(trials[0].state, TrialState::kComplete);
  EXPECT_EQ(*trials[0].value, 0.5);
  EXPECT_EQ(trials[0].intermediate.at(1), 0.9);
  EXPECT_TRUE(std::isnan(trials[0].intermediate.at(2)));
  EXPECT_GT(trials[0].finished, trials[0].started);
  EXPECT_EQ(trials[1].state, TrialState::kFailed);
  EXPECT_EQ(trials[1].message, "diverged");
  EXPECT_FALSE(trials[1].value.has_value());
  EXPECT_EQ(s.attribute("note")->at("k"), 1);
  EXPECT_FALSE(s.attribute("missing").has_value());
  // A failed trial does not count: two more are needed for 3 finished.
  ASSERT_TRUE(s.ask(sampler, 3).has_value());
  ASSERT_TRUE(s.ask(sampler, 3).has_value());
  EXPECT_FALSE(s.ask(sampler, 3).has_value());  // 1 finished + 2 running
  const auto c = s.counts();
  EXPECT_EQ(c.complete, 1);
  EXPECT_EQ(c.running, 2);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(s.best_trial()->number, 0);
}

TEST(Study, RejectsMisuseOfTrials) {
  Study s = Study::open(":memory:", settings());
  RandomSampler sampler(0);
  auto t = s.ask(sampler, 5);
  EXPECT_TRUE(contains_all(error_of([&] { s.tell(t->number, TrialState::kComplete, NAN); }),
                           {"trial 0", "finite"}));
  EXPECT_TRUE(
      contains_all(error_of([&] { s.tell(t->number, TrialState::kRunning); }), {"not running"}));
  s.tell(t->number, TrialState::kPruned);
  EXPECT_TRUE(contains_all(error_of([&] { s.tell(t->number, TrialState::kComplete, 1.0); }),
                           {"trial 0 is pruned, not running"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.report(t->number, 3, 1.0); }), {"not running"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.trial(42); }), {"no trial 42"}));
}

TEST(Study, RefusesForeignAndMismatchedFiles) {
  TempDir dir("study-foreign");
  // Not a database at all.
  const auto text = dir / "notes.db";
  std::ofstream(text) << "lambda1,temperature\n0.5,1\n";
  EXPECT_TRUE(contains_all(error_of([&] { Study::open(text, settings()); }),
                           {text.string(), "not an SQLite database"}));
  // An SQLite database of something else.
  const auto foreign = dir / "foreign.db";
  sql(foreign, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
  EXPECT_TRUE(contains_all(error_of([&] { Study::open(foreign, settings()); }),
                           {foreign.string(), "not a metadistill study", "users"}));
  // A folder.
  EXPECT_TRUE(
      contains_all(error_of([&] { Study::open(dir.path(), settings()); }), {"not a regular file"}));
  // A missing file cannot be loaded (only opened, which creates it).
  EXPECT_TRUE(
      contains_all(error_of([&] { Study::load(dir / "none.db"); }), {"none.db", "no such file"}));
  // A study written by a newer format.
  const auto newer = dir / "newer.db";
  { Study::open(newer, settings()); }
  sql(newer, "UPDATE metadistill_study SET version = 99");
  EXPECT_TRUE(contains_all(error_of([&] { Study::open(newer, settings()); }),
                           {newer.string(), "format version 99"}));
  // Resuming with other settings names the first difference.
  const auto path = dir / "s.db";
  { Study::open(path, settings()); }
  auto other = settings();
  other.direction = Direction::kMaximize;
  EXPECT_TRUE(contains_all(error_of([&] { Study::open(path, other); }),
                           {path.string(), "minimize", "maximize"}));
  other = settings();
  other.space = metaparameter_space("uniform");
  EXPECT_TRUE(contains_all(error_of([&] { Study::open(path, other); }), {"search space"}));
  EXPECT_TRUE(contains_all(error_of([&] { Study::open(path, settings(2)); }),
                           {"sampler.seed = 1", "2 now"}));
  other = settings();
  other.objective["epochs"] = 5;
  EXPECT_TRUE(
      contains_all(error_of([&] { Study::open(path, other); }), {"objective.epochs = 3", "5 now"}));
  EXPECT_EQ(Study::load(path).settings().objective, settings().objective);
}

TEST(Study, WorkerLiveness) {
  EXPECT_TRUE(Study::worker_alive(Study::current_worker()));
  EXPECT_TRUE(Study::worker_alive("some-other-host:1:1"));  // never judged from here
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::string me = Study::current_worker();
  const std::string pid_part = me.substr(0, me.rfind(':'));
  EXPECT_FALSE(Study::worker_alive(pid_part + ":1"));  // same pid, another start time: reused pid
  const pid_t gone = fork_worker([] {});
  wait_for(gone);
  EXPECT_FALSE(Study::worker_alive(fmt::format("{}:{}:1", host, gone)));
}

TEST(Study, CrashedTrialIsFailedAndRetriedWithTheSameParameters) {
  TempDir dir("study-retry");
  const auto path = dir / "s.db";
  const auto options = StudyOptions().with_max_retries(1);
  RandomSampler sampler(3);
  { Study::open(path, settings(), options); }
  // A worker claims a trial and dies without ending it.
  wait_for(fork_worker([&] {
    Study s = Study::open(path, settings(), options);
    s.ask(sampler, 5);
  }));
  Study s = Study::open(path, settings(), options);
  auto retry = s.ask(sampler, 5);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->number, 1);
  EXPECT_EQ(retry->retry_of, 0);
  const auto crashed = s.trial(0);
  EXPECT_EQ(crashed.state, TrialState::kFailed);
  EXPECT_TRUE(contains_all(crashed.message, {"died while the trial was running"}));
  EXPECT_EQ(retry->params, crashed.params);
  // The retry crashes too: with max_retries 1 these parameters are given up.
  s.tell(retry->number, TrialState::kComplete, 1.0);
  wait_for(fork_worker([&] {
    Study w = Study::open(path, settings(), options);
    w.ask(sampler, 5);  // trial 2
  }));
  auto next = s.ask(sampler, 5);  // recovers 2, queues its retry 3, claims it
  EXPECT_EQ(next->number, 3);
  EXPECT_EQ(next->retry_of, 2);
  wait_for(fork_worker([&] {
    Study w = Study::open(path, settings(), options);
    w.ask(sampler, 5);  // trial 4 (3 is still running here)
  }));
  s.tell(3, TrialState::kComplete, 2.0);
  EXPECT_EQ(s.recover_crashed(), 1);  // trial 4 fails, retry 5 queued
  wait_for(fork_worker([&] {
    Study w = Study::open(path, settings(), options);
    w.ask(sampler, 5);  // claims retry 5 and dies
  }));
  EXPECT_EQ(s.recover_crashed(), 1);  // 5 fails; it already is a retry: no further one
  const auto c = s.counts();
  EXPECT_EQ(c.waiting, 0);
  EXPECT_EQ(c.failed, 4);
  EXPECT_EQ(s.trial(5).retry_of, 4);
}

TEST(Study, ProcessesCreatingOneStudyAtOnceAgreeOnIt) {
  TempDir dir("study-create");
  const auto path = dir / "s.db";
  std::vector<pid_t> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(fork_worker([&] {
      Study s = Study::open(path, settings());
      RandomSampler sampler(0);
      for (int k = 0; k < 4; ++k) {
        auto t = s.ask(sampler, 100);
        s.tell(t->number, TrialState::kComplete, quadratic(t->params));
      }
    }));
  for (pid_t w : workers) EXPECT_EQ(wait_for(w), 0);
  Study s = Study::open(path, settings());
  const auto trials = s.trials();
  ASSERT_EQ(trials.size(), 12u);
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].number, static_cast<int64_t>(i));
    EXPECT_EQ(trials[i].state, TrialState::kComplete);
  }
}

TEST(Study, KilledWorkerIsResumedWithoutLostOrDuplicatedTrials) {
  TempDir dir("study-kill");
  const auto path = dir / "s.db";
  const int64_t n = 12;
  { Study::open(path, settings()); }
  // Two workers share the study. The slow one finishes one trial, then stops inside its second
  // (it reports that through a pipe and waits for a signal); the fast one runs the study as far
  // as it can meanwhile; then the slow one is killed (SIGKILL) in the middle of its trial.
  int reached[2];
  ASSERT_EQ(::pipe(reached), 0);
  const pid_t slow = fork_worker([&] {
    ::close(reached[0]);
    Study s = Study::open(path, settings());
    TpeSampler sampler(TpeOptions::from_json(s.settings().sampler));
    int calls = 0;
    optimize(
        s, sampler,
        [&](TrialContext& ctx) {
          if (++calls == 2) {
            const char c = 'x';
            if (::write(reached[1], &c, 1) != 1) ::_exit(3);
            while (true) ::pause();
          }
          return quadratic(ctx.trial().params);
        },
        SearchSettings().with_trials(n));
  });
  ::close(reached[1]);
  char byte = 0;
  const bool in_trial = ::read(reached[0], &byte, 1) == 1;  // 0: the worker ended without stopping
  ::close(reached[0]);
  if (!in_trial) {
    ::kill(slow, SIGKILL);
    wait_for(slow);
  }
  ASSERT_TRUE(in_trial) << "the slow worker never reached its second trial";
  const pid_t fast = fork_worker([&] {
    Study s = Study::open(path, settings());
    TpeSampler sampler(TpeOptions::from_json(s.settings().sampler));
    optimize(
        s, sampler, [&](TrialContext& ctx) { return quadratic(ctx.trial().params); },
        SearchSettings().with_trials(n));
  });
  EXPECT_EQ(wait_for(fast), 0);
  Study watch = Study::open(path, settings());
  const auto before = watch.counts();
  EXPECT_EQ(before.complete, n - 1);  // all but the slow worker's running trial
  EXPECT_EQ(before.running, 1);
  ::kill(slow, SIGKILL);
  const int status = wait_for(slow);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // Re-running the same thing resumes the study (here: whatever the fast worker left).
  TpeSampler sampler(TpeOptions::from_json(watch.settings().sampler));
  const auto summary = optimize(
      watch, sampler, [](TrialContext& ctx) { return quadratic(ctx.trial().params); },
      SearchSettings().with_trials(n));
  EXPECT_TRUE(summary.done);

  const auto trials = watch.trials();
  const auto c = watch.counts();
  EXPECT_EQ(c.complete, n);
  EXPECT_EQ(c.running + c.waiting, 0);
  EXPECT_EQ(c.failed, 1);
  std::set<std::string> workers;
  std::map<int64_t, int> retries_of;
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].number, static_cast<int64_t>(i));  // numbers 0..N−1: none lost
    if (trials[i].retry_of >= 0) {
      ++retries_of[trials[i].retry_of];
      EXPECT_EQ(trials[i].params, trials[trials[i].retry_of].params);
    }
    if (trials[i].state == TrialState::kComplete)
      EXPECT_EQ(*trials[i].value, quadratic(trials[i].params));
    workers.insert(trials[i].worker);
  }
  // The killed trial: failed, retried exactly once with its parameters, the retry complete.
  for (const auto& t : trials)
    if (t.state == TrialState::kFailed) {
      EXPECT_TRUE(contains_all(t.message, {"died", std::to_string(slow)}));
      ASSERT_EQ(retries_of[t.number], 1);
    }
  // No proposal was handed to two workers: parameters differ between all non-retry trials.
  std::set<ParamValues> seen;
  for (const auto& t : trials)
    if (t.retry_of < 0) EXPECT_TRUE(seen.insert(t.params).second) << "trial " << t.number;
  // Both processes claimed trials.
  auto claimed_by = [&](pid_t pid) {
    for (const auto& w : workers)
      if (w.find(fmt::format(":{}:", pid)) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(claimed_by(slow));
  EXPECT_TRUE(claimed_by(fast));
}
