#pragma once
/// Error type of metadistill: every message names the bad value, what was expected and, where
/// there is one, the file (STYLE.md item 11).
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <torch/torch.h>

/// Tensor shapes print as [2, 3] in messages.
template <>
struct fmt::formatter<c10::IntArrayRef> : fmt::ostream_formatter {};

namespace metadistill {

/// Thrown for bad input: a missing or corrupt file, an invalid option value, a NaN loss.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Throws `Error` with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

/// Throws `Error` with the message when `condition` is false.
template <typename... Args>
void check(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace metadistill
