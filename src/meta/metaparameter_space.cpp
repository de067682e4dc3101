#include "metadistill/meta/metaparameter_space.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metadistill/meta/metaparameters.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }
double softplus(double b) { return b > 30 ? b : std::log1p(std::exp(b)); }
double softplus_inverse(double y) { return y > 30 ? y : std::log(std::expm1(y)); }
double logit(double p) { return std::log(p / (1.0 - p)); }

// A reparametrized interval stays this fraction of its width inside its bounds, so that the
// logit of its value is finite.
constexpr double kIntervalEdge = 1e-6;
// Keeps log vi of a simplex member and the inverse softplus of a log-interval finite.
constexpr double kFloor = 1e-12;

const char* domain_name(MetaDomain d) {
  switch (d) {
    case MetaDomain::kInterval: return "interval";
    case MetaDomain::kLogInterval: return "log-interval";
    case MetaDomain::kSimplex: return "simplex";
  }
  return "?";
}

// Where a reparametrized interval's value lies between its bounds, in [ε, 1 − ε]: the σ(c) of
// its coordinate c.
double unit_position(const MetaComponent& m, double v) {
  const double w = m.hi - m.lo;
  return (std::clamp(v, m.lo + w * kIntervalEdge, m.hi - w * kIntervalEdge) - m.lo) / w;
}

// One past the last member of the simplex group that starts at component `first`.
size_t group_end(const std::vector<MetaComponent>& cs, size_t first) {
  size_t end = first + 1;
  while (end < cs.size() && cs[end].domain == MetaDomain::kSimplex && cs[end].group == first) ++end;
  return end;
}

// Calls `f(first, end)` for each simplex group (components [first, end)).
void for_each_group(const std::vector<MetaComponent>& cs,
                    const std::function<void(size_t, size_t)>& f) {
  for (size_t i = 0; i < cs.size();) {
    if (cs[i].domain != MetaDomain::kSimplex) {
      ++i;
      continue;
    }
    const size_t end = group_end(cs, i);
    f(i, end);
    i = end;
  }
}

// Euclidean projection of v[first, end) onto the simplex (sort, then the largest ρ with
// u_ρ − (Σ_{k≤ρ} u_k − 1)/ρ > 0; Held, Wolfe and Crowder 1974).
void project_simplex(std::vector<double>& v, size_t first, size_t end) {
  std::vector<double> u(v.begin() + first, v.begin() + end);
  std::sort(u.begin(), u.end(), std::greater<>());
  double sum = 0, theta = 0;
  for (size_t k = 0; k < u.size(); ++k) {
    sum += u[k];
    const double t = (sum - 1.0) / static_cast<double>(k + 1);
    if (u[k] - t > 0) theta = t;
  }
  for (size_t i = first; i < end; ++i) v[i] = std::max(v[i] - theta, 0.0);
}

}  // namespace

MetaSpace& MetaSpace::add(MetaComponent c) {
  check(!c.name.empty(), "metaparameter space: a component needs a name");
  for (const auto& o : components_)
    check(o.name != c.name, "metaparameter space: component '{}' given twice", c.name);
  check(std::isfinite(c.lo) && std::isfinite(c.hi) && c.lo <= c.hi,
        "metaparameter '{}': bounds [{}, {}] are not an interval", c.name, c.lo, c.hi);
  check(!c.reparametrized || c.domain == MetaDomain::kSimplex || c.lo < c.hi,
        "metaparameter '{}': a reparametrized {} needs lo < hi, got [{}, {}]", c.name,
        domain_name(c.domain), c.lo, c.hi);
  check(c.domain != MetaDomain::kLogInterval || c.lo > 0,
        "metaparameter '{}': a log-interval needs lo > 0, got {}", c.name, c.lo);
  components_.push_back(std::move(c));
  return *this;
}

MetaSpace& MetaSpace::interval(const std::string& name, double lo, double hi,
                               bool reparametrized) {
  return add({name, MetaDomain::kInterval, lo, hi, reparametrized, 0});
}

MetaSpace& MetaSpace::log_interval(const std::string& name, double lo, double hi,
                                   bool reparametrized) {
  return add({name, MetaDomain::kLogInterval, lo, hi, reparametrized, 0});
}

MetaSpace& MetaSpace::simplex(const std::vector<std::string>& names) {
  check(!names.empty(), "metaparameter space: a simplex needs at least one component");
  const size_t group = components_.size();
  for (const auto& n : names) add({n, MetaDomain::kSimplex, 0.0, 1.0, true, group});
  return *this;
}

