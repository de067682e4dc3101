#pragma once
// The TPE golden values computed by Optuna 3.1 (scripts/optuna_golden.py).
#include <fstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace metadistill::testing {

inline const nlohmann::json& tpe_golden() {
  static const nlohmann::json j = [] {
    const std::string path =
        std::string(METADISTILL_SOURCE_DIR) + "/tests/meta/golden/tpe_optuna.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("missing " + path + ": run scripts/optuna_golden.py");
    return nlohmann::json::parse(in);
  }();
  return j;
}

}  // namespace metadistill::testing
