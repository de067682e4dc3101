#include "metadistill/meta/meta_step.h"

#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

void MetaStepRule::check_kind(const std::string& kind, const std::string& key) {
  check(kind == "sgd" || kind == "adam" || kind == "sign", "{} '{}': expected sgd, adam or sign",
        key, kind);
}

MetaStepRule::MetaStepRule(std::string kind, std::vector<double> sizes, double eps)
    : kind_(std::move(kind)), sizes_(std::move(sizes)), eps_(eps) {
  check_kind(kind_, "meta_step");
  const size_t n = sizes_.size();
  m_.assign(n, 0.0);
  v_.assign(n, 0.0);
  sign_step_ = sizes_;
  last_sign_.assign(n, 0.0);
}

std::vector<double> MetaStepRule::delta(const std::vector<double>& h) {
  check(h.size() == sizes_.size(), "meta-step: a hypergradient of {} entries for {} coordinates",
        h.size(), sizes_.size());
  constexpr double kBeta1 = 0.9, kBeta2 = 0.999;
  ++steps_;
  std::vector<double> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    if (kind_ == "adam") {
      m_[i] = kBeta1 * m_[i] + (1 - kBeta1) * h[i];
      v_[i] = kBeta2 * v_[i] + (1 - kBeta2) * h[i] * h[i];
      const double m_hat = m_[i] / (1 - std::pow(kBeta1, static_cast<double>(steps_)));
      const double v_hat = v_[i] / (1 - std::pow(kBeta2, static_cast<double>(steps_)));
      out[i] = sizes_[i] * m_hat / (std::sqrt(v_hat) + eps_);
    } else if (kind_ == "sign") {
      const double sign = h[i] > 0 ? 1.0 : (h[i] < 0 ? -1.0 : 0.0);
      if (sign != 0 && last_sign_[i] != 0 && sign != last_sign_[i]) sign_step_[i] *= 0.5;
      if (sign != 0) last_sign_[i] = sign;
      out[i] = sign_step_[i] * sign;
    } else {
      out[i] = sizes_[i] * h[i];
    }
  }
  return out;
}

nlohmann::json MetaStepRule::state() const {
  return {{"adam_m", m_},
          {"adam_v", v_},
          {"sign_step", sign_step_},
          {"last_sign", last_sign_},
          {"steps", steps_}};
}

void MetaStepRule::load_state(const nlohmann::json& s) {
  const size_t n = sizes_.size();
  auto read = [&](const char* key) {
    auto v = s.at(key).get<std::vector<double>>();
    check(v.size() == n, "meta-step state: {} has {} entries for {} coordinates", key, v.size(), n);
    return v;
  };
  if (s.contains("t")) {  // the multi-layer form: Adam's moments and step count only
    m_ = read("m");
    v_ = read("v");
    steps_ = s.at("t").get<int64_t>();
    return;
  }
  m_ = read("adam_m");
  v_ = read("adam_v");
  sign_step_ = read("sign_step");
  last_sign_ = read("last_sign");
  steps_ = s.at("steps").get<int64_t>();
}

}  // namespace metadistill
