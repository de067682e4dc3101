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
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/meta/gradient_method.h"
#include "metadistill/meta/metaparameter_space.h"

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

/// Settings of the e1/e2 schedule.
struct TrajectoryPredictorOptions {
  /// Hyper-steps per window (≥ 2) and extrapolated steps after it (≥ 0).
  TORCH_ARG(int64_t, e1) = 10;
  TORCH_ARG(int64_t, e2) = 10;
  /// Beyond the paper: no extrapolation after a window whose worst fit has R² < r2_threshold,
  /// and extrapolation cut short where a projected coordinate's line leaves its interval.
  TORCH_ARG(bool, guarded) = false;
  TORCH_ARG(double, r2_threshold) = 0.5;

 public:
  /// Throws `Error` naming the value ("e1 = 1: expected >= 2 ..."); callers prefix their key.
  void validate() const;
};

/// Steps 1–3 above over the coordinates of any metaparameter space (the Hinton [λ1, T], the VID
/// [a_1..a_P, β]): a method asks `predict` before each student step and, when it took a
/// hyper-step instead, hands the new coordinates to `record`. The step counter is global.
class TrajectoryPredictor {
 public:
  TrajectoryPredictor(TrajectoryPredictorOptions options, MetaSpace space);

  /// The coordinates for student step `step` when it falls in an extrapolation phase (the
  /// lines at z = e1 + k for its k-th step), else nothing: take a hyper-step.
  std::optional<std::vector<double>> predict(int64_t step);
  /// Records the coordinates after the hyper-step of student step `step`; when that fills the
  /// window, fits the lines and extrapolates from step + 1 on. True when a window was fitted.
  bool record(const std::vector<double>& coordinates, int64_t step);

  /// The lines of the last fitted window, one per coordinate (empty before the first).
  const std::vector<LineFit>& fits() const { return fits_; }
  const TrajectoryPredictorOptions& options() const { return options_; }

  /// State for checkpoints; `load_state` also reads the two-coordinate form of the checkpoints
  /// written before the predictor served every space (window1/2, fit1/2). Throws `Error` for
  /// another number of coordinates.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  void fit_window();

  TrajectoryPredictorOptions options_;
  MetaSpace space_;
  std::vector<std::vector<double>> windows_;  // per coordinate, the values after each hyper-step
  std::vector<LineFit> fits_;
  int64_t predict_len_ = 0;  // steps to extrapolate after the current window
  int64_t phase_start_ = 0;  // global step where the current phase began
  bool predicting_ = false;
};

/// `proposed`: the `gradient` method's hyper-steps (on [λ1, T], or on the coordinates of another
/// head's space) under a `TrajectoryPredictor`; a step that is neither predicted nor an
/// `every`-th step holds m.
class TrajectoryMetaOptimizer : public GradientMetaOptimizer {
 public:
  TrajectoryMetaOptimizer(const MethodOptions& method, GradientMethodOptions options);
  std::string name() const override { return options_.guarded ? "proposed-guarded" : "proposed"; }
  void before_step(const HyperStepContext& ctx) override;
  void after_step(const HyperStepContext& ctx) override;
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;

 private:
  /// Records m after a hyper-step; logs the fits' R² when a window was fitted.
  void record_hyper(const HyperStepContext& ctx);
  /// The R² of the last window's first two lines in the trajectory row (λ1 and T for Hinton).
  void note_fits();

  TrajectoryPredictor predictor_;
};

}  // namespace metadistill
