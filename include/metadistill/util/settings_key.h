#pragma once
/// Settings keys (STYLE.md item 19): every stored run and checkpoint carries the settings that
/// shaped it (a JSON object) and their hash. A stored result is reused only when the hash matches
/// the current settings'; otherwise the refusal names every setting that differs, old and new
/// value. Results stored before settings keys existed carry neither and are accepted with a
/// warning, assuming the current settings.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace metadistill {

/// Hash of `settings` (its compact JSON dump; object keys are sorted, so the order in which they
/// were set does not matter), 16 hex digits.
std::string settings_key(const nlohmann::json& settings);

/// The settings that differ between `stored` and `current`, one "a.b.c: old -> new" per leaf
/// (dotted paths, "(absent)" for a missing key), sorted by path.
std::vector<std::string> settings_differences(const nlohmann::json& stored,
                                              const nlohmann::json& current);

/// What `check_stored_settings` found.
enum class StoredSettings {
  kMatch,   ///< stored with the current settings' key
  kLegacy,  ///< stored before settings keys: no key to compare
};

/// Compares the settings recorded in `record` (a JSON object holding "settings" and
/// "settings_key", as written by `settings_record`) with `current`. Returns kMatch or kLegacy;
/// throws `Error` naming `what` (the stored file), every differing setting, and `--fresh` as the
/// way to start afresh when the keys differ.
StoredSettings check_stored_settings(const nlohmann::json& record, const nlohmann::json& current,
                                     const std::string& what);

/// {"settings": settings, "settings_key": settings_key(settings)}: the fields stored beside a
/// result or in a checkpoint.
nlohmann::json settings_record(const nlohmann::json& settings);

/// The one-line warning for a result stored before settings keys ("<what>: stored before settings
/// keys; assuming the current settings").
std::string legacy_settings_warning(const std::string& what);

}  // namespace metadistill
