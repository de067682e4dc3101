#pragma once
// The TPE golden values computed by Optuna 3.1 (scripts/optuna_golden.py), and the difference
// tracker of the parity tests that compare with them.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace metadistill::testing {

inline const nlohmann::json& tpe_golden() {
  static const nlohmann::json j = [] {
    const std::string path =
        std::string(METADISTILL_SOURCE_DIR) + "/tests/search/golden/tpe_optuna.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("missing " + path + ": run scripts/optuna_golden.py");
    return nlohmann::json::parse(in);
  }();
  return j;
}

/// Largest absolute and relative differences seen by a parity test, printed at its end. A NaN on
/// either side counts as an infinite difference: `std::max(abs, NaN)` keeps `abs`, which would
/// let a NaN output pass every `EXPECT_LT(d.abs, tol)`.
struct Diff {
  double abs = 0, rel = 0;
  void add(double got, double want) {
    if (std::isinf(got) && std::isinf(want) && (got > 0) == (want > 0)) return;
    const double a = std::abs(got - want);
    if (std::isnan(a)) {
      abs = rel = std::numeric_limits<double>::infinity();
      return;
    }
    abs = std::max(abs, a);
    rel = std::max(rel, a / std::max(std::abs(want), 1e-300));
  }
  void print(const std::string& what) const {
    std::cout << fmt::format("[parity] {}: max abs diff {:.3g}, max rel diff {:.3g}\n", what, abs,
                             rel);
  }
};

}  // namespace metadistill::testing
