#include "metadistill/search/tpe.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>

#include "metadistill/util/error.h"

namespace metadistill {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSqrt2 = 1.4142135623730951;  // Python's 2**0.5, as Optuna writes it
// Optuna's lower bound on kernel widths without the magic clip.
constexpr double kEps = 1e-12;

}  // namespace

std::string to_string(GammaRule rule) {
  return rule == GammaRule::kHyperopt ? "hyperopt" : "optuna";
}

GammaRule gamma_rule_from_string(const std::string& text) {
  if (text == "hyperopt") return GammaRule::kHyperopt;
  if (text == "optuna") return GammaRule::kOptuna;
  fail("gamma rule '{}': expected hyperopt or optuna", text);
}

int64_t good_count(GammaRule rule, int64_t n) {
  // Evaluated in floating point exactly as hyperopt and Optuna write it, so that any rounding of
  // 0.1·n or 0.25·√n is theirs too (the parity test checks n = 0..120).
  const double x = static_cast<double>(n);
  const double g =
      rule == GammaRule::kHyperopt ? std::ceil(0.25 * std::sqrt(x)) : std::ceil(0.1 * x);
  return std::min<int64_t>(static_cast<int64_t>(g), 25);
}

std::vector<double> forgetting_weights(int64_t m) {
  if (m <= 0) return {};
  if (m < 25) return std::vector<double>(m, 1.0);
  // numpy.linspace(1/m, 1, m − 25): start + i·step, the last point set to `stop` exactly.
  std::vector<double> w;
  const int64_t k = m - 25;
  const double start = 1.0 / static_cast<double>(m);
  if (k == 1) {
    w.push_back(start);
  } else if (k > 1) {
    const double step = (1.0 - start) / static_cast<double>(k - 1);
    for (int64_t i = 0; i < k; ++i) w.push_back(start + static_cast<double>(i) * step);
    w.back() = 1.0;
  }
  w.insert(w.end(), 25, 1.0);
  return w;
}

namespace truncnorm {

namespace {

// Φ(a) by erf near 0 and erfc in the tails (Optuna's `_ndtr_single`).
double ndtr_single(double a) {
  const double x = a / kSqrt2;
  if (x < -1.0 / kSqrt2) return 0.5 * std::erfc(-x);
  if (x < 1.0 / kSqrt2) return 0.5 + 0.5 * std::erf(x);
  return 1.0 - 0.5 * std::erfc(x);
}

// Φ(a) by erf alone (Optuna's vectorized `_ndtr`, used for the central mass).
double ndtr(double a) { return 0.5 + 0.5 * std::erf(a / kSqrt2); }

// log(p − q) from log p > log q.
double log_diff(double log_p, double log_q) { return log_p + std::log1p(-std::exp(log_q - log_p)); }

// numpy's logaddexp.
double log_add(double x, double y) {
  if (x == y) return x + M_LN2;
  const double d = x - y;
  if (d > 0) return x + std::log1p(std::exp(-d));
  if (d <= 0) return y + std::log1p(std::exp(d));
  return d;  // NaN
}

// The x with log Φ(x) = y, by 100 bisection steps on [−100, 100] (Optuna's `_ndtri_exp`).
double ndtri_exp(double y) {
  double a = -100.0, b = 100.0, m = 0.0;
  if (log_ndtr(a) > y) std::swap(a, b);
  for (int i = 0; i < 100; ++i) {
    m = (a + b) / 2;
    if (log_ndtr(m) < y)
      a = m;
    else
      b = m;
  }
  return m;
}

}  // namespace

double log_ndtr(double a) {
  // log Φ(a) ≈ −Φ(−a) for large a; for very negative a the asymptotic series of the Mills ratio,
  // summed until it stops changing.
  if (a > 6) return -ndtr_single(-a);
  if (a > -20) return std::log(ndtr_single(a));
  const double log_lhs = -0.5 * a * a - std::log(-a) - 0.5 * std::log(2 * M_PI);
  double last_total = 0.0, rhs = 1.0, numerator = 1.0, denom_factor = 1.0;
  const double denom_cons = 1 / (a * a);
  double sign = 1;
  for (int i = 1; std::abs(last_total - rhs) > DBL_EPSILON; ++i) {
    last_total = rhs;
    sign = -sign;
    denom_factor *= denom_cons;
    numerator *= 2 * i - 1;
    rhs += sign * numerator * denom_factor;
  }
  return log_lhs + std::log(rhs);
}

double log_gauss_mass(double a, double b) {
  // Work in the left tail, where Φ is accurate; the central case avoids cancellation near 1.
  if (b <= 0) return log_diff(log_ndtr(b), log_ndtr(a));
  if (a > 0) return log_diff(log_ndtr(-a), log_ndtr(-b));
  return std::log1p(-ndtr(a) - ndtr(-b));
}

double ppf(double q, double a, double b) {
  if (a == b) return std::nan("");
  if (q == 0) return a;
  if (q == 1) return b;
  if (a < 0) return ndtri_exp(log_add(log_ndtr(a), std::log(q) + log_gauss_mass(a, b)));
  return -ndtri_exp(log_add(log_ndtr(-b), std::log1p(-q) + log_gauss_mass(a, b)));
}

double log_pdf(double x, double a, double b, double loc, double scale, bool normalized) {
  const double z = (x - loc) / scale;
  if (a == b) return std::nan("");
  if (z < a || z > b) return -kInf;
  double out = -(z * z) / 2.0 - std::log(std::sqrt(2 * M_PI)) - log_gauss_mass(a, b);
  if (normalized) out -= std::log(scale);
  return out;
}

}  // namespace truncnorm

