#include "metadistill/train/export.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// A zoo model with BatchNorm statistics away from their initial values, in eval mode.
Classifier trained_looking(const ModelSpec& spec) {
  torch::manual_seed(3);
  Classifier m = make_model(spec);
  torch::NoGradGuard no_grad;
  for (auto& b : m->named_buffers())
    if (b.key().find("running") != std::string::npos) b.value().uniform_(0.5, 1.5);
  m->eval();
  return m;
}

struct Case {
  std::string model;
  std::vector<int64_t> shape;
};

class ExportEveryStudent : public ::testing::TestWithParam<Case> {};

}  // namespace

// LibTorch reads back both files: the state dict has every parameter and buffer under its
// PyTorch name, and the TorchScript forward gives the C++ model's logits.
TEST_P(ExportEveryStudent, StateDictAndTorchScriptReproduceTheModel) {
  const Case c = GetParam();
  const ModelSpec spec(c.model, 4, c.shape);
  Classifier m = trained_looking(spec);
  TempDir dir("export");
  const ExportedStudent e = export_student(*m, spec, dir / "out", "student.pt");

  const std::string bytes = read_file(e.state_dict);
  const auto state = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  size_t expected = 0;
  for (const auto& p : m->named_parameters()) {
    ++expected;
    ASSERT_TRUE(state.contains(p.key())) << p.key();
    EXPECT_TRUE(state.at(p.key()).toTensor().equal(p.value())) << p.key();
  }
  for (const auto& b : m->named_buffers()) {
    ++expected;
    ASSERT_TRUE(state.contains(b.key())) << b.key();
    EXPECT_TRUE(state.at(b.key()).toTensor().equal(b.value())) << b.key();
  }
  EXPECT_EQ(state.size(), expected);

  torch::jit::Module scripted = torch::jit::load(e.torchscript.string());
  std::vector<int64_t> batch = {5};
  batch.insert(batch.end(), c.shape.begin(), c.shape.end());
  const auto x = torch::randn(batch);
  torch::NoGradGuard no_grad;
  const auto want = m->forward(x);
  const auto got = scripted.forward({x}).toTensor();
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);

  const std::string py = read_file(e.python_module);
  EXPECT_NE(py.find("class Model(nn.Module):"), std::string::npos);
  for (const auto& child : m->named_children())
    EXPECT_NE(py.find("self." + child.key() + " = nn."), std::string::npos) << child.key() << py;
  EXPECT_NE(read_file(e.manifest).find("\"model\": \"" + c.model + "\""), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, ExportEveryStudent,
    ::testing::Values(Case{"logreg", {3}}, Case{"mlp", {6}}, Case{"cnn", {1, 28, 28}},
                      Case{"cnn", {3, 32, 32}}, Case{"conv-tiny", {3, 16, 16}},
                      Case{"conv-very-tiny", {1, 12, 12}}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = info.param.model + "_" + std::to_string(info.param.shape[0]);
      for (auto& ch : name)
        if (ch == '-') ch = '_';
      return name + "_" + std::to_string(info.index);
    });

TEST(Export, CnnModuleMirrorsTheLayersOptions) {
  const ModelSpec spec("cnn", 10, {1, 28, 28});
  Classifier m = make_model(spec);
  const std::string py = student_python_source(*m, spec);
  EXPECT_NE(py.find("self.conv1 = nn.Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), bias=False)"),
            std::string::npos)
      << py;
  EXPECT_NE(py.find("self.bn1 = nn.BatchNorm2d(8, eps=1e-05, momentum=0.1)"), std::string::npos) << py;
  EXPECT_NE(py.find("self.fc2 = nn.Linear(64, 10, bias=True)"), std::string::npos) << py;
  EXPECT_NE(py.find("h = torch.relu(torch.max_pool2d(self.bn1(self.conv1(x)), [2, 2]))"),
            std::string::npos)
      << py;
}

TEST(Export, AModelWithoutAnExporterFailsBeforeWritingAnything) {
  TempDir dir("noexport");
  const ModelSpec spec("resnet8", 10, {1, 28, 28});
  Classifier m = make_model(spec);
  expect_error([&] { export_student(*m, spec, dir / "out"); },
               {"resnet8", "no PyTorch exporter", "logreg, mlp, cnn"});
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
}
