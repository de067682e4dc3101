#pragma once
/// Summary statistics over runs and the significance test of the results table.
#include <cstddef>
#include <vector>

namespace metadistill {

/// Mean, sample standard deviation (n − 1), minimum and maximum of `x` (zeros when empty).
struct Summary {
  double mean = 0, std = 0, min = 0, max = 0;
  size_t n = 0;
};
Summary summarize(const std::vector<double>& x);

/// Welch's unequal-variance t-test of mean(a) = mean(b): the two-sided p-value (1 when either
/// sample has fewer than two values; 0 or 1 for zero variances, by whether the means differ).
double welch_p_value(const std::vector<double>& a, const std::vector<double>& b);

/// The paired difference a_i − b_i over n pairs: its mean, the two-sided 95% confidence interval
/// mean ± t_{0.975, n−1}·s/√n and the paired t-test's p-value (interval = mean and p = 1 when
/// n < 2; 0 or 1 for a zero spread, by whether the mean is 0).
struct PairedDifference {
  double mean = 0, low = 0, high = 0, p = 1;
  size_t n = 0;
};
PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b);

/// The t with P(|T| > t) = p for Student's t with `dof` degrees of freedom (bisection).
double student_t_quantile_two_sided(double p, double dof);

/// Regularized incomplete beta function I_x(a, b) (continued fraction, Numerical Recipes 6.4).
double incomplete_beta(double a, double b, double x);

/// Two-sided tail probability P(|T| > t) of Student's t with `dof` degrees of freedom.
double student_t_two_sided(double t, double dof);

}  // namespace metadistill
