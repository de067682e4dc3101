#pragma once
/// The Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio, Kégl, NeurIPS 2011;
/// Bergstra, Yamins, Cox, ICML 2013), the search behind the paper's "hyperopt" baseline,
/// implemented as hyperopt and Optuna 3.1 do (univariate: each parameter on its own).
///
/// For trial n+1, with n finished trials:
/// - fewer than `startup_trials` finished: a draw from the prior (random search);
/// - otherwise sort the trials by objective (complete before pruned; pruned ones by their last
///   step, later first, then by last intermediate value) and call the first γ(n) good:
///   γ(n) = min(⌈0.25·√n⌉, 25) (hyperopt) or min(⌈0.1·n⌉, 25) (Optuna);
/// - per parameter, fit l(u) to the good trials' values and g(u) to the others', in internal
///   space u (log x for log parameters): a mixture of Gaussians truncated to [low, high], one
///   kernel per observation plus a prior kernel (mean (low+high)/2, width high−low, weight 1);
///   weights 1 for the newest 25 observations and a linear ramp from 1/m to 1 for older ones
///   (m observations), normalized; each kernel's width is the larger gap to its sorted
///   neighbours (the range ends count as neighbours, except for the outermost kernels), clipped
///   to [(high−low)/min(100, m+2), high−low]; the prior kernel takes part in the neighbour
///   gaps (hyperopt, Optuna 3.1);
/// - draw 24 candidates from l and keep the one maximizing log l(u) − log g(u), the expected
///   improvement criterion of Bergstra et al. 2011, eq. 4 (EI ∝ (γ + g/l·(1−γ))⁻¹).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/search/sampler.h"

namespace metadistill {

/// How many finished trials count as good.
enum class GammaRule {
  /// γ(n) = min(⌈0.25·√n⌉, 25): hyperopt's default, Optuna's `hyperopt_default_gamma`.
  kHyperopt,
  /// γ(n) = min(⌈0.1·n⌉, 25): Optuna's `default_gamma`.
  kOptuna,
};

/// "hyperopt" or "optuna".
std::string to_string(GammaRule rule);
/// Inverse of `to_string`; throws `Error` naming the text otherwise.
GammaRule gamma_rule_from_string(const std::string& text);

/// γ(n): the number of good trials among n finished ones.
int64_t good_count(GammaRule rule, int64_t n);

/// Linear forgetting (Optuna's `default_weights`): for m observations in chronological order,
/// 1 each when m < 25; otherwise a ramp from 1/m to 1 over the oldest m − 25 and 1 for the
/// newest 25. Not normalized.
std::vector<double> forgetting_weights(int64_t m);

/// The standard normal truncated to [a, b] (Optuna's `_truncnorm`, from SciPy), computed in log
/// space so that kernels far from the range stay finite.
namespace truncnorm {
/// log Φ(a), with an asymptotic series for a < −20.
double log_ndtr(double a);
/// log(Φ(b) − Φ(a)), the log mass of [a, b].
double log_gauss_mass(double a, double b);
/// Quantile: the x ∈ [a, b] with (Φ(x) − Φ(a)) / (Φ(b) − Φ(a)) = q.
double ppf(double q, double a, double b);
/// log density at x of N(loc, scale²) truncated to [loc + a·scale, loc + b·scale]:
/// log φ((x − loc)/scale) − log scale − log(Φ(b) − Φ(a)), −∞ outside. With `normalized` false the
/// −log scale term is left out, as Optuna ≤ 3.4 does (optuna issue #5109, fixed by PR #5110): its
/// kernels then do not integrate to 1 and narrow kernels count for less than they should.
double log_pdf(double x, double a, double b, double loc, double scale, bool normalized = true);
}  // namespace truncnorm

/// Options of `TpeSampler`.
struct TpeOptions {
  /// Seed of the per-trial generators (see `trial_seed`).
  uint64_t seed = 0;
  /// Trials drawn from the prior before the estimator is used (Optuna 10, hyperopt 20).
  int64_t startup_trials = 10;
  /// Candidates drawn from l(x) per parameter.
  int64_t candidates = 24;
  /// Good/bad split rule.
  GammaRule gamma = GammaRule::kOptuna;
  /// Weight of the prior kernel before normalization.
  double prior_weight = 1.0;
  /// Clip kernel widths below at (high − low)/min(100, m + 2) (hyperopt's "magic clip").
  bool magic_clip = true;
  /// Let the range ends be neighbours of the outermost kernels too (off in hyperopt and Optuna).
  bool endpoints = false;
  /// Normalized kernel densities (TPE as published, Optuna ≥ 3.5); false reproduces Optuna 3.1,
  /// whose kernels lack the 1/σ factor (see `truncnorm::log_pdf`).
  bool normalized_kernels = true;

