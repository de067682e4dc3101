#include "metadistill/models/classifier.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "metadistill/util/error.h"

// Properties every zoo model must have, checked for every name `model_names()` returns.
namespace metadistill {
namespace {

// A small input each model accepts; several shapes for the models whose layout depends on it.
struct Case {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<Case> cases() {
  return {
      {"logreg", {5}},
      {"mlp", {5}},
      {"cnn", {1, 28, 28}},
      {"cnn", {3, 32, 32}},
      {"conv-tiny", {3, 16, 16}},
      {"conv-tiny", {1, 28, 28}},
      {"conv-very-tiny", {1, 9, 11}},
      {"resnet8", {1, 12, 12}},
      {"resnet20", {3, 16, 16}},
      {"resnet10", {3, 8, 8}},
      {"resnet18", {3, 8, 10}},
      {"preact-resnet18", {1, 9, 9}},
  };
}

constexpr int64_t kClasses = 7;
constexpr int64_t kBatch = 2;

std::vector<int64_t> batch_shape(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s{kBatch};
  s.insert(s.end(), shape.begin(), shape.end());
  return s;
}

// Every parameter and buffer of `a` equals the one of the same name in `b`.
void expect_same_state(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) {
    const torch::Tensor* other = pb.find(item.key());
    ASSERT_NE(other, nullptr) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), *other)) << item.key();
  }
  const auto ba = a.named_buffers(), bb = b.named_buffers();
  ASSERT_EQ(ba.size(), bb.size());
  for (const auto& item : ba) {
    const torch::Tensor* other = bb.find(item.key());
    ASSERT_NE(other, nullptr) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), *other)) << item.key();
  }
}

// The message of the `Error` `f` throws; fails the test when it throws nothing.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no metadistill::Error thrown";
  return "";
}

class ZooTest : public ::testing::TestWithParam<Case> {
 protected:
  ModelSpec spec() const { return ModelSpec(GetParam().name, kClasses, GetParam().shape); }
  torch::Tensor input(torch::Dtype dtype = torch::kFloat) const {
    return torch::randn(batch_shape(GetParam().shape), torch::TensorOptions().dtype(dtype));
  }
};

TEST_P(ZooTest, LogitsHaveShapeBatchByClasses) {
  torch::manual_seed(0);
  auto model = make_model(spec());
  EXPECT_EQ(model->kind(), GetParam().name);
  auto out = model->forward(input());
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{kBatch, kClasses}));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
}

TEST_P(ZooTest, TapsMatchTapNamesAndEndWithTheLogits) {
  torch::manual_seed(0);
  auto model = make_model(spec());
  auto x = input();
  for (bool training : {true, false}) {
    model->train(training);
    auto out = model->forward(x);
    auto features = model->forward_features(x);
    std::vector<std::string> names;
    for (const auto& [name, t] : features) {
      names.push_back(name);
      EXPECT_EQ(t.size(0), kBatch) << name;
    }
    EXPECT_EQ(names, model->tap_names());
    ASSERT_FALSE(features.empty());
    EXPECT_EQ(features.back().first, "logits");
    EXPECT_TRUE(torch::equal(features.back().second, out)) << "training " << training;
  }
}

TEST_P(ZooTest, GradientsReachEveryParameter) {
  torch::manual_seed(0);
  auto model = make_model(spec());
  auto out = model->forward(input());
  // Random weights: a plain sum would be cancelled by BatchNorm for some parameters.
  (out * torch::randn_like(out)).sum().backward();
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().max().item<double>(), 0.0) << item.key();
  }
}

// The exact hypergradient (DESIGN.md 3.1) differentiates a gradient: double backward must work
// through every layer (in-place activations included).
TEST_P(ZooTest, SecondOrderGradientsWork) {
  torch::manual_seed(0);
  auto model = make_model(spec());
  auto out = model->forward(input());
  // log_softmax makes the loss curved even for logistic regression.
  auto loss = (torch::log_softmax(out, 1) * torch::randn_like(out)).sum();
  auto params = model->parameters();
  auto grads = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true,
                                     /*create_graph=*/true);
  auto s = torch::zeros({});
  for (const auto& g : grads) s = s + (g * torch::randn_like(g)).sum();
  auto second = torch::autograd::grad({s}, params, {}, false, false, /*allow_unused=*/true);
  bool any = false;
  for (const auto& g : second) any = any || (g.defined() && g.abs().max().item<double>() > 0.0);
  EXPECT_TRUE(any);
}

TEST_P(ZooTest, WorksInFloat64AndAgreesWithFloat32) {
  torch::manual_seed(0);
  auto model = make_model(spec());
  model->eval();
  auto x = input();
  auto out32 = model->forward(x);
  model->to(torch::kDouble);
  auto features = model->forward_features(x.to(torch::kDouble));
  for (const auto& [name, t] : features) EXPECT_EQ(t.scalar_type(), torch::kDouble) << name;
  auto out64 = features.back().second;
  const double scale = out64.abs().max().item<double>() + 1.0;
  EXPECT_LT((out64 - out32.to(torch::kDouble)).abs().max().item<double>(), 1e-4 * scale);

  model->train();
  model->forward(x.to(torch::kDouble)).sum().backward();
  for (const auto& p : model->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kDouble);
  }
}

TEST_P(ZooTest, SameSeedGivesSameParameters) {
  torch::manual_seed(11);
  auto a = make_model(spec());
  torch::manual_seed(11);
  auto b = make_model(spec());
  expect_same_state(*a, *b);
  torch::manual_seed(12);
  auto c = make_model(spec());
  bool differs = false;
  const auto pc = c->named_parameters();
  for (const auto& item : a->named_parameters())
    differs = differs || !torch::equal(item.value(), pc[item.key()]);
  EXPECT_TRUE(differs);
}

