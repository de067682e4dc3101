#include "metadistill/util/error.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::error_of;

// "[a, b, c]", built here from the numbers.
std::string bracketed(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Error is a std::runtime_error: callers that catch the standard type catch it too.
TEST(ErrorTest, DerivesFromRuntimeError) {
  static_assert(std::is_base_of<std::runtime_error, Error>::value,
                "Error must derive from std::runtime_error");
  bool caught = false;
  try {
    throw Error("plain message");
  } catch (const std::runtime_error& e) {
    caught = true;
    EXPECT_STREQ(e.what(), "plain message");
  }
  EXPECT_TRUE(caught);
}

// fail throws an Error whose message is the fmt-formatted text.
TEST(ErrorTest, FailThrowsTheFormattedMessage) {
  const std::string option = "depth";
  const int value = 42;
  const double limit = 2.5;
  bool caught = false;
  try {
    fail("option {} = {} exceeds {}", option, value, limit);
  } catch (const Error& e) {
    caught = true;
    EXPECT_EQ(std::string(e.what()),
              fmt::format("option {} = {} exceeds {}", option, value, limit));
    EXPECT_EQ(std::string(e.what()), "option depth = 42 exceeds 2.5");
  }
  EXPECT_TRUE(caught);
  // Braces escaped in the format stay literal.
  EXPECT_EQ(error_of([] { fail("set {{}} is empty"); }), "set {} is empty");
}

// check throws nothing when its condition holds, and an Error with the formatted message when it
// does not.
TEST(ErrorTest, CheckThrowsOnlyWhenTheConditionIsFalse) {
  const std::string name = "lr";
  EXPECT_NO_THROW(check(true, "{} must be positive, got {}", name, -1.0));
  EXPECT_NO_THROW(check(1 + 1 == 2, "never"));
  try {
    check(false, "{} must be positive, got {}", name, -1.5);
    ADD_FAILURE() << "check(false, ...) did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "lr must be positive, got -1.5");
  } catch (...) {
    ADD_FAILURE() << "check threw something other than metadistill::Error";
  }
}

// A tensor shape (c10::IntArrayRef) formats as "[2, 3]": bracketed, comma-separated, "[]" for a
// scalar, also inside a check message.
TEST(ErrorTest, TensorShapesFormatAsBracketedLists) {
  EXPECT_EQ(fmt::format("{}", torch::zeros({2, 3}).sizes()), "[2, 3]");
  const std::vector<int64_t> shape = {4, 1, 7, 0};
  EXPECT_EQ(fmt::format("{}", torch::zeros(shape).sizes()), bracketed(shape));
  EXPECT_EQ(fmt::format("{}", torch::zeros({5}).sizes()), bracketed({5}));
  EXPECT_EQ(fmt::format("{}", torch::tensor(1.0).sizes()), "[]");
  const auto x = torch::zeros({3, 8});
  EXPECT_EQ(error_of([&] { check(x.dim() == 4, "need [B, C, H, W], got {}", x.sizes()); }),
            "need [B, C, H, W], got [3, 8]");
}

}  // namespace
}  // namespace metadistill
