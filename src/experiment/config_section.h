#pragma once
// `Section`, the reader of every key of a config (experiment/config.h and the `multilayer:`
// section of experiment/multilayer.h): private to src/experiment, since it speaks yaml-cpp.
#include <initializer_list>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "metadistill/util/error.h"

namespace metadistill {
namespace detail {

// Reads the keys of one YAML mapping, remembering which were used so that the unknown ones can
// be reported with their full path.
class Section {
 public:
  Section(YAML::Node node, std::string path, std::string file)
      : node_(std::move(node)), path_(std::move(path)), file_(std::move(file)) {
    check(!node_ || node_.IsMap() || node_.IsNull(), "{}: '{}' must be a mapping of keys", file_,
          path_.empty() ? "top level" : path_);
  }

  template <typename T>
  void get(const std::string& key, T& out) {
    used_.insert(key);
    if (!node_ || !node_.IsMap()) return;
    auto v = node_[key];
    if (!v || v.IsNull()) return;
    try {
      out = v.as<T>();
    } catch (const YAML::Exception&) {
      fail("{}: key '{}': expected {}, got '{}'", file_, full(key), type_name<T>(), dump(v));
    }
  }

  Section child(const std::string& key) {
    used_.insert(key);
    YAML::Node v = node_ && node_.IsMap() ? node_[key] : YAML::Node();
    return Section(v, full(key), file_);
  }

  YAML::Node raw(const std::string& key) {
    used_.insert(key);
    return node_ && node_.IsMap() ? node_[key] : YAML::Node();
  }

  void finish() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const auto key = kv.first.as<std::string>();
      if (!used_.count(key)) {
        std::vector<std::string> known(used_.begin(), used_.end());
        fail("{}: unknown key '{}' (known keys here: {})", file_, full(key), fmt::join(known, ", "));
      }
    }
  }

  std::string full(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  template <typename T>
  static const char* type_name() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else if constexpr (std::is_same_v<T, std::vector<double>>) return "a list of numbers";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of names";
    else return "a list";
  }
  static std::string dump(const YAML::Node& v) {
    YAML::Emitter e;
    e << YAML::Flow << v;
    return e.c_str();
  }

  YAML::Node node_;
  std::string path_, file_;
  std::set<std::string> used_;
};

/// True when `root` has a value (not null) at `path`, a chain of mapping keys.
bool given(const YAML::Node& root, std::initializer_list<const char*> path);
/// The config's `loss.kind`: "hinton" (the default) or "vid"; throws `Error` naming the file
/// otherwise.
std::string loss_kind(const YAML::Node& root, const std::string& file);
/// The keys of a `loss:` section of kind vid (read by the multi-layer reader; the same keys as
/// in `multilayer:`).
const std::vector<std::string>& vid_loss_keys();

}  // namespace detail
}  // namespace metadistill
