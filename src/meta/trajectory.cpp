#include "metadistill/meta/trajectory.h"

#include <algorithm>
#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

// Step 2: the least-squares line through (z, values[z − 1]), z = 1..n, and its R².
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

TrajectoryMetaOptimizer::TrajectoryMetaOptimizer(const MethodOptions& method,
                                                 GradientMethodOptions options)
    : GradientMetaOptimizer(method, std::move(options)) {}

// Step 2 at the end of a window: one line per coordinate, and how many of the e2 steps follow it.
void TrajectoryMetaOptimizer::fit_window() {
  fit1_ = fit_line(window1_);
  fit2_ = fit_line(window2_);
  predict_len_ = options_.e2;
  if (options_.guarded) {
    if (std::min(fit1_.r2, fit2_.r2) < options_.r2_threshold) {
      predict_len_ = 0;  // a poor fit: keep taking hyper-steps
    } else if (options_.domain == "projected") {
      // Extrapolate only while the line stays inside the domain.
      const double e1 = static_cast<double>(options_.e1);
      int64_t k = 0;
      while (k < options_.e2) {
        const double z = e1 + static_cast<double>(k + 1);
        const double l1 = fit1_.at(z), t = fit2_.at(z);
        if (l1 < 0 || l1 > 1 || t < Metaparameters::kMinTemperature ||
            t > Metaparameters::kMaxTemperature)
          break;
        ++k;
      }
      predict_len_ = k;
    }
  }
  window1_.clear();
  window2_.clear();
}

// Step 3 while extrapolating (λ from the line, no hypergradient), else step 1 (a hyper-step, here
// for order `before`, in `after_step` for the lagged and online orders).
Metaparameters TrajectoryMetaOptimizer::before_step(const HyperStepContext& ctx) {
  if (online_) online_before_step(ctx);  // the tangents are carried through every step
  if (predicting_) {
    const int64_t k = ctx.step - phase_start_ + 1;  // 1..predict_len_
    const double z = static_cast<double>(options_.e1 + k);
    value_ = from_coordinates(fit1_.at(z), fit2_.at(z));
    last_.step = ctx.step;
    last_.value = value_;
    last_.hypergradient.clear();
    last_.phase = "predict";
    last_.r2_lambda1 = fit1_.r2;
    last_.r2_temperature = fit2_.r2;
    if (k >= predict_len_) {
      predicting_ = false;
      phase_start_ = ctx.step + 1;
    }
    return value_;
  }
  last_.r2_lambda1 = last_.r2_temperature = std::nan("");
  if (lagged()) {
    if (!online_) remember_weights(ctx);
    return value_;
  }
  hyper_step(ctx);
  record_hyper(ctx);
  return value_;
}

void TrajectoryMetaOptimizer::after_step(const HyperStepContext& ctx) {
  if (!lagged()) return;
  if (online_) {
    carry_tangents(ctx);
    if (last_.phase == "predict") {
      w_before_.clear();
      return;
    }
  }
  const Metaparameters used = value_;
  if (!lagged_hyper_step(ctx)) return;
  last_.value = used;
  record_hyper(ctx);
}

// Step 1's record: the coordinates after a hyper-step; a full window starts step 2.
void TrajectoryMetaOptimizer::record_hyper(const HyperStepContext& ctx) {
  auto [c1, c2] = coordinates();
  window1_.push_back(c1);
  window2_.push_back(c2);
  if (static_cast<int64_t>(window1_.size()) >= options_.e1) {
    fit_window();
    last_.r2_lambda1 = fit1_.r2;
    last_.r2_temperature = fit2_.r2;
    predicting_ = predict_len_ > 0;
    phase_start_ = ctx.step + 1;
  }
}

nlohmann::json TrajectoryMetaOptimizer::state() const {
  auto s = GradientMetaOptimizer::state();
  s["window1"] = window1_;
  s["window2"] = window2_;
  s["fit1"] = {fit1_.slope, fit1_.intercept, fit1_.r2};
  s["fit2"] = {fit2_.slope, fit2_.intercept, fit2_.r2};
  s["predict_len"] = predict_len_;
  s["phase_start"] = phase_start_;
  s["predicting"] = predicting_;
  return s;
}

void TrajectoryMetaOptimizer::load_state(const nlohmann::json& s) {
  GradientMetaOptimizer::load_state(s);
  window1_ = s.at("window1").get<std::vector<double>>();
  window2_ = s.at("window2").get<std::vector<double>>();
  auto f1 = s.at("fit1").get<std::vector<double>>(), f2 = s.at("fit2").get<std::vector<double>>();
  fit1_ = {f1[0], f1[1], f1[2]};
  fit2_ = {f2[0], f2[1], f2[2]};
  predict_len_ = s.at("predict_len");
  phase_start_ = s.at("phase_start");
  predicting_ = s.at("predicting");
}

}  // namespace metadistill
