#include "metadistill/meta/metaparameters.h"

#include <algorithm>

#include <fmt/format.h>

#include "metadistill/losses/hinton.h"

namespace metadistill {

void Metaparameters::validate() const { validate_hinton(lambda1, temperature); }

Metaparameters Metaparameters::clamped() const {
  return {std::clamp(lambda1, 0.0, 1.0), std::clamp(temperature, kMinTemperature, kMaxTemperature)};
}

std::string Metaparameters::to_string() const {
  return fmt::format("lambda1={:.4g} T={:.4g}", lambda1, temperature);
}

}  // namespace metadistill
