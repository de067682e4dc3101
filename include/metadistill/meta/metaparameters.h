#pragma once
/// The metaparameters λ = [λ1, T] of the Hinton loss (DESIGN.md 3, 3.5); their domain is
/// `hinton_space()` of metaparameter_space.h.
#include <string>
#include <vector>

namespace metadistill {

/// λ1 weighs the classification term, T is the distillation temperature.
struct Metaparameters {
  /// Weight of the classification term, in [0, 1].
  double lambda1 = 1.0;
  /// Temperature, in [kMinTemperature, kMaxTemperature] for the optimizing methods; > 0 always.
  double temperature = 1.0;

  static constexpr double kMinTemperature = 0.1;
  static constexpr double kMaxTemperature = 10.0;

  /// Throws `Error` naming the value when λ1 ∉ [0, 1] or T ≤ 0 or not finite.
  void validate() const;
  /// Clamps λ1 to [0, 1] and T to [kMinTemperature, kMaxTemperature] (the projection of
  /// `hinton_space()`).
  Metaparameters clamped() const;
  /// As the vector [λ1, T] of `hinton_space()`, and back (throws `Error` for another size).
  std::vector<double> to_vector() const { return {lambda1, temperature}; }
  static Metaparameters from_vector(const std::vector<double>& v);
  /// True when the classification term alone is trained (the teacher is not needed).
  bool is_plain_ce() const { return lambda1 == 1.0; }
  std::string to_string() const;
};

}  // namespace metadistill
