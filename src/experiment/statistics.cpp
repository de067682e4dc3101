#include "metadistill/experiment/statistics.h"

#include <algorithm>
#include <cmath>

namespace metadistill {

Summary summarize(const std::vector<double>& x) {
  Summary s;
  s.n = x.size();
  if (x.empty()) return s;
  s.min = *std::min_element(x.begin(), x.end());
  s.max = *std::max_element(x.begin(), x.end());
  for (double v : x) s.mean += v;
  s.mean /= static_cast<double>(x.size());
  if (x.size() > 1) {
    double ss = 0;
    for (double v : x) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / static_cast<double>(x.size() - 1));
  }
  return s;
}

namespace {

double beta_continued_fraction(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::abs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1.0 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1.0 + aa * d;
    if (std::abs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::abs(del - 1.0) < 1e-15) break;
  }
  return h;
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
               b * std::log1p(-x));
  // The continued fraction converges fast for x < (a + 1)/(a + b + 2); use symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return front * beta_continued_fraction(a, b, x) / a;
  return 1.0 - front * beta_continued_fraction(b, a, 1 - x) / b;
}

double student_t_two_sided(double t, double dof) {
  return incomplete_beta(dof / 2, 0.5, dof / (dof + t * t));
}

double student_t_quantile_two_sided(double p, double dof) {
  // P(|T| > t) falls from 1 at t = 0; bracket, then bisect.
  double lo = 0, hi = 1;
  while (student_t_two_sided(hi, dof) > p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_two_sided(mid, dof) > p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  PairedDifference d;
  d.n = std::min(a.size(), b.size());
  std::vector<double> diff;
  for (size_t i = 0; i < d.n; ++i) diff.push_back(a[i] - b[i]);
  const Summary s = summarize(diff);
  d.mean = d.low = d.high = s.mean;
  if (d.n < 2) return d;
  if (s.std == 0) {
    d.p = s.mean == 0 ? 1.0 : 0.0;
    return d;
  }
  const double se = s.std / std::sqrt(static_cast<double>(d.n));
  const double dof = static_cast<double>(d.n - 1);
  const double half = student_t_quantile_two_sided(0.05, dof) * se;
  d.low = s.mean - half;
  d.high = s.mean + half;
  d.p = student_t_two_sided(s.mean / se, dof);
  return d;
}

double welch_p_value(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 2 || b.size() < 2) return 1.0;
  const Summary sa = summarize(a), sb = summarize(b);
  const double va = sa.std * sa.std / static_cast<double>(sa.n);
  const double vb = sb.std * sb.std / static_cast<double>(sb.n);
  if (va + vb == 0) return sa.mean == sb.mean ? 1.0 : 0.0;
  const double t = (sa.mean - sb.mean) / std::sqrt(va + vb);
  const double dof = (va + vb) * (va + vb) /
                     (va * va / static_cast<double>(sa.n - 1) + vb * vb / static_cast<double>(sb.n - 1));
  return student_t_two_sided(t, dof);
}

}  // namespace metadistill