size_t MetaSpace::index(const std::string& name) const {
  for (size_t i = 0; i < components_.size(); ++i)
    if (components_[i].name == name) return i;
  fail("unknown metaparameter '{}': expected one of {}", name, fmt::join(names(), ", "));
}

std::vector<std::string> MetaSpace::names() const {
  std::vector<std::string> out;
  for (const auto& c : components_) out.push_back(c.name);
  return out;
}

void MetaSpace::validate(const std::vector<double>& v, const std::string& what) const {
  check(v.size() == size(), "{}: {} values for the {} metaparameters [{}]", what, v.size(), size(),
        fmt::join(names(), ", "));
  for (size_t i = 0; i < size(); ++i) {
    const auto& c = components_[i];
    check(std::isfinite(v[i]) && v[i] >= c.lo && v[i] <= c.hi,
          "{}: {} = {}: expected a value in [{}, {}]", what, c.name, v[i], c.lo, c.hi);
  }
  for_each_group(components_, [&](size_t first, size_t end) {
    const double sum = std::accumulate(v.begin() + first, v.begin() + end, 0.0);
    check(std::abs(sum - 1.0) <= 1e-9, "{}: the weights {}..{} sum to {}, expected 1", what,
          components_[first].name, components_[end - 1].name, sum);
  });
}

std::vector<double> MetaSpace::project(const std::vector<double>& values) const {
  check(values.size() == size(), "metaparameter projection: {} values for {} components",
        values.size(), size());
  std::vector<double> v = values;
  for (size_t i = 0; i < size(); ++i) {
    const auto& m = components_[i];
    if (m.domain == MetaDomain::kSimplex) continue;
    // A reparametrized interval reaches only the inside of its edges.
    const double edge = m.reparametrized && m.domain == MetaDomain::kInterval
                            ? (m.hi - m.lo) * kIntervalEdge
                            : 0.0;
    v[i] = std::clamp(v[i], m.lo + edge, m.hi - edge);
  }
  for_each_group(components_, [&](size_t first, size_t end) { project_simplex(v, first, end); });
  return v;
}

std::vector<double> MetaSpace::to_coordinates(const std::vector<double>& values) const {
  check(values.size() == size(), "metaparameter coordinates: {} values for {} components",
        values.size(), size());
  std::vector<double> c(size());
  for (size_t i = 0; i < size(); ++i) {
    const auto& m = components_[i];
    const double v = values[i];
    if (m.domain == MetaDomain::kSimplex) {
      c[i] = std::log(std::max(v, kFloor));
    } else if (!m.reparametrized) {
      c[i] = std::clamp(v, m.lo, m.hi);
    } else if (m.domain == MetaDomain::kInterval) {
      c[i] = logit(unit_position(m, v));
    } else {
      c[i] = softplus_inverse(std::max(v - m.lo, kFloor));
    }
  }
  return c;
}

std::vector<double> MetaSpace::from_coordinates(const std::vector<double>& coordinates) const {
  check(coordinates.size() == size(), "metaparameter values: {} coordinates for {} components",
        coordinates.size(), size());
  std::vector<double> v(size());
  for (size_t i = 0; i < size(); ++i) {
    const auto& m = components_[i];
    const double c = coordinates[i];
    if (m.domain == MetaDomain::kSimplex) continue;  // below, by group
    if (!m.reparametrized) {
      v[i] = std::clamp(c, m.lo, m.hi);
    } else if (m.domain == MetaDomain::kInterval) {
      const double w = m.hi - m.lo;
      v[i] = std::clamp(m.lo + w * sigmoid(c), m.lo + w * kIntervalEdge, m.hi - w * kIntervalEdge);
    } else {
      v[i] = std::clamp(m.lo + softplus(c), m.lo, m.hi);
    }
  }
  for_each_group(components_, [&](size_t first, size_t end) {
    const double mx = *std::max_element(coordinates.begin() + first, coordinates.begin() + end);
    double sum = 0;
    for (size_t i = first; i < end; ++i) sum += v[i] = std::exp(coordinates[i] - mx);
    for (size_t i = first; i < end; ++i) v[i] /= sum;
  });
  return v;
}

std::vector<double> MetaSpace::settle(const std::vector<double>& coordinates) const {
  const auto back = to_coordinates(from_coordinates(coordinates));
  std::vector<double> c = coordinates;
  for (size_t i = 0; i < size(); ++i)
    if (components_[i].domain != MetaDomain::kSimplex) c[i] = back[i];
  return c;
}

