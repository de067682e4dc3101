#pragma once
/// Trials and the sampler interface of the black-box search baselines (DESIGN.md 3.3), and the
/// plain random sampler.
///
/// A sampler is a strategy behind one ask/tell interface (STYLE.md item 6): `ask` proposes the
/// parameters of trial `number` from the study's trials so far, `tell` hears how a trial ended.
/// The samplers here keep no state between calls: everything they need is in the trial history
/// (kept by `Study`), and their random draws come from a generator seeded by (seed, trial number).
/// A study therefore resumes after a crash, or is shared by several processes, with the same
/// proposals it would have made in one uninterrupted run.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/search/search_space.h"

namespace metadistill {

/// Life of a trial: waiting (a retry queued for a worker), running, and one of the ends.
enum class TrialState { kWaiting, kRunning, kComplete, kPruned, kFailed };

/// "waiting", "running", "complete", "pruned", "failed".
std::string to_string(TrialState state);
/// Inverse of `to_string`; throws `Error` naming the text otherwise.
TrialState trial_state_from_string(const std::string& text);

/// Whether the objective is minimized (a loss) or maximized (an accuracy).
enum class Direction { kMinimize, kMaximize };
/// "minimize" or "maximize".
std::string to_string(Direction direction);
/// Inverse of `to_string`; throws `Error` naming the text otherwise.
Direction direction_from_string(const std::string& text);
/// True when `a` is strictly better than `b` in `direction`.
bool is_better(double a, double b, Direction direction);

/// A trial as stored: parameters, state, objective value, per-step intermediate values, timing.
struct FrozenTrial {
  /// 0-based, unique within a study, in order of creation.
  int64_t number = -1;
  TrialState state = TrialState::kRunning;
  /// External values, in the order of the study's search space.
  ParamValues params;
  /// Objective value of a complete trial.
  std::optional<double> value;
  /// Intermediate values by step (for the distillation search: validation metric by epoch).
  std::map<int64_t, double> intermediate;
  /// The trial whose parameters this one retries (a crashed trial), or -1.
  int64_t retry_of = -1;
  /// Worker that ran it: "host:pid:start-ticks" (see `Study`).
  std::string worker;
  /// Unix times (seconds) of the start and the end (0 while unknown), and the run time.
  double started = 0.0, finished = 0.0;
  /// Why a trial failed or was pruned.
  std::string message;

  bool finished_state() const {
    return state == TrialState::kComplete || state == TrialState::kPruned;
  }
  /// The last reported step, or -1.
  int64_t last_step() const { return intermediate.empty() ? -1 : intermediate.rbegin()->first; }
};

/// Seed of trial `number`'s own generator: splitmix64(splitmix64(seed) + number), low 32 bits
/// (numpy's RandomState takes 32-bit seeds; the golden script derives the same seeds).
uint32_t trial_seed(uint64_t seed, int64_t number);

/// numpy's legacy RandomState restricted to what the samplers draw: MT19937 initialized by
/// init_genrand(seed) and `random_sample` (53-bit uniform doubles in [0, 1)). Matching numpy
/// lets the tests replay Optuna's samplers draw for draw.
class SamplerRandom {
 public:
  explicit SamplerRandom(uint32_t seed);
  /// numpy's random_sample(): ((a >> 5)·2^26 + (b >> 6)) / 2^53 from two 32-bit draws.
  double uniform();

 private:
  std::mt19937 mt_;  // std::mt19937(seed) is MT19937's init_genrand(seed)
};

/// A search strategy: proposes parameters from the trial history.
class Sampler {
 public:
  virtual ~Sampler() = default;
  /// Registry name ("random", "tpe").
  virtual std::string name() const = 0;
  /// Parameters for trial `number`, inside `space`, given every trial of the study so far (any
  /// state; the samplers learn from the complete and pruned ones).
  virtual ParamValues ask(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                          Direction direction, int64_t number) = 0;
  /// Hears that `trial` ended. The samplers here read the history in `ask` and ignore this.
  virtual void tell(const FrozenTrial& trial) {}
  /// Settings, stored with a study so that a resumed study uses the same sampler.
  virtual nlohmann::json to_json() const = 0;
};

/// Independent uniform draws from the prior: u ~ U(internal low, internal high) per parameter,
/// x = u or exp u, as Optuna's RandomSampler (x kept below `high`). Random search in the paper.
class RandomSampler : public Sampler {
 public:
  explicit RandomSampler(uint64_t seed = 0) : seed_(seed) {}
  std::string name() const override { return "random"; }
  ParamValues ask(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                  Direction direction, int64_t number) override;
  nlohmann::json to_json() const override;

  /// One prior draw with `rng` (also TPE's start-up draw).
  static ParamValues sample_prior(const SearchSpace& space, SamplerRandom& rng);

 private:
  uint64_t seed_;
};

/// Builds a sampler from its `to_json()` settings; throws `Error` naming the sampler otherwise.
std::unique_ptr<Sampler> make_sampler(const nlohmann::json& settings);

}  // namespace metadistill