TEST_P(ZooTest, SaveLoadRestoresParametersAndBatchNormStatistics) {
  torch::manual_seed(1);
  auto a = make_model(spec());
  a->forward(input());  // moves the BatchNorm running statistics away from their initial values
  a->eval();
  std::stringstream stream;
  torch::save(a, stream);

  torch::manual_seed(2);
  auto b = make_model(spec());
  torch::load(b, stream);
  expect_same_state(*a, *b);
  b->eval();
  auto x = input();
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));

  // The archive interface directly, as model files use it.
  torch::serialize::OutputArchive out;
  a->save(out);
  std::stringstream bytes;
  out.save_to(bytes);
  torch::manual_seed(3);
  auto c = make_model(spec());
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  c->load(in);
  expect_same_state(*a, *c);
}

TEST_P(ZooTest, CloneIsAnIndependentCopyAndLeavesTheGeneratorAlone) {
  torch::manual_seed(4);
  auto a = make_model(spec());
  a->forward(input());
  a->eval();

  torch::manual_seed(5);
  auto b = clone_model(*a);
  auto after_clone = torch::rand({4});
  torch::manual_seed(5);
  EXPECT_TRUE(torch::equal(after_clone, torch::rand({4})));

  EXPECT_EQ(b->kind(), a->kind());
  EXPECT_FALSE(b->is_training());
  expect_same_state(*a, *b);
  torch::NoGradGuard no_grad;
  b->parameters().front().add_(1.0);
  EXPECT_FALSE(torch::equal(a->parameters().front(), b->parameters().front()));

  auto d = clone_model(*a);
  d->to(torch::kDouble);
  auto e = clone_model(*d);
  EXPECT_EQ(e->parameters().front().scalar_type(), torch::kDouble);
}

TEST_P(ZooTest, RejectsInputOfTheWrongShape) {
  torch::manual_seed(0);
  auto model = make_model(spec());
  auto shape = batch_shape(GetParam().shape);
  shape[1] += 1;  // one feature or channel too many
  const std::string msg = error_of([&] { model->forward(torch::zeros(shape)); });
  EXPECT_NE(msg.find(fmt::format("{}", c10::IntArrayRef(shape))), std::string::npos) << msg;
  EXPECT_NE(msg.find(GetParam().name), std::string::npos) << msg;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = info.param.name;
  for (auto d : info.param.shape) s += "_" + std::to_string(d);
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(AllModels, ZooTest, ::testing::ValuesIn(cases()), case_name);

TEST(Zoo, EveryNameIsTested) {
  for (const auto& name : model_names()) {
    const auto all = cases();
    EXPECT_TRUE(std::any_of(all.begin(), all.end(), [&](const Case& c) { return c.name == name; }))
        << name;
  }
}

TEST(Zoo, UnknownNameListsTheKnownOnes) {
  const std::string msg = error_of([] { make_model(ModelSpec("resnet99", 10, {3, 32, 32})); });
  EXPECT_NE(msg.find("resnet99"), std::string::npos) << msg;
  for (const auto& name : model_names()) EXPECT_NE(msg.find(name), std::string::npos) << msg;
}

TEST(Zoo, ShapesAModelCannotTakeAreNamed) {
  struct Bad {
    std::string name;
    std::vector<int64_t> shape;
    std::string shown;
  };
  for (const auto& bad : std::vector<Bad>{{"cnn", {3, 6, 28}, "[3, 6, 28]"},  // cnn takes any image >= 8x8
                                          {"cnn", {784}, "[784]"},
                                          {"resnet18", {20}, "[20]"},
                                          {"resnet20", {3, 7, 32}, "[3, 7, 32]"},
                                          {"conv-tiny", {1, 28}, "[1, 28]"},
                                          {"logreg", {3, 32, 32}, "[3, 32, 32]"},
                                          {"mlp", {}, "[]"}}) {
    const std::string msg = error_of([&] { make_model(ModelSpec(bad.name, 10, bad.shape)); });
    EXPECT_NE(msg.find(bad.shown), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad.name), std::string::npos) << msg;
  }
  const std::string msg = error_of([] { make_model(ModelSpec("mlp", 0, {4})); });
  EXPECT_NE(msg.find("num_classes"), std::string::npos) << msg;
}

TEST(Zoo, CountsOnlyTrainableParameters) {
  torch::nn::Linear layer(3, 2);  // 6 weights, 2 biases
  EXPECT_EQ(count_parameters(*layer), 8);
  layer->bias.set_requires_grad(false);
  EXPECT_EQ(count_parameters(*layer), 6);
}

// The table of the report: parameters of every model on Fashion-MNIST and CIFAR-10 shapes (the
// vector models on flattened images).
TEST(Zoo, ParameterCountsOfEveryModel) {
  std::printf("%-16s %12s %12s\n", "model", "fmnist", "cifar10");
  for (const auto& name : model_names()) {
    const bool vector = name == "logreg" || name == "mlp";
    const auto fmnist = vector ? std::vector<int64_t>{784} : std::vector<int64_t>{1, 28, 28};
    const auto cifar = vector ? std::vector<int64_t>{3072} : std::vector<int64_t>{3, 32, 32};
    const int64_t n_fmnist = count_parameters(*make_model(ModelSpec(name, 10, fmnist)));
    const int64_t n_cifar = count_parameters(*make_model(ModelSpec(name, 10, cifar)));
    std::printf("%-16s %12lld %12lld\n", name.c_str(), static_cast<long long>(n_fmnist),
                static_cast<long long>(n_cifar));
    EXPECT_GT(n_fmnist, 0);
    EXPECT_GT(n_cifar, 0);
  }
}

}  // namespace
}  // namespace metadistill
