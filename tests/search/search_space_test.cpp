#include "metadistill/search/search_space.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metadistill/util/error.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::error_of;

TEST(SearchSpace, RejectsBadRangesWithClearMessages) {
  SearchSpace s;
  EXPECT_TRUE(contains_all(error_of([&] { s.add_uniform("lambda1", 0.5, 0.5); }),
                           {"lambda1", "empty range", "[0.5, 0.5]"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.add_uniform("lambda1", 1, 0); }),
                           {"lambda1", "inverted range", "[1, 0]"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.add_log_uniform("temperature", 0, 10); }),
                           {"temperature", "log-uniform", "lower bound 0", "> 0"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.add_log_uniform("temperature", -1, 10); }),
                           {"temperature", "lower bound -1"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.add_uniform("x", 0, NAN); }), {"x", "finite"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.add_uniform("x", -INFINITY, 1); }), {"x", "finite"}));
  EXPECT_TRUE(s.empty());
  s.add_uniform("x", 0, 1);
  EXPECT_TRUE(contains_all(error_of([&] { s.add_uniform("x", 0, 2); }), {"'x'", "twice"}));
  EXPECT_TRUE(contains_all(error_of([&] { s.index_of("y"); }), {"'y'", "x"}));
}

TEST(SearchSpace, ChecksValuesAndRoundTripsThroughJson) {
  SearchSpace s = metaparameter_space();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].to_string(), "lambda1 ~ U(0, 1)");
  EXPECT_EQ(s[1].to_string(), "temperature ~ logU(0.1, 10)");
  EXPECT_NEAR(s[1].internal_low(), std::log(0.1), 1e-15);
  EXPECT_NEAR(s[1].from_internal(s[1].to_internal(3.0)), 3.0, 1e-15);
  EXPECT_NO_THROW(s.check({0.5, 1.0}, "trial 0"));
  EXPECT_TRUE(contains_all(error_of([&] {
                             s.check({0.5, 20.0}, "trial 3");
                           }),
                           {"trial 3", "temperature", "20", "[0.1, 10]"}));
  EXPECT_TRUE(
      contains_all(error_of([&] { s.check({0.5}, "trial 4"); }), {"trial 4", "1 parameter"}));
  EXPECT_EQ(SearchSpace::from_json(s.to_json(), "test"), s);
  EXPECT_NE(metaparameter_space("uniform"), s);
  EXPECT_FALSE(metaparameter_space("uniform")[1].log);
  EXPECT_THROW(metaparameter_space("normal"), Error);
  EXPECT_EQ(s.values_to_json({0.25, 2.0}),
            (nlohmann::json{{"lambda1", 0.25}, {"temperature", 2.0}}));
  // A stored space with a bad range is reported with the file it came from.
  nlohmann::json bad =
      nlohmann::json::array({{{"name", "t"}, {"low", 0.0}, {"high", 1.0}, {"log", true}}});
  EXPECT_TRUE(
      contains_all(error_of([&] { SearchSpace::from_json(bad, "s.db"); }), {"s.db", "'t'", "> 0"}));
}
