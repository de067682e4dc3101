#pragma once
/// The proposed method (paper Algorithm 1 and eq. 4; DESIGN.md 3.2): linear trajectory
/// prediction of the metaparameters. Repeat until training ends:
///   1. e1 student steps with a hyper-step each (the `gradient` method, gradient_method.h),
///      recording λ after each: λ_1, ..., λ_e1 (per coordinate: λ1 and T, or the unconstrained
///      a, b of the reparametrized domain);
///   2. per coordinate, the least-squares line λ(z) = c1·z + c2 over the points (z, λ_z),
///      z = 1..e1 (`fit_line`; its R² is logged per window, Theorem 1: the trajectory is linear
///      where ∇_λ L_val is near constant);
///   3. e2 student steps with λ = c1·z + c2 at z = e1 + 1, ..., e1 + e2 (the k-th step after
///      the window: z = e1 + k) and no hypergradient — the cost saving is e2/(e1 + e2) of them.
/// `proposed-guarded` (beyond the paper) skips step 3 when a fit's R² is below `r2_threshold`
/// and cuts it short where the line would leave the domain.
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/meta/gradient_method.h"

namespace metadistill {

/// A fitted line with its coefficient of determination.
struct LineFit {
  double slope = 0, intercept = 0;
  /// R² = 1 − SS_res/SS_tot; 1 for an exactly linear window, including a constant one.
  double r2 = 1;
  double at(double z) const { return slope * z + intercept; }
};

/// Fits `values[k]` against z = k + 1 (k = 0..n−1) by least squares; n >= 2.
LineFit fit_line(const std::vector<double>& values);

/// `proposed`: e1 hyper-steps recording λ, a line fitted per metaparameter, λ set from the
/// extrapolated line for the next e2 steps (no hypergradient), repeated; global step counter.
class TrajectoryMetaOptimizer : public GradientMetaOptimizer {
 public:
  TrajectoryMetaOptimizer(const MethodOptions& method, GradientMethodOptions options);
  std::string name() const override { return options_.guarded ? "proposed-guarded" : "proposed"; }
  Metaparameters before_step(const HyperStepContext& ctx) override;
  void after_step(const HyperStepContext& ctx) override;
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;

 private:
  void fit_window();
  /// Records λ after a hyper-step into the window; fits and starts extrapolating when full.
  void record_hyper(const HyperStepContext& ctx);

  std::vector<double> window1_, window2_;  // coordinates after each hyper-step of the window
  LineFit fit1_, fit2_;
  int64_t predict_len_ = 0;  // steps to extrapolate after the current window
  int64_t phase_start_ = 0;  // global step where the current window began
  bool predicting_ = false;
};

}  // namespace metadistill