TpeOptions TpeOptions::hyperopt() {
  TpeOptions o;
  o.startup_trials = 20;
  o.gamma = GammaRule::kHyperopt;
  return o;
}

void TpeOptions::validate() const {
  check(startup_trials >= 0, "TPE: startup_trials = {}: expected >= 0", startup_trials);
  check(candidates >= 1, "TPE: candidates = {}: expected >= 1", candidates);
  check(std::isfinite(prior_weight) && prior_weight > 0,
        "TPE: prior_weight = {}: expected a positive number", prior_weight);
}

nlohmann::json TpeOptions::to_json() const {
  return {{"name", "tpe"},
          {"seed", seed},
          {"startup_trials", startup_trials},
          {"candidates", candidates},
          {"gamma", to_string(gamma)},
          {"prior_weight", prior_weight},
          {"magic_clip", magic_clip},
          {"endpoints", endpoints},
          {"normalized_kernels", normalized_kernels}};
}

TpeOptions TpeOptions::from_json(const nlohmann::json& j) {
  TpeOptions o;
  try {
    o.seed = j.value("seed", o.seed);
    o.startup_trials = j.value("startup_trials", o.startup_trials);
    o.candidates = j.value("candidates", o.candidates);
    o.gamma = gamma_rule_from_string(j.value("gamma", to_string(o.gamma)));
    o.prior_weight = j.value("prior_weight", o.prior_weight);
    o.magic_clip = j.value("magic_clip", o.magic_clip);
    o.endpoints = j.value("endpoints", o.endpoints);
    o.normalized_kernels = j.value("normalized_kernels", o.normalized_kernels);
  } catch (const nlohmann::json::exception& e) {
    fail("TPE settings {}: {}", j.dump(), e.what());
  }
  o.validate();
  return o;
}

ParzenEstimator::ParzenEstimator(const std::vector<double>& observations, double low, double high,
                                 const TpeOptions& options)
    : low_(low), high_(high), normalized_(options.normalized_kernels) {
  check(low < high, "Parzen estimator: range [{}, {}]: expected low < high", low, high);
  const size_t n = observations.size();
  // Weights: linear forgetting of old observations, then the prior's weight, normalized.
  weights_ = forgetting_weights(static_cast<int64_t>(n));
  weights_.push_back(options.prior_weight);
  const double total = std::accumulate(weights_.begin(), weights_.end(), 0.0);
  for (auto& w : weights_) w /= total;

  mus_ = observations;
  mus_.push_back(0.5 * (low + high));
  const size_t m = mus_.size();
  // Widths: the larger gap to the sorted neighbours, with the range ends as outer neighbours.
  // The order of tied values decides which tie gets which gap: a stable sort keeps it
  // chronological (numpy's default quicksort leaves it unspecified).
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t i, size_t j) { return mus_[i] < mus_[j]; });
  std::vector<double> s(m + 2);
  s[0] = low;
  for (size_t i = 0; i < m; ++i) s[i + 1] = mus_[order[i]];
  s[m + 1] = high;
  std::vector<double> sorted_sigmas(m);
  for (size_t i = 0; i < m; ++i) sorted_sigmas[i] = std::max(s[i + 1] - s[i], s[i + 2] - s[i + 1]);
  if (!options.endpoints && s.size() >= 4) {
    sorted_sigmas[0] = s[2] - s[1];
    sorted_sigmas[m - 1] = s[m] - s[m - 1];
  }
  sigmas_.assign(m, 0.0);
  for (size_t i = 0; i < m; ++i) sigmas_[order[i]] = sorted_sigmas[i];
  const double max_sigma = 1.0 * (high - low);
  const double min_sigma = options.magic_clip
                               ? 1.0 * (high - low) / std::min(100.0, 1.0 + static_cast<double>(m))
                               : kEps;
  for (auto& sg : sigmas_) sg = std::clamp(sg, min_sigma, max_sigma);
  sigmas_[n] = 1.0 * (high - low);  // the prior kernel spans the range
}