torch::Tensor MetaSpace::from_coordinates(const torch::Tensor& coordinates) const {
  check(coordinates.dim() == 1 && coordinates.size(0) == static_cast<int64_t>(size()),
        "metaparameter values: coordinates of shape {} for {} components", coordinates.sizes(),
        size());
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < size();) {
    const auto& m = components_[i];
    const auto at = static_cast<int64_t>(i);
    if (m.domain == MetaDomain::kSimplex) {
      const size_t end = group_end(components_, i);
      parts.push_back(torch::softmax(coordinates.slice(0, at, static_cast<int64_t>(end)), 0));
      i = end;
      continue;
    }
    auto c = coordinates.slice(0, at, at + 1);
    if (!m.reparametrized) {
      parts.push_back(c);  // kept in its domain by the caller
    } else if (m.domain == MetaDomain::kInterval) {
      const double w = m.hi - m.lo;
      parts.push_back(torch::clamp(m.lo + w * torch::sigmoid(c), m.lo + w * kIntervalEdge,
                                   m.hi - w * kIntervalEdge));
    } else {
      parts.push_back(torch::clamp_max(m.lo + torch::nn::functional::softplus(c), m.hi));
    }
    ++i;
  }
  return parts.size() == 1 ? parts.front() : torch::cat(parts);
}

std::vector<double> MetaSpace::chain_rule(const std::vector<double>& values,
                                          const std::vector<double>& gradient) const {
  check(values.size() == size() && gradient.size() == size(),
        "metaparameter chain rule: {} values and {} gradient entries for {} components",
        values.size(), gradient.size(), size());
  std::vector<double> g = gradient;
  const auto c = to_coordinates(values);
  for (size_t i = 0; i < size(); ++i) {
    const auto& m = components_[i];
    if (m.domain == MetaDomain::kSimplex || !m.reparametrized) continue;
    if (m.domain == MetaDomain::kInterval) {
      const double s = unit_position(m, values[i]);
      g[i] *= (m.hi - m.lo) * s * (1 - s);
    } else {
      g[i] *= sigmoid(c[i]);
    }
  }
  for_each_group(components_, [&](size_t first, size_t end) {
    double dot = 0;
    for (size_t i = first; i < end; ++i) dot += values[i] * gradient[i];
    for (size_t i = first; i < end; ++i) g[i] = values[i] * (gradient[i] - dot);
  });
  return g;
}

std::vector<double> MetaSpace::draw(const std::vector<double>& u) const {
  check(u.size() == size(), "metaparameter draw: {} uniforms for {} components", u.size(), size());
  std::vector<double> v(size());
  for (size_t i = 0; i < size(); ++i) {
    const auto& m = components_[i];
    if (m.domain == MetaDomain::kInterval) {
      v[i] = m.lo + (m.hi - m.lo) * u[i];
    } else if (m.domain == MetaDomain::kLogInterval) {
      const double a = std::log10(m.lo), b = std::log10(m.hi);
      v[i] = std::pow(10.0, a + (b - a) * u[i]);
    }
  }
  for_each_group(components_, [&](size_t first, size_t end) {
    double sum = 0;
    for (size_t i = first; i < end; ++i) sum += v[i] = std::max(u[i], kFloor);
    for (size_t i = first; i < end; ++i) v[i] /= sum;
  });
  return v;
}

std::vector<double> MetaSpace::draw_coordinates(const std::vector<double>& u) const {
  auto c = to_coordinates(draw(u));
  for (size_t i = 0; i < size(); ++i)
    if (components_[i].domain == MetaDomain::kSimplex) c[i] = std::log(std::max(u[i], kFloor));
  return c;
}

MetaSpace hinton_space(bool reparametrized) {
  return MetaSpace()
      .interval("lambda1", 0.0, 1.0, reparametrized)
      .log_interval("temperature", Metaparameters::kMinTemperature,
                    Metaparameters::kMaxTemperature, reparametrized);
}

MetaSpace vid_space(size_t pairs, double beta_min, double beta_max) {
  MetaSpace s;
  std::vector<std::string> names;
  for (size_t k = 1; k <= pairs; ++k) names.push_back(fmt::format("lambda_{}", k));
  if (!names.empty()) s.simplex(names);
  return s.interval("beta", beta_min, beta_max);
}

}  // namespace metadistill
