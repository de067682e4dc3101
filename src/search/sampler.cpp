#include "metadistill/search/sampler.h"

#include <cmath>

#include "metadistill/search/tpe.h"
#include "metadistill/util/error.h"

namespace metadistill {

std::string to_string(TrialState state) {
  switch (state) {
    case TrialState::kWaiting:
      return "waiting";
    case TrialState::kRunning:
      return "running";
    case TrialState::kComplete:
      return "complete";
    case TrialState::kPruned:
      return "pruned";
    case TrialState::kFailed:
      return "failed";
  }
  return "?";
}

TrialState trial_state_from_string(const std::string& text) {
  for (auto s : {TrialState::kWaiting, TrialState::kRunning, TrialState::kComplete,
                 TrialState::kPruned, TrialState::kFailed})
    if (to_string(s) == text) return s;
  fail("trial state '{}': expected waiting, running, complete, pruned or failed", text);
}

std::string to_string(Direction direction) {
  return direction == Direction::kMinimize ? "minimize" : "maximize";
}

Direction direction_from_string(const std::string& text) {
  if (text == "minimize") return Direction::kMinimize;
  if (text == "maximize") return Direction::kMaximize;
  fail("direction '{}': expected minimize or maximize", text);
}

bool is_better(double a, double b, Direction direction) {
  return direction == Direction::kMinimize ? a < b : a > b;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

uint32_t trial_seed(uint64_t seed, int64_t number) {
  return static_cast<uint32_t>(splitmix64(splitmix64(seed) + static_cast<uint64_t>(number)) &
                               0xFFFFFFFFULL);
}

SamplerRandom::SamplerRandom(uint32_t seed) : mt_(seed) {}

double SamplerRandom::uniform() {
  const uint32_t a = mt_() >> 5, b = mt_() >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

ParamValues RandomSampler::sample_prior(const SearchSpace& space, SamplerRandom& rng) {
  ParamValues x;
  for (const auto& p : space.params()) {
    const double lo = p.internal_low(), hi = p.internal_high();
    // numpy's uniform(lo, hi) = lo + (hi − lo)·u; Optuna keeps the value strictly below `high`.
    // exp(log low) may round below `low`: clamp, so that the value passes the range check.
    const double u = lo + (hi - lo) * rng.uniform();
    x.push_back(std::max(p.low, std::min(p.from_internal(u), std::nextafter(p.high, p.low))));
  }
  return x;
}

ParamValues RandomSampler::ask(const SearchSpace& space, const std::vector<FrozenTrial>&, Direction,
                               int64_t number) {
  SamplerRandom rng(trial_seed(seed_, number));
  return sample_prior(space, rng);
}

nlohmann::json RandomSampler::to_json() const { return {{"name", "random"}, {"seed", seed_}}; }

std::unique_ptr<Sampler> make_sampler(const nlohmann::json& settings) {
  const std::string name = settings.value("name", "");
  if (name == "random") return std::make_unique<RandomSampler>(settings.value("seed", uint64_t{0}));
  if (name == "tpe") return std::make_unique<TpeSampler>(TpeOptions::from_json(settings));
  fail("sampler '{}': expected random or tpe (settings {})", name, settings.dump());
}

}  // namespace metadistill
