#pragma once
// Helpers shared by tests: unique temporary folders removed at scope exit.
#include <atomic>
#include <filesystem>
#include <string>

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

/// True when `what` contains every one of `parts`.
inline bool contains_all(const std::string& what, std::initializer_list<std::string> parts) {
  for (const auto& p : parts)
    if (what.find(p) == std::string::npos) return false;
  return true;
}

}  // namespace metadistill::testing