double ParzenEstimator::log_pdf(double u) const {
  std::vector<double> terms(mus_.size());
  double top = -kInf;
  for (size_t k = 0; k < mus_.size(); ++k) {
    const double a = (low_ - mus_[k]) / sigmas_[k], b = (high_ - mus_[k]) / sigmas_[k];
    terms[k] =
        truncnorm::log_pdf(u, a, b, mus_[k], sigmas_[k], normalized_) + std::log(weights_[k]);
    top = std::max(top, terms[k]);
  }
  if (!std::isfinite(top)) return top;
  double sum = 0.0;
  for (double t : terms) sum += std::exp(t - top);
  return std::log(sum) + top;
}

std::vector<double> ParzenEstimator::sample(SamplerRandom& rng, int64_t n) const {
  // numpy's choice(len(w), n, p=w): cdf = cumsum(w)/total, index = searchsorted(cdf, u, 'right').
  std::vector<double> cdf(weights_.size());
  std::partial_sum(weights_.begin(), weights_.end(), cdf.begin());
  const double last = cdf.back();
  for (auto& c : cdf) c /= last;
  std::vector<size_t> active(n);
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.uniform();
    active[i] = std::min<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin(),
                                 weights_.size() - 1);
  }
  // Then one uniform per draw, mapped through the chosen kernel's truncated quantile function.
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const double mu = mus_[active[i]], sigma = sigmas_[active[i]];
    const double q = rng.uniform();
    out[i] = truncnorm::ppf(q, (low_ - mu) / sigma, (high_ - mu) / sigma) * sigma + mu;
  }
  return out;
}

std::vector<std::pair<size_t, TpeScore>> tpe_scores(const std::vector<FrozenTrial>& trials,
                                                    Direction direction) {
  const double sign = direction == Direction::kMinimize ? 1.0 : -1.0;
  std::vector<std::pair<size_t, TpeScore>> out;
  for (size_t i = 0; i < trials.size(); ++i) {
    const auto& t = trials[i];
    if (t.state == TrialState::kComplete && t.value) {
      out.push_back({i, {-kInf, sign * *t.value}});
    } else if (t.state == TrialState::kPruned) {
      // A pruned trial ranks by how far it got, then by its last intermediate value.
      if (t.intermediate.empty()) {
        out.push_back({i, {1.0, 0.0}});
      } else {
        const auto& [step, v] = *t.intermediate.rbegin();
        out.push_back({i, {-static_cast<double>(step), std::isnan(v) ? kInf : sign * v}});
      }
    }
  }
  return out;
}

std::pair<std::vector<size_t>, std::vector<size_t>> split_good_bad(
    const std::vector<TpeScore>& scores, int64_t n_good) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t i, size_t j) { return scores[i] < scores[j]; });
  const size_t k = std::min<size_t>(std::max<int64_t>(n_good, 0), order.size());
  std::vector<size_t> good(order.begin(), order.begin() + k), bad(order.begin() + k, order.end());
  std::sort(good.begin(), good.end());
  std::sort(bad.begin(), bad.end());
  return {good, bad};
}

TpeSampler::TpeSampler(TpeOptions options) : options_(options) { options_.validate(); }

nlohmann::json TpeSampler::to_json() const { return options_.to_json(); }

double TpeSampler::choose(const ParzenEstimator& l, const ParzenEstimator& g, int64_t candidates,
                          const ParamSpec& spec, SamplerRandom& rng) {
  const auto draws = l.sample(rng, candidates);
  double best_u = 0.0, best_score = -kInf;
  bool first = true;
  for (double u : draws) {
    // Scored as Optuna scores them: back to the external value and into internal space again.
    const double x = spec.from_internal(u);
    const double v = spec.to_internal(x);
    const double score = l.log_pdf(v) - g.log_pdf(v);
    if (first || score > best_score) {
      best_score = score;
      best_u = u;
      first = false;
    }
  }
  return best_u;
}

ParamValues TpeSampler::ask(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                            Direction direction, int64_t number) {
  const auto scored = tpe_scores(trials, direction);
  const int64_t n = static_cast<int64_t>(scored.size());
  SamplerRandom rng(trial_seed(options_.seed, number));
  if (n < options_.startup_trials) return RandomSampler::sample_prior(space, rng);

  std::vector<TpeScore> scores;
  for (const auto& s : scored) scores.push_back(s.second);
  const auto [good, bad] = split_good_bad(scores, good_count(options_.gamma, n));
  ParamValues x;
  for (size_t p = 0; p < space.size(); ++p) {
    const auto& spec = space[p];
    std::vector<double> below, above;
    for (size_t i : good) below.push_back(spec.to_internal(trials[scored[i].first].params.at(p)));
    for (size_t i : bad) above.push_back(spec.to_internal(trials[scored[i].first].params.at(p)));
    ParzenEstimator l(below, spec.internal_low(), spec.internal_high(), options_);
    ParzenEstimator g(above, spec.internal_low(), spec.internal_high(), options_);
    const double u = choose(l, g, options_.candidates, spec, rng);
    // Rounding in exp/log may step a hair outside the range; the study checks every value.
    x.push_back(std::clamp(spec.from_internal(u), spec.low, spec.high));
  }
  return x;
}

}  // namespace metadistill
