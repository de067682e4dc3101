#include "metadistill/search/search.h"

#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

TrialContext::TrialContext(Study& study, FrozenTrial trial, const MedianPruner* pruner)
    : study_(study), trial_(std::move(trial)), pruner_(pruner) {}

double TrialContext::param(const std::string& name) const {
  return trial_.params.at(study_.space().index_of(name));
}

bool TrialContext::report(int64_t step, double value) {
  if (pruned_) return true;
  study_.report(trial_.number, step, value);
  trial_.intermediate[step] = value;
  if (pruner_ != nullptr && pruner_->should_prune(study_.trials(), trial_, study_.direction()))
    pruned_ = true;
  return pruned_;
}

void SearchSettings::validate() const {
  check(sampler == "tpe" || sampler == "random", "search.sampler '{}': expected tpe or random",
        sampler);
  check(trials >= 1, "search.trials = {}: expected >= 1", trials);
  check(startup >= 0, "search.startup = {}: expected >= 0", startup);
  check(objective == "val-loss" || objective == "val-accuracy",
        "search.objective '{}': expected val-loss or val-accuracy", objective);
  check(gamma_rule == "optuna" || gamma_rule == "hyperopt",
        "search.gamma_rule '{}': expected optuna or hyperopt", gamma_rule);
  check(candidates >= 1, "search.candidates = {}: expected >= 1", candidates);
  check(trial_epochs >= 0, "search.trial_epochs = {}: expected >= 0 (0 = the full schedule)",
        trial_epochs);
  check(max_failures >= 1, "search.max_failures = {}: expected >= 1", max_failures);
  pruner.validate();
}

SearchSummary optimize(Study& study, Sampler& sampler, const Objective& objective,
                       const SearchSettings& options, const TrialEndFn& on_trial_end) {
  options.validate();
  const std::optional<MedianPruner> pruner =
      options.prune ? std::optional<MedianPruner>(MedianPruner(options.pruner)) : std::nullopt;
  SearchSummary summary;
  while (true) {
    if (study.counts().failed >= options.max_failures) {
      std::string last;
      int64_t failed = 0;
      for (const auto& t : study.trials())
        if (t.state == TrialState::kFailed) {
          ++failed;
          last = fmt::format("trial {}: {}", t.number, t.message);
        }
      fail("study {}: {} trials failed (limit {}); the last, {}", study.path().string(), failed,
           options.max_failures, last);
    }
    auto claimed = study.ask(sampler, options.trials);
    if (!claimed) break;
    TrialContext ctx(study, *claimed, pruner ? &*pruner : nullptr);
    TrialState state = TrialState::kComplete;
    std::optional<double> value;
    std::string message;
    try {
      const double v = objective(ctx);
      if (ctx.pruned()) {
        state = TrialState::kPruned;
        message = fmt::format("pruned at step {} by the median rule", ctx.trial().last_step());
      } else if (!std::isfinite(v)) {
        state = TrialState::kFailed;
        message = fmt::format("objective value {} is not finite", v);
      } else {
        value = v;
      }
    } catch (const std::exception& e) {
      state = TrialState::kFailed;
      message = e.what();
    }
    study.tell(claimed->number, state, value, message);
    ++summary.ran;
    if (state == TrialState::kComplete) ++summary.complete;
    if (state == TrialState::kPruned) ++summary.pruned;
    if (state == TrialState::kFailed) ++summary.failed;
    sampler.tell(study.trial(claimed->number));
    if (on_trial_end) on_trial_end(study.trial(claimed->number));
  }
  summary.counts = study.counts();
  summary.best = study.best_trial();
  summary.done = summary.counts.finished() >= options.trials && summary.counts.running == 0 &&
                 summary.counts.waiting == 0;
  return summary;
}

}  // namespace metadistill
