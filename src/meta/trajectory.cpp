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

void TrajectoryPredictorOptions::validate() const {
  check(e1() >= 2, "e1 = {}: expected >= 2 (a line needs two points)", e1());
  check(e2() >= 0, "e2 = {}: expected >= 0", e2());
  check(r2_threshold() >= 0 && r2_threshold() <= 1,
        "r2_threshold = {}: expected a value in [0, 1]", r2_threshold());
}

TrajectoryPredictor::TrajectoryPredictor(TrajectoryPredictorOptions options, MetaSpace space)
    : options_(options), space_(std::move(space)), windows_(space_.size()) {
  options_.validate();
}

// Step 2 at the end of a window: one line per coordinate, and how many of the e2 steps follow it.
void TrajectoryPredictor::fit_window() {
  fits_.clear();
  double worst_r2 = 1;
  for (const auto& w : windows_) {
    fits_.push_back(fit_line(w));
    worst_r2 = std::min(worst_r2, fits_.back().r2);
  }
  predict_len_ = options_.e2();
  if (options_.guarded()) {
    if (worst_r2 < options_.r2_threshold()) {
      predict_len_ = 0;  // a poor fit: keep taking hyper-steps
    } else {
      // Extrapolate only while every projected coordinate stays inside its interval (the
      // reparametrized ones cannot leave their domain).
      auto inside = [&](double z) {
        for (size_t i = 0; i < fits_.size(); ++i) {
          const auto& c = space_[i];
          if (c.reparametrized) continue;
          const double v = fits_[i].at(z);
          if (v < c.lo || v > c.hi) return false;
        }
        return true;
      };
      int64_t k = 0;
      while (k < options_.e2() && inside(static_cast<double>(options_.e1() + k + 1))) ++k;
      predict_len_ = k;
    }
  }
  for (auto& w : windows_) w.clear();
}

std::optional<std::vector<double>> TrajectoryPredictor::predict(int64_t step) {
  if (!predicting_) return std::nullopt;
  const int64_t k = step - phase_start_ + 1;  // 1..predict_len_
  const double z = static_cast<double>(options_.e1() + k);
  std::vector<double> c;
  for (const auto& f : fits_) c.push_back(f.at(z));
  if (k >= predict_len_) {
    predicting_ = false;
    phase_start_ = step + 1;
  }
  return c;
}

bool TrajectoryPredictor::record(const std::vector<double>& coordinates, int64_t step) {
  check(coordinates.size() == windows_.size(), "trajectory: {} coordinates recorded, expected {}",
        coordinates.size(), windows_.size());
  for (size_t i = 0; i < coordinates.size(); ++i) windows_[i].push_back(coordinates[i]);
  if (static_cast<int64_t>(windows_.front().size()) < options_.e1()) return false;
  fit_window();
  predicting_ = predict_len_ > 0;
  phase_start_ = step + 1;
  return true;
}

nlohmann::json TrajectoryPredictor::state() const {
  nlohmann::json fits = nlohmann::json::array();
  for (const auto& f : fits_) fits.push_back({f.slope, f.intercept, f.r2});
  return {{"windows", windows_},
          {"fits", fits},
          {"predict_len", predict_len_},
          {"phase_start", phase_start_},
          {"predicting", predicting_}};
}

void TrajectoryPredictor::load_state(const nlohmann::json& s) {
  std::vector<std::vector<double>> windows, fits;
  if (s.contains("windows")) {
    windows = s.at("windows").get<std::vector<std::vector<double>>>();
    fits = s.at("fits").get<std::vector<std::vector<double>>>();
  } else {
    windows = {s.at("window1").get<std::vector<double>>(), s.at("window2").get<std::vector<double>>()};
    fits = {s.at("fit1").get<std::vector<double>>(), s.at("fit2").get<std::vector<double>>()};
  }
  check(windows.size() == windows_.size() && (fits.empty() || fits.size() == windows_.size()),
        "trajectory state of {} coordinates, expected {}", windows.size(), windows_.size());
  fits_.clear();
  for (const auto& f : fits) {
    check(f.size() == 3, "trajectory state: a fit of {} numbers, expected 3", f.size());
    fits_.push_back({f[0], f[1], f[2]});
  }
  windows_ = std::move(windows);
  predict_len_ = s.at("predict_len");
  phase_start_ = s.at("phase_start");
  predicting_ = s.at("predicting");
}

TrajectoryMetaOptimizer::TrajectoryMetaOptimizer(const MethodOptions& method,
                                                 GradientMethodOptions options)
    : GradientMetaOptimizer(method, std::move(options)),
      predictor_(TrajectoryPredictorOptions()
                     .e1(options_.e1)
                     .e2(options_.e2)
                     .guarded(options_.guarded)
                     .r2_threshold(options_.r2_threshold),
                 space_) {}

// Step 3 while extrapolating (m from the lines, no hypergradient), else step 1 (a hyper-step, here
// for order `before`, in `after_step` for the lagged and online orders; on every `every`-th step).
void TrajectoryMetaOptimizer::before_step(const HyperStepContext& ctx) {
  if (online_) online_before_step(ctx);  // the tangents are carried through every step
  if (auto c = predictor_.predict(ctx.step)) {
    set_coordinates(*c);
    mark(ctx.step, "predict");
    note_fits();
    return;
  }
  if (ctx.step % options_.every != 0) {
    mark(ctx.step, "hold");
    return;
  }
  if (lagged()) {
    if (!online_) remember_weights(ctx);
    return;
  }
  hyper_step(ctx);
  record_hyper(ctx);
}

void TrajectoryMetaOptimizer::after_step(const HyperStepContext& ctx) {
  if (!lagged()) return;
  if (online_) {
    carry_tangents(ctx);
    if (last_.phase != "hyper") {
      w_before_.clear();
      return;
    }
  }
  const auto used = values_;
  if (!lagged_hyper_step(ctx)) return;
  if (hinton_) last_.value = Metaparameters::from_vector(used);
  record_hyper(ctx);
}

void TrajectoryMetaOptimizer::record_hyper(const HyperStepContext& ctx) {
  if (predictor_.record(coordinates_, ctx.step)) note_fits();
}

void TrajectoryMetaOptimizer::note_fits() {
  const auto& fits = predictor_.fits();
  if (fits.size() < 2) return;
  last_.r2_lambda1 = fits[0].r2;
  last_.r2_temperature = fits[1].r2;
}

nlohmann::json TrajectoryMetaOptimizer::state() const {
  auto s = GradientMetaOptimizer::state();
  s["trajectory"] = predictor_.state();
  return s;
}

void TrajectoryMetaOptimizer::load_state(const nlohmann::json& s) {
  GradientMetaOptimizer::load_state(s);
  // Checkpoints written before the predictor hold its state at the top level.
  predictor_.load_state(s.contains("trajectory") ? s.at("trajectory") : s);
}

}  // namespace metadistill
