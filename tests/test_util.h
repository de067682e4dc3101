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

/// A config on the paper's synthetic data (val = test) with a logistic-regression teacher (2000
/// full-batch epochs): the student `model` trains `epochs` full-batch epochs at `lr`, evaluated
/// every `eval_every` and checkpointed every `checkpoint_every` (0: never); `method_settings` is
/// the flow mapping under method.settings, `more` is appended (other top-level keys).
inline std::string synthetic_config(const std::string& model, int epochs, double lr,
                                    int eval_every, int checkpoint_every,
                                    const std::string& method_settings,
                                    const std::string& more = "") {
  return "threads: 1\n"
         "data: {name: synthetic, variant: reference, val_is_test: true}\n"
         "teacher:\n"
         "  model: logreg\n"
         "  train: {epochs: 2000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, "
         "checkpoint_every: 0}\n"
         "student:\n"
         "  model: " + model + "\n"
         "  train: {epochs: " + std::to_string(epochs) + ", batch_size: 0, lr: " +
         std::to_string(lr) + ", lr_step: 0, eval_every: " + std::to_string(eval_every) +
         ", checkpoint_every: " + std::to_string(checkpoint_every) + "}\n"
         "method:\n"
         "  settings: " + method_settings + "\n" + more;
}

}  // namespace metadistill::testing
