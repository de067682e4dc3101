#pragma once
/// The domain of a metaparameter vector m (DESIGN.md 3.3–3.5): one named component per
/// metaparameter, each with its domain, the coordinates a method steps in, its projection and
/// its initial draw. One space serves every loss head:
/// - the Hinton loss: λ1 ∈ [0, 1] (interval) and T ∈ [0.1, 10] (log-interval), `hinton_space`;
/// - multi-layer VID: the pair weights λij on the simplex and β ∈ [β_min, β_max], `vid_space`.
///
/// Domains, and the map from a component's unconstrained coordinate c to its value v when the
/// component is reparametrized (a projected component steps v itself and is clamped back):
/// - interval [lo, hi]:     v = lo + (hi − lo)·σ(c), kept (hi − lo)·1e-6 inside the bounds so that
///                          the inverse (a logit) stays finite; drawn uniformly;
/// - log-interval [lo, hi]: v = lo + softplus(c), capped at hi (softplus has slope → 1, so large
///                          values move as in the projected domain, and v stays above lo); drawn
///                          log-uniformly, log10 v ~ U(log10 lo, log10 hi);
/// - simplex (a group):     v = softmax(c) over the group's components (every vi > 0, Σ vi = 1;
///                          always reparametrized, projection is onto the simplex); drawn as
///                          ui / Σ u with ui ~ U(0, 1).
#include <cstddef>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// What values a component takes.
enum class MetaDomain { kInterval, kLogInterval, kSimplex };

/// One named component of a metaparameter vector.
struct MetaComponent {
  std::string name;
  MetaDomain domain = MetaDomain::kInterval;
  /// Bounds of an interval or log-interval (0 and 1 for a simplex member).
  double lo = 0, hi = 1;
  /// Steps on the unconstrained coordinate (see the header) instead of the value itself.
  bool reparametrized = false;
  /// Simplex members: the index of their group's first component (equal for one group).
  size_t group = 0;
};

/// The components of a metaparameter vector, in order, and what can be done with values in it.
/// Values and coordinates are vectors of `size()` doubles in component order.
class MetaSpace {
 public:
  /// Appends a component; throws `Error` for a repeated name or lo ≥ hi (lo > 0 for a
  /// log-interval).
  MetaSpace& interval(const std::string& name, double lo, double hi, bool reparametrized = false);
  MetaSpace& log_interval(const std::string& name, double lo, double hi,
                          bool reparametrized = false);
  /// Appends a simplex group of `names.size()` ≥ 1 components (always reparametrized by softmax).
  MetaSpace& simplex(const std::vector<std::string>& names);

  size_t size() const { return components_.size(); }
  const std::vector<MetaComponent>& components() const { return components_; }
  const MetaComponent& operator[](size_t i) const { return components_.at(i); }
  /// Index of the component `name`; throws `Error` listing the names for an unknown one.
  size_t index(const std::string& name) const;
  std::vector<std::string> names() const;

  /// Throws `Error` naming `what`, the component and its value when `values` has the wrong size,
  /// a value is not finite or lies outside its domain (a simplex group must sum to 1 within 1e-9).
  void validate(const std::vector<double>& values, const std::string& what) const;
  /// The nearest point of the domain the coordinates reach: intervals clamped (a reparametrized
  /// one inside its edges), a simplex group projected onto the simplex in the Euclidean norm.
  std::vector<double> project(const std::vector<double>& values) const;

  /// The coordinates a method steps in: the value of a projected component (clamped to its
  /// domain), the inverse map of a reparametrized one (a simplex group: log vi, defined up to a
  /// constant).
  std::vector<double> to_coordinates(const std::vector<double>& values) const;
  /// The values of `coordinates` (projected components clamped, reparametrized ones mapped).
  std::vector<double> from_coordinates(const std::vector<double>& coordinates) const;
  /// The coordinates a stepping method keeps after a step to `coordinates`: a projected component
  /// clamped to its domain, a reparametrized interval mapped to its value and back (a coordinate
  /// past the edge where the value is capped returns to it), a simplex group as given (a shift
  /// does not change its values). `from_coordinates` gives the same values for both.
  std::vector<double> settle(const std::vector<double>& coordinates) const;
  /// The same map on a tensor [size()] of coordinates, differentiable (a loss head can take the
  /// coordinates and let autograd do the chain rule).
  torch::Tensor from_coordinates(const torch::Tensor& coordinates) const;
  /// Chain rule: the gradient with respect to the coordinates of a function whose gradient with
  /// respect to the values at `values` is `gradient` (dv/dc ⊙ g; for a simplex group
  /// v ⊙ (g − ⟨v, g⟩)).
  std::vector<double> chain_rule(const std::vector<double>& values,
                                 const std::vector<double>& gradient) const;

  /// The initial draw from one uniform u ∈ [0, 1) per component (see the header): the caller's
  /// generator supplies them, so a method keeps its own stream of draws.
  std::vector<double> draw(const std::vector<double>& uniforms) const;
  /// The coordinates of that draw; a simplex group's are log ui, which softmax normalizes.
  std::vector<double> draw_coordinates(const std::vector<double>& uniforms) const;

 private:
  MetaSpace& add(MetaComponent c);
  std::vector<MetaComponent> components_;
};

/// [λ1, T] of the Hinton loss: λ1 ∈ [0, 1], T ∈ [0.1, 10] (Metaparameters::kMinTemperature,
/// kMaxTemperature); `reparametrized`: λ1 = σ(a), T = 0.1 + softplus(b).
MetaSpace hinton_space(bool reparametrized = false);

/// [λ_1..λ_P, β] of multi-layer VID: the weights of the P pairs (components lambda_1..lambda_P)
/// on the simplex, then β, the weight of CE, in [beta_min, beta_max] (projected).
MetaSpace vid_space(size_t pairs, double beta_min = 0.0, double beta_max = 1.0);

}  // namespace metadistill
