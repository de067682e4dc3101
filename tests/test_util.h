#pragma once
// Helpers shared by tests: unique temporary folders removed at scope exit.
#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "metadistill/util/error.h"

#include <unistd.h>

namespace metadistill::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("metadistill-" + tag + "-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

/// The message of the exception `f` throws, or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

/// Runs `fn`, expects a metadistill::Error and checks that its message holds every part.
inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected metadistill::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& part : parts)
      EXPECT_NE(what.find(part), std::string::npos)
          << "message \"" << what << "\" lacks \"" << part << "\"";
  }
}

/// True when `what` contains every one of `parts`.
inline bool contains_all(const std::string& what, std::initializer_list<std::string> parts) {
  for (const auto& p : parts)
    if (what.find(p) == std::string::npos) return false;
  return true;
}

}  // namespace metadistill::testing
