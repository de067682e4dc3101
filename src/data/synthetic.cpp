#include "metadistill/data/synthetic.h"

#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

double NumpyRandom::uniform() {
  const uint32_t a = mt_() >> 5, b = mt_() >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

double NumpyRandom::normal() {
  if (has_cached_) {
    has_cached_ = false;
    return cached_;
  }
  double x1, x2, r2;
  do {
    x1 = 2.0 * uniform() - 1.0;
    x2 = 2.0 * uniform() - 1.0;
    r2 = x1 * x1 + x2 * x2;
  } while (r2 >= 1.0 || r2 == 0.0);
  const double f = std::sqrt(-2.0 * std::log(r2) / r2);
  cached_ = f * x1;
  has_cached_ = true;
  return f * x2;
}

SyntheticOptions SyntheticOptions::reference_preset() {
  SyntheticOptions o;
  o.variant = "reference";
  o.seed = 42;
  o.n_val = 15;
  o.val_is_test = true;
  return o;
}

std::pair<torch::Tensor, torch::Tensor> synthetic_raw(uint32_t seed, int64_t n) {
  NumpyRandom rng(seed);
  auto x = torch::empty({n, 2}, torch::kDouble);
  auto e = torch::empty({n}, torch::kDouble);
  auto xa = x.accessor<double, 2>();
  auto ea = e.accessor<double, 1>();
  for (int64_t i = 0; i < n; ++i) {
    xa[i][0] = rng.normal();
    xa[i][1] = rng.normal();
  }
  for (int64_t i = 0; i < n; ++i) ea[i] = rng.normal();
  return {x, e};
}

namespace {

// Features of one variant from the raw coordinates; `teacher` selects the teacher's view.
torch::Tensor features(const torch::Tensor& x, const std::string& variant, bool teacher) {
  auto x1 = x.select(1, 0), x2 = x.select(1, 1);
  auto sum = torch::sign(x1) + torch::sign(x2);
  torch::Tensor third;
  if (variant == "reference") {
    third = teacher ? (sum > 0.1).to(torch::kDouble) : torch::sign(x1 * x2);
  } else {
    third = teacher ? (sum + 0.1 > 0).to(torch::kDouble) : (sum > 0).to(torch::kDouble);
  }
  return torch::stack({x1, x2, third}, 1).to(torch::kFloat);
}

}  // namespace

DataBundle make_synthetic(const SyntheticOptions& o) {
  check(o.variant == "reference" || o.variant == "paper",
        "synthetic variant '{}': expected 'reference' or 'paper'", o.variant);
  check(o.n_teacher > 0 && o.n_student > 0 && o.n_val >= 0 && o.n_test > 0,
        "synthetic sizes must be positive: teacher {}, student {}, val {}, test {}", o.n_teacher,
        o.n_student, o.n_val, o.n_test);
  check(o.noise >= 0, "synthetic noise {} must be >= 0", o.noise);
  check(o.n_val > 0 || o.val_is_test, "synthetic: n_val = 0 needs val_is_test");
  const int64_t n = o.n_teacher + o.n_student + o.n_val + o.n_test;
  auto [x, e] = synthetic_raw(o.seed, n);
  auto y = ((torch::sign(x.select(1, 0) * x.select(1, 1) + o.noise * e) + 1) / 2)
               .floor()
               .to(torch::kLong);
  auto xs = features(x, o.variant, false), xt = features(x, o.variant, true);

  auto rows = [&](int64_t lo, int64_t hi) {
    DataSet d;
    d.x = xs.slice(0, lo, hi).clone();
    d.x_teacher = xt.slice(0, lo, hi).clone();
    d.y = y.slice(0, lo, hi).clone();
    return d;
  };
  DataBundle b;
  b.name = "synthetic-" + o.variant;
  b.num_classes = 2;
  b.teacher_train.x = xt.slice(0, 0, o.n_teacher).clone();
  b.teacher_train.y = y.slice(0, 0, o.n_teacher).clone();
  const int64_t s0 = o.n_teacher, v0 = s0 + o.n_student, t0 = v0 + o.n_val;
  b.pool = rows(s0, t0);
  b.train_idx = torch::arange(o.n_student, torch::kLong);
  b.val_idx = torch::arange(o.n_student, o.n_student + o.n_val, torch::kLong);
  b.test = rows(t0, n);
  b.val_is_test = o.val_is_test;
  b.finalize();
  return b;
}

}  // namespace metadistill
