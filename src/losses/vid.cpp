#include "metadistill/losses/vid.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metadistill/util/error.h"

namespace metadistill {

namespace functional {

torch::Tensor vid_nll(const torch::Tensor& mean, const torch::Tensor& target,
                      const torch::Tensor& variance) {
  check(mean.sizes() == target.sizes(), "vid_nll: prediction {} and target {} differ in shape",
        mean.sizes(), target.sizes());
  check(mean.dim() >= 2 && variance.dim() == 1 && variance.size(0) == mean.size(1),
        "vid_nll: variance {} must hold one value per channel of {}", variance.sizes(),
        mean.sizes());
  std::vector<int64_t> shape(static_cast<size_t>(mean.dim()), 1);
  shape[1] = variance.size(0);
  auto var = variance.view(shape);  // [1, C, 1, 1] or [1, C]
  return 0.5 * ((mean - target).pow(2) / var + var.log()).mean();
}

std::pair<torch::Tensor, torch::Tensor> align_spatial(const torch::Tensor& student,
                                                      const torch::Tensor& teacher) {
  check(student.dim() == teacher.dim() && (student.dim() == 2 || student.dim() == 4),
        "VID: student features {} and teacher features {} cannot be aligned: expected both maps "
        "[B, C, H, W] or both vectors [B, F]",
        student.sizes(), teacher.sizes());
  check(student.size(0) == teacher.size(0), "VID: batch sizes differ: student {}, teacher {}",
        student.sizes(), teacher.sizes());
  if (student.dim() == 2) return {student, teacher};
  const int64_t h = std::min(student.size(2), teacher.size(2));
  const int64_t w = std::min(student.size(3), teacher.size(3));
  auto pool = [&](const torch::Tensor& x) {
    if (x.size(2) == h && x.size(3) == w) return x;
    return torch::adaptive_avg_pool2d(x, {h, w});
  };
  return {pool(student), pool(teacher)};
}

double softplus_inverse_for(double variance, double eps) {
  check(std::isfinite(variance) && variance > eps,
        "VID: initial variance {} must be finite and larger than eps = {}", variance, eps);
  // softplus(α) = log(1 + e^α) = v − ε  ⇒  α = log(e^{v−ε} − 1) = y + log(1 − e^{−y}), y = v − ε;
  // the second form stays finite for large y.
  const double y = variance - eps;
  return y + std::log(-std::expm1(-y));
}

}  // namespace functional

namespace {

void check_feature_shapes(const std::vector<int64_t>& s, const std::vector<int64_t>& t) {
  const bool ok = (s.size() == 3 && t.size() == 3) || (s.size() == 1 && t.size() == 1);
  check(ok,
        "VID: student features [{}] and teacher features [{}] cannot be aligned: expected both "
        "maps [C, H, W] or both vectors [F]",
        fmt::join(s, ", "), fmt::join(t, ", "));
  for (auto d : s) check(d > 0, "VID: student feature shape [{}] has an empty dimension", fmt::join(s, ", "));
  for (auto d : t) check(d > 0, "VID: teacher feature shape [{}] has an empty dimension", fmt::join(t, ", "));
}

std::vector<int64_t> shape_without_batch(const torch::Tensor& x) {
  return x.sizes().slice(1).vec();
}

// "conv1 [16, 14, 14], fc1 [128], ..." for error messages.
std::string describe(const Features& features) {
  std::vector<std::string> parts;
  for (const auto& [name, x] : features)
    parts.push_back(fmt::format("{} [{}]", name, fmt::join(x.sizes().slice(1), ", ")));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

VIDImpl::VIDImpl(VIDOptions options_) : options(std::move(options_)) { reset(); }

void VIDImpl::reset() {
  const auto& s = options.student_shape();
  const auto& t = options.teacher_shape();
  check_feature_shapes(s, t);
  check(options.hidden() >= 0, "VID: hidden width {} must be >= 0 (0 = teacher channels)",
        options.hidden());
  spatial = s.size() == 3;
  const int64_t cs = s[0], ct = t[0];
  const int64_t hidden = options.hidden() > 0 ? options.hidden() : ct;
  regressor = torch::nn::Sequential();
  if (spatial) {
    // As in the original VID code: conv1x1 → ReLU → conv1x1 → ReLU → conv1x1.
    auto conv = [](int64_t in, int64_t out) {
      return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(true));
    };
    regressor->push_back(conv(cs, hidden));
    regressor->push_back(torch::nn::ReLU());
    regressor->push_back(conv(hidden, hidden));
    regressor->push_back(torch::nn::ReLU());
    regressor->push_back(conv(hidden, ct));
  } else {
    regressor->push_back(torch::nn::Linear(cs, ct));
  }
  regressor = register_module("regressor", regressor);
  const double a = functional::softplus_inverse_for(options.init_variance(), options.eps());
  alpha = register_parameter("alpha", torch::full({ct}, a));
}

std::pair<torch::Tensor, torch::Tensor> VIDImpl::predict(const torch::Tensor& s,
                                                         const torch::Tensor& t) {
  auto [sa, ta] = functional::align_spatial(s, t);
  check(sa.size(1) == options.student_shape()[0] && ta.size(1) == options.teacher_shape()[0],
        "VID: features {} (student) and {} (teacher) do not have the {} and {} channels this term "
        "was built for",
        s.sizes(), t.sizes(), options.student_shape()[0], options.teacher_shape()[0]);
  return {regressor->forward(sa), ta};
}

torch::Tensor VIDImpl::variance() const {
  return torch::nn::functional::softplus(alpha) + options.eps();
}

torch::Tensor VIDImpl::forward(const torch::Tensor& s, const torch::Tensor& t) {
  auto [mu, target] = predict(s, t);
  return functional::vid_nll(mu, target, variance());
}

void check_taps(const ClassifierImpl& model, const std::vector<std::string>& wanted,
                const std::string& role) {
  const auto offered = model.tap_names();
  for (const auto& name : wanted)
    check(std::find(offered.begin(), offered.end(), name) != offered.end(),
          "{} model {} has no tap '{}'; it offers: {}", role, model.kind(), name,
          fmt::join(offered, ", "));
}

const torch::Tensor& find_tap(const Features& features, const std::string& name) {
  for (const auto& entry : features)
    if (entry.first == name) return entry.second;
  std::vector<std::string> names;
  for (const auto& f : features) names.push_back(f.first);
  fail("no feature tap '{}'; the model offers: {}", name, fmt::join(names, ", "));
}

MultiVIDImpl::MultiVIDImpl(std::vector<TapPair> pairs, const Features& teacher_example,
                           const Features& student_example, MultiVIDOptions options)
    : pairs_(std::move(pairs)), options_(options) {
  for (const auto& p : pairs_) {
    teacher_shapes_.push_back(shape_without_batch(find_tap(teacher_example, p.teacher)));
    student_shapes_.push_back(shape_without_batch(find_tap(student_example, p.student)));
  }
  try {
    reset();
  } catch (const Error& e) {
    fail("{}; the teacher offers {}; the student offers {}", e.what(), describe(teacher_example),
         describe(student_example));
  }
}

MultiVIDImpl::MultiVIDImpl(std::vector<TapPair> pairs,
                           std::vector<std::vector<int64_t>> teacher_shapes,
                           std::vector<std::vector<int64_t>> student_shapes,
                           MultiVIDOptions options)
    : pairs_(std::move(pairs)),
      teacher_shapes_(std::move(teacher_shapes)),
      student_shapes_(std::move(student_shapes)),
      options_(options) {
  check(teacher_shapes_.size() == pairs_.size() && student_shapes_.size() == pairs_.size(),
        "MultiVID: {} pairs but {} teacher and {} student shapes", pairs_.size(),
        teacher_shapes_.size(), student_shapes_.size());
  reset();
}

void MultiVIDImpl::reset() {
  check(!pairs_.empty(), "MultiVID: no distillation pairs");
  terms_.clear();
  for (size_t p = 0; p < pairs_.size(); ++p) {
    try {
      terms_.push_back(register_module(
          "pair" + std::to_string(p),
          VID(VIDOptions(student_shapes_[p], teacher_shapes_[p])
                  .hidden(options_.hidden())
                  .init_variance(options_.init_variance())
                  .eps(options_.eps()))));
    } catch (const Error& e) {
      fail("pair teacher '{}' -> student '{}': {}", pairs_[p].teacher, pairs_[p].student, e.what());
    }
  }
}

torch::Tensor MultiVIDImpl::pair_losses(const Features& teacher, const Features& student) {
  std::vector<torch::Tensor> out;
  out.reserve(pairs_.size());
  for (size_t p = 0; p < pairs_.size(); ++p)
    out.push_back(terms_[p]->forward(find_tap(student, pairs_[p].student),
                                     find_tap(teacher, pairs_[p].teacher).detach()));
  return torch::stack(out);  // [P]
}

torch::Tensor MultiVIDImpl::forward(const Features& teacher, const Features& student,
                                    const torch::Tensor& weights) {
  check(weights.dim() == 1 && weights.size(0) == static_cast<int64_t>(pairs_.size()),
        "MultiVID: {} weights for {} pairs", weights.sizes(), pairs_.size());
  return (weights * pair_losses(teacher, student)).sum();
}

}  // namespace metadistill
