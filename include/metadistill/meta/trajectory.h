#pragma once
/// Least-squares line fits of a metaparameter trajectory (the proposed method, paper Algorithm 1
/// and eq. 4; DESIGN.md 3.2): λ(z) = c1·z + c2 fitted over a window, then extrapolated.
#include <vector>

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

}  // namespace metadistill
