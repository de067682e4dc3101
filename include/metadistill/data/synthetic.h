#pragma once
/// The synthetic data set of the paper (section 4.1; DESIGN.md 3.5 and 3.7).
///
/// x1, x2 ~ N(0, 1), label y = [x1·x2 + 0.5·e > 0] with e ~ N(0, 1). Two variants:
/// - `reference` (the authors' code): teacher sees [x1, x2, [sign x1 + sign x2 > 0.1]], student
///   sees [x1, x2, sign(x1·x2)];
/// - `paper` (the text): teacher sees [x1, x2, [sign x1 + sign x2 + 0.1 > 0]], student sees
///   [x1, x2, [sign x1 + sign x2 > 0]].
/// Drawn with numpy's legacy generator so that seed 42 and the reference layout reproduce the
/// authors' data bit for bit.
#include <cstdint>
#include <random>
#include <string>

#include "metadistill/data/dataset.h"

namespace metadistill {

/// numpy's legacy `RandomState` (MT19937, `random_sample`, polar-method `standard_normal`).
class NumpyRandom {
 public:
  explicit NumpyRandom(uint32_t seed) : mt_(seed) {}
  /// Uniform double in [0, 1) with 53 random bits, as numpy's random_sample.
  double uniform();
  /// Standard normal by the polar (Marsaglia) method, caching the second value as numpy does.
  double normal();

 private:
  std::mt19937 mt_;
  bool has_cached_ = false;
  double cached_ = 0.0;
};

/// Options of `make_synthetic`.
struct SyntheticOptions {
  /// "reference" (authors' code) or "paper" (the text's features).
  std::string variant = "reference";
  /// Seed of numpy's generator; 42 reproduces the authors' data.
  uint32_t seed = 42;
  /// Teacher training rows.
  int64_t n_teacher = 200;
  /// Student training rows.
  int64_t n_student = 15;
  /// Validation rows (the authors: 15, unused, since they validate on the test rows).
  int64_t n_val = 200;
  /// Test rows.
  int64_t n_test = 200;
  /// Standard deviation of the label noise.
  double noise = 0.5;
  /// Validate the metaparameters on the test rows, as the authors did.
  bool val_is_test = false;

  SyntheticOptions& with_variant(std::string v) { variant = std::move(v); return *this; }
  SyntheticOptions& seeded(uint32_t v) { seed = v; return *this; }
  SyntheticOptions& teacher_rows(int64_t v) { n_teacher = v; return *this; }
  SyntheticOptions& student_rows(int64_t v) { n_student = v; return *this; }
  SyntheticOptions& val_rows(int64_t v) { n_val = v; return *this; }
  SyntheticOptions& test_rows(int64_t v) { n_test = v; return *this; }
  SyntheticOptions& validate_on_test(bool v) { val_is_test = v; return *this; }

  /// The authors' exact setting: seed 42, 200/15/15/200 rows, validation on the test rows.
  static SyntheticOptions reference_preset();
};

/// The raw draw: x [N, 2] float64 and e [N] float64, in numpy's order (x row by row, then e).
std::pair<torch::Tensor, torch::Tensor> synthetic_raw(uint32_t seed, int64_t n);

/// Builds the synthetic bundle: rows [0, n_teacher) teach the teacher, then n_student student
/// rows (train_idx), n_val validation rows (val_idx), n_test test rows. Features float32, 3 each.
DataBundle make_synthetic(const SyntheticOptions& options);

}  // namespace metadistill
