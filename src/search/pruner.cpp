#include "metadistill/search/pruner.h"

#include <algorithm>
#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

void MedianPrunerOptions::validate() const {
  check(startup_trials >= 0, "median pruner: startup_trials = {}: expected >= 0", startup_trials);
  check(warmup_steps >= 0, "median pruner: warmup_steps = {}: expected >= 0", warmup_steps);
  check(interval_steps >= 1, "median pruner: interval_steps = {}: expected >= 1", interval_steps);
  check(min_trials >= 1, "median pruner: min_trials = {}: expected >= 1", min_trials);
}

double nan_median(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }),
               values.end());
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

MedianPruner::MedianPruner(MedianPrunerOptions options) : options_(options) { options_.validate(); }

bool MedianPruner::should_prune(const std::vector<FrozenTrial>& trials, const FrozenTrial& trial,
                                Direction direction) const {
  std::vector<const FrozenTrial*> complete;
  for (const auto& t : trials)
    if (t.state == TrialState::kComplete && t.number != trial.number) complete.push_back(&t);
  if (complete.empty() || static_cast<int64_t>(complete.size()) < options_.startup_trials)
    return false;
  const int64_t step = trial.last_step();
  if (step < 0 || step < options_.warmup_steps) return false;
  // Check only at the first report within each interval after the warm-up (Optuna's
  // `_is_first_in_interval_step`), so that a trial reporting every step is judged every
  // `interval_steps` steps.
  const int64_t lower =
      (step - options_.warmup_steps) / options_.interval_steps * options_.interval_steps +
      options_.warmup_steps;
  int64_t second_last = -1;
  for (const auto& [s, v] : trial.intermediate)
    if (s != step) second_last = std::max(second_last, s);
  if (second_last >= lower) return false;

  double best = std::nan("");
  for (const auto& [s, v] : trial.intermediate)
    if (!std::isnan(v) && (std::isnan(best) || is_better(v, best, direction))) best = v;
  if (std::isnan(best)) return true;

  std::vector<double> at_step;
  for (const auto* t : complete) {
    auto it = t->intermediate.find(step);
    if (it != t->intermediate.end()) at_step.push_back(it->second);
  }
  if (static_cast<int64_t>(at_step.size()) < options_.min_trials) return false;
  const double median = nan_median(at_step);
  if (std::isnan(median)) return false;
  return is_better(median, best, direction);
}

}  // namespace metadistill
