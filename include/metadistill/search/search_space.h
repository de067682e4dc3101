#pragma once
/// The search space of the black-box baselines (DESIGN.md 3.3): named continuous parameters,
/// each uniform on [low, high] or log-uniform (uniform in log x on [log low, log high]).
///
/// The samplers work in the *internal* representation u = x (uniform) or u = log x (log-uniform),
/// as hyperopt and Optuna do; values stored and shown to the user are external (x).
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace metadistill {

/// One parameter's values, in the order of `SearchSpace::params()`.
using ParamValues = std::vector<double>;

/// A continuous parameter: x ∈ [low, high], uniform or log-uniform.
struct ParamSpec {
  std::string name;
  double low = 0.0, high = 1.0;
  /// Log-uniform: the prior is uniform in log x and the samplers work in log space.
  bool log = false;

  /// u = log x for a log parameter, u = x otherwise.
  double to_internal(double x) const;
  /// x = exp u for a log parameter, u otherwise.
  double from_internal(double u) const;
  double internal_low() const { return to_internal(low); }
  double internal_high() const { return to_internal(high); }
  /// True when low ≤ x ≤ high.
  bool contains(double x) const { return x >= low && x <= high; }
  /// "name ~ U(low, high)" or "name ~ logU(low, high)".
  std::string to_string() const;
};

/// An ordered set of continuous parameters with checked ranges.
class SearchSpace {
 public:
  /// Adds x ~ U(low, high). Throws `Error` naming the parameter for a duplicate name, a
  /// non-finite bound, or an empty (low == high) or inverted (low > high) range.
  SearchSpace& add_uniform(const std::string& name, double low, double high);
  /// Adds log x ~ U(log low, log high); the same checks, and low > 0.
  SearchSpace& add_log_uniform(const std::string& name, double low, double high);
  /// Adds a checked parameter (either kind).
  SearchSpace& add(const ParamSpec& spec);

  const std::vector<ParamSpec>& params() const { return params_; }
  size_t size() const { return params_.size(); }
  bool empty() const { return params_.empty(); }
  const ParamSpec& operator[](size_t i) const { return params_.at(i); }
  /// Position of `name`; throws `Error` listing the known names when absent.
  size_t index_of(const std::string& name) const;

  /// Throws `Error` naming `what`, the parameter and its range when `values` has the wrong
  /// length or a value outside its range or not finite.
  void check(const ParamValues& values, const std::string& what) const;

  /// [{"name":..., "low":..., "high":..., "log":...}, ...]
  nlohmann::json to_json() const;
  /// Reads `to_json`'s format; `what` (a file name) appears in errors.
  static SearchSpace from_json(const nlohmann::json& j, const std::string& what);
  /// {"name": value, ...} for `values`.
  nlohmann::json values_to_json(const ParamValues& values) const;

  bool operator==(const SearchSpace& other) const;
  bool operator!=(const SearchSpace& other) const { return !(*this == other); }

 private:
  std::vector<ParamSpec> params_;
};

/// The metaparameter space of the search CLI: λ1 ~ U(0, 1) and T ~ logU(0.1, 10) (the initial
/// draw of DESIGN.md 3.3) or, with `temperature_prior` "uniform", T ~ U(0.1, 10) (the paper's text).
SearchSpace metaparameter_space(const std::string& temperature_prior = "log-uniform");

}  // namespace metadistill
