#include "metadistill/util/settings_key.h"

#include <map>

#include <fmt/format.h>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace {

// "/student/train/epochs" -> "student.train.epochs" (json::flatten gives JSON pointers).
std::string dotted(const std::string& pointer) {
  std::string s = pointer.empty() || pointer[0] != '/' ? pointer : pointer.substr(1);
  for (auto& c : s)
    if (c == '/') c = '.';
  return s.empty() ? "(all)" : s;
}

std::map<std::string, nlohmann::json> leaves(const nlohmann::json& j) {
  std::map<std::string, nlohmann::json> out;
  if (!j.is_structured()) {
    out[""] = j;
    return out;
  }
  const nlohmann::json flat = j.flatten();  // kept alive: items() only refers to it
  for (const auto& [k, v] : flat.items()) out[dotted(k)] = v;
  return out;
}

}  // namespace

std::string settings_key(const nlohmann::json& settings) { return hash_string(settings.dump()); }

std::vector<std::string> settings_differences(const nlohmann::json& stored,
                                              const nlohmann::json& current) {
  const auto a = leaves(stored), b = leaves(current);
  std::map<std::string, std::string> diff;
  auto show = [](const std::map<std::string, nlohmann::json>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string("(absent)") : it->second.dump();
  };
  for (const auto& [k, v] : a)
    if (!b.count(k) || b.at(k) != v) diff[k] = fmt::format("{}: {} -> {}", k, show(a, k), show(b, k));
  for (const auto& [k, v] : b)
    if (!a.count(k)) diff[k] = fmt::format("{}: {} -> {}", k, show(a, k), show(b, k));
  std::vector<std::string> out;
  for (auto& [k, line] : diff) out.push_back(std::move(line));
  return out;
}

nlohmann::json settings_record(const nlohmann::json& settings) {
  return {{"settings", settings}, {"settings_key", settings_key(settings)}};
}

StoredSettings check_stored_settings(const nlohmann::json& record, const nlohmann::json& current,
                                     const std::string& what) {
  if (!record.is_object() || !record.contains("settings_key")) return StoredSettings::kLegacy;
  const std::string stored_key = record.at("settings_key").is_string()
                                     ? record.at("settings_key").get<std::string>()
                                     : std::string();
  if (stored_key == settings_key(current)) return StoredSettings::kMatch;
  auto diff = settings_differences(record.value("settings", nlohmann::json()), current);
  if (diff.empty()) diff.push_back("(settings key " + stored_key + " does not match)");
  fail("{}: stored with other settings than this run's: {}; refusing to reuse or continue it "
       "(run again with --fresh to discard it and start afresh)",
       what, fmt::join(diff, "; "));
}

std::string legacy_settings_warning(const std::string& what) {
  return fmt::format("warning: {}: stored before settings keys; assuming the current settings",
                     what);
}

}  // namespace metadistill
