#include "metadistill/search/search_space.h"

#include <cmath>

#include "metadistill/meta/metaparameters.h"
#include "metadistill/util/error.h"

namespace metadistill {

double ParamSpec::to_internal(double x) const { return log ? std::log(x) : x; }

double ParamSpec::from_internal(double u) const { return log ? std::exp(u) : u; }

std::string ParamSpec::to_string() const {
  return fmt::format("{} ~ {}({}, {})", name, log ? "logU" : "U", low, high);
}

SearchSpace& SearchSpace::add_uniform(const std::string& name, double low, double high) {
  return add(ParamSpec{name, low, high, false});
}

SearchSpace& SearchSpace::add_log_uniform(const std::string& name, double low, double high) {
  return add(ParamSpec{name, low, high, true});
}

SearchSpace& SearchSpace::add(const ParamSpec& p) {
  metadistill::check(!p.name.empty(), "search space: a parameter needs a name");
  for (const auto& q : params_)
    metadistill::check(q.name != p.name, "search space: parameter '{}' is defined twice", p.name);
  metadistill::check(std::isfinite(p.low) && std::isfinite(p.high),
                     "search space: parameter '{}': bounds [{}, {}] must be finite numbers", p.name,
                     p.low, p.high);
  metadistill::check(p.low != p.high,
                     "search space: parameter '{}': empty range [{}, {}]: expected low < high",
                     p.name, p.low, p.high);
  metadistill::check(p.low < p.high,
                     "search space: parameter '{}': inverted range [{}, {}]: expected low < high",
                     p.name, p.low, p.high);
  if (p.log)
    metadistill::check(
        p.low > 0,
        "search space: log-uniform parameter '{}': lower bound {} must be > 0 (its log is "
        "sampled)",
        p.name, p.low);
  params_.push_back(p);
  return *this;
}

size_t SearchSpace::index_of(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return i;
  std::vector<std::string> names;
  for (const auto& p : params_) names.push_back(p.name);
  fail("search space: no parameter '{}' (known: {})", name, fmt::join(names, ", "));
}

void SearchSpace::check(const ParamValues& values, const std::string& what) const {
  metadistill::check(values.size() == params_.size(), "{}: {} parameter values for a space of {}",
                     what, values.size(), params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    metadistill::check(std::isfinite(values[i]) && p.contains(values[i]),
                       "{}: parameter '{}' = {} lies outside [{}, {}]", what, p.name, values[i],
                       p.low, p.high);
  }
}

nlohmann::json SearchSpace::to_json() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : params_)
    j.push_back({{"name", p.name}, {"low", p.low}, {"high", p.high}, {"log", p.log}});
  return j;
}

SearchSpace SearchSpace::from_json(const nlohmann::json& j, const std::string& what) {
  metadistill::check(j.is_array(), "{}: search space: expected a list of parameters, got {}", what,
                     j.dump());
  SearchSpace s;
  for (const auto& p : j) {
    try {
      s.add(ParamSpec{p.at("name").get<std::string>(), p.at("low").get<double>(),
                      p.at("high").get<double>(), p.at("log").get<bool>()});
    } catch (const nlohmann::json::exception& e) {
      fail("{}: search space: bad parameter {}: {}", what, p.dump(), e.what());
    } catch (const Error& e) {
      fail("{}: {}", what, e.what());
    }
  }
  return s;
}

nlohmann::json SearchSpace::values_to_json(const ParamValues& values) const {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < params_.size() && i < values.size(); ++i) j[params_[i].name] = values[i];
  return j;
}

bool SearchSpace::operator==(const SearchSpace& o) const {
  if (params_.size() != o.params_.size()) return false;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto &a = params_[i], &b = o.params_[i];
    if (a.name != b.name || a.low != b.low || a.high != b.high || a.log != b.log) return false;
  }
  return true;
}

SearchSpace metaparameter_space(const std::string& temperature_prior) {
  SearchSpace s;
  s.add_uniform("lambda1", 0.0, 1.0);
  if (temperature_prior == "log-uniform")
    s.add_log_uniform("temperature", Metaparameters::kMinTemperature,
                      Metaparameters::kMaxTemperature);
  else if (temperature_prior == "uniform")
    s.add_uniform("temperature", Metaparameters::kMinTemperature, Metaparameters::kMaxTemperature);
  else
    fail("temperature prior '{}': expected 'log-uniform' or 'uniform'", temperature_prior);
  return s;
}

}  // namespace metadistill
