#include "metadistill/meta/trajectory.h"

#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

LineFit fit_line(const std::vector<double>& values) {
  const size_t n = values.size();
  check(n >= 2, "trajectory fit needs at least 2 points, got {}", n);
  double mz = 0, mv = 0;
  for (size_t k = 0; k < n; ++k) {
    mz += static_cast<double>(k + 1);
    mv += values[k];
  }
  mz /= static_cast<double>(n);
  mv /= static_cast<double>(n);
  double szz = 0, szv = 0, svv = 0;
  for (size_t k = 0; k < n; ++k) {
    const double dz = static_cast<double>(k + 1) - mz, dv = values[k] - mv;
    szz += dz * dz;
    szv += dz * dv;
    svv += dv * dv;
  }
  LineFit f;
  f.slope = szv / szz;
  f.intercept = mv - f.slope * mz;
  double ss_res = 0;
  for (size_t k = 0; k < n; ++k) {
    const double r = values[k] - f.at(static_cast<double>(k + 1));
    ss_res += r * r;
  }
  // A constant window is fitted exactly; otherwise the usual definition.
  const double scale = std::max(1.0, mv * mv) * static_cast<double>(n);
  if (svv <= 1e-24 * scale) f.r2 = ss_res <= 1e-24 * scale ? 1.0 : 0.0;
  else f.r2 = 1.0 - ss_res / svv;
  return f;
}

}  // namespace metadistill
