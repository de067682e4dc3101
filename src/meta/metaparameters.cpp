#include "metadistill/meta/metaparameters.h"


#include <fmt/format.h>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/metaparameter_space.h"
#include "metadistill/util/error.h"

namespace metadistill {

void Metaparameters::validate() const { validate_hinton(lambda1, temperature); }

Metaparameters Metaparameters::clamped() const {
  return from_vector(hinton_space().project(to_vector()));
}

Metaparameters Metaparameters::from_vector(const std::vector<double>& v) {
  check(v.size() == 2, "Hinton metaparameters: {} values, expected [lambda1, T]", v.size());
  return {v[0], v[1]};
}

std::string Metaparameters::to_string() const {
  return fmt::format("lambda1={:.4g} T={:.4g}", lambda1, temperature);
}

}  // namespace metadistill
