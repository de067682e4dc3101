#pragma once
/// The rule of a meta-step: how a hypergradient h moves the coordinates c a method steps in
/// (λ1 and T or their unconstrained a, b; the VID pair logits a and β), written once for every
/// method. Per coordinate i, with step size s_i:
/// - "sgd":  c_i ← c_i − s_i · h_i (the paper);
/// - "adam": c_i ← c_i − s_i · m̂_i / (√v̂_i + ε), Adam's bias-corrected moments with
///           β = (0.9, 0.999): steps of about s_i whatever the scale of h;
/// - "sign": c_i ← c_i − σ_i · sign h_i, σ_i starting at s_i and halved whenever the sign of h_i
///           flips (Micaelli & Storkey, "Gradient-based Hyperparameter Optimization Over Long
///           Horizons", NeurIPS 2021).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace metadistill {

class MetaStepRule {
 public:
  /// `kind` "sgd", "adam" or "sign"; one step size per coordinate; `eps` of Adam's denominator.
  /// Throws `Error` naming an unknown kind.
  MetaStepRule(std::string kind, std::vector<double> sizes, double eps = 1e-8);

  /// The change Δ for hypergradient `h` (one entry per coordinate): the caller sets c ← c − Δ.
  /// Advances the rule's state (moments, sign steps, step count).
  std::vector<double> delta(const std::vector<double>& h);

  int64_t steps() const { return steps_; }

  /// The state a checkpoint keeps; `load_state` also reads the {m, v, t} form that multi-layer
  /// checkpoints had before the rule was shared. Throws `Error` on a size mismatch.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

  /// Throws `Error` naming `kind` unless it is sgd, adam or sign.
  static void check_kind(const std::string& kind, const std::string& key);

 private:
  std::string kind_;
  std::vector<double> sizes_;
  double eps_;
  std::vector<double> m_, v_, sign_step_, last_sign_;
  int64_t steps_ = 0;
};

}  // namespace metadistill