  TpeOptions& with_seed(uint64_t v) { seed = v; return *this; }
  TpeOptions& with_startup_trials(int64_t v) { startup_trials = v; return *this; }
  TpeOptions& with_candidates(int64_t v) { candidates = v; return *this; }
  TpeOptions& with_gamma(GammaRule v) { gamma = v; return *this; }
  TpeOptions& with_prior_weight(double v) { prior_weight = v; return *this; }

  /// hyperopt's defaults: 20 start-up trials, γ = ⌈0.25·√n⌉ (Optuna's `hyperopt_parameters()`).
  static TpeOptions hyperopt();
  /// Throws `Error` naming the option when a value is out of range.
  void validate() const;
  nlohmann::json to_json() const;
  static TpeOptions from_json(const nlohmann::json& j);
};

/// A 1-D mixture of truncated Gaussians on [low, high] in internal space (l or g of TPE).
class ParzenEstimator {
 public:
  /// Fits kernels to `observations` (internal values, chronological order); see the header
  /// comment for the weights and widths. `low` < `high` are internal bounds.
  ParzenEstimator(const std::vector<double>& observations, double low, double high,
                  const TpeOptions& options);

  /// Normalized weights, observations first and the prior last.
  const std::vector<double>& weights() const { return weights_; }
  const std::vector<double>& mus() const { return mus_; }
  const std::vector<double>& sigmas() const { return sigmas_; }

  /// log Σ_k w_k · truncnorm_k(u), a log density in internal space (no Jacobian of the log
  /// transform: it would cancel in log l − log g).
  double log_pdf(double u) const;
  /// `n` draws: a kernel by weight (numpy's `choice`: n uniforms), then a value from it by
  /// inverse transform (n more uniforms), as Optuna draws them.
  std::vector<double> sample(SamplerRandom& rng, int64_t n) const;

 private:
  double low_, high_;
  bool normalized_;
  std::vector<double> weights_, mus_, sigmas_;
};

/// The rank key of a finished trial for the good/bad split, lexicographic (Optuna's
/// `_get_observation_pairs`): complete trials (−∞, ±value) come before pruned ones
/// (−last step, ±last intermediate value); the sign makes smaller better.
using TpeScore = std::pair<double, double>;

/// Keys of the finished trials of `trials` (in order), with their indices into `trials`.
std::vector<std::pair<size_t, TpeScore>> tpe_scores(const std::vector<FrozenTrial>& trials,
                                                    Direction direction);

/// Splits positions 0..scores.size()−1 into the `n_good` best (stable on ties) and the rest,
/// both returned in chronological (position) order.
std::pair<std::vector<size_t>, std::vector<size_t>> split_good_bad(
    const std::vector<TpeScore>& scores, int64_t n_good);

/// The univariate TPE sampler.
class TpeSampler : public Sampler {
 public:
  explicit TpeSampler(TpeOptions options = {});
  std::string name() const override { return "tpe"; }
  ParamValues ask(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                  Direction direction, int64_t number) override;
  nlohmann::json to_json() const override;
  const TpeOptions& options() const { return options_; }

  /// One parameter's TPE step: candidates from l = ParzenEstimator(good), the one maximizing
  /// log l − log g (first on ties). Values are internal; draws come from `rng`.
  static double choose(const ParzenEstimator& l, const ParzenEstimator& g, int64_t candidates,
                       const ParamSpec& spec, SamplerRandom& rng);

 private:
  TpeOptions options_;
};

}  // namespace metadistill
