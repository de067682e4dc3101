#include "metadistill/train/external_teacher.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include "metadistill/data/npy.h"
#include "metadistill/data/synthetic.h"
#include "metadistill/train/teacher.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// A TorchScript file as torch.jit.save writes it, made here by LibTorch's own compiler: forward
// is a linear map [B, in] -> [B, k] with weights `w`; `methods` adds more TorchScript source.
void write_torchscript(const std::filesystem::path& path, const torch::Tensor& w,
                       const std::string& forward_body = "return torch.matmul(x, self.w.t())",
                       const std::string& methods = "") {
  torch::jit::Module m(c10::QualifiedName("__torch__.TestTeacher"));
  m.register_parameter("w", w, false);
  m.define("def forward(self, x):\n    " + forward_body + "\n" + methods);
  m.save(path.string());
}

const DataBundle& synthetic() {
  static const DataBundle b = make_synthetic(SyntheticOptions());
  return b;
}

// Cache files in `dir` (the lock files beside them not counted).
int64_t cache_files(const std::filesystem::path& dir) {
  int64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    n += e.path().extension() == ".pt" ? 1 : 0;
  return n;
}

std::vector<int64_t> teacher_shape() {
  return synthetic().pool.teacher_input().sizes().slice(1).vec();
}

}  // namespace

TEST(TorchScriptTeacher, RunsInEvalModeAndIsCachedByTheFilesContents) {
  TempDir dir("ts");
  const auto& b = synthetic();
  const auto file = dir / "teacher.pt";
  const auto w = torch::randn({2, teacher_shape()[0]});
  write_torchscript(file, w);
  auto t = load_torchscript_teacher(file, teacher_shape(), 2);
  EXPECT_EQ(t->tap_names(), std::vector<std::string>{"logits"});
  const auto x = b.pool.teacher_input();
  const auto expected = torch::matmul(x, w.t());
  const auto logits = cached_teacher_logits(*t, file, b, dir / "cache");
  EXPECT_TRUE(torch::allclose(logits, expected, 1e-5, 1e-6));
  EXPECT_EQ(cache_files(dir / "cache"), 1);
  // Same file: the cache is read back (its values, even if the module would say otherwise).
  EXPECT_TRUE(cached_teacher_logits(*t, file, b, dir / "cache").equal(logits));
  // Another teacher in the same file: another key, new outputs.
  const auto w2 = torch::randn({2, teacher_shape()[0]});
  write_torchscript(file, w2);
  auto t2 = load_torchscript_teacher(file, teacher_shape(), 2);
  const auto logits2 = cached_teacher_logits(*t2, file, b, dir / "cache");
  EXPECT_TRUE(torch::allclose(logits2, torch::matmul(x, w2.t()), 1e-5, 1e-6));
  EXPECT_EQ(cache_files(dir / "cache"), 2);
}

TEST(TorchScriptTeacher, ErrorsNameTheFileAndTheProblem) {
  TempDir dir("tsbad");
  const auto shape = teacher_shape();
  const std::string wrong_k = (dir / "three-classes.pt").string();
  write_torchscript(wrong_k, torch::randn({3, shape[0]}));
  expect_error([&] { load_torchscript_teacher(wrong_k, shape, 2); },
               {wrong_k, "returned shape [2, 3]", "expected [2, 2]"});
  const std::string wrong_in = (dir / "wide.pt").string();
  write_torchscript(wrong_in, torch::randn({2, shape[0] + 4}));
  expect_error([&] { load_torchscript_teacher(wrong_in, shape, 2); },
               {wrong_in, "does not fit the data's input shape", "forward on input [2, 3]"});
  const std::string tuple = (dir / "tuple.pt").string();
  write_torchscript(tuple, torch::randn({2, shape[0]}),
                    "return torch.matmul(x, self.w.t()), x");
  expect_error([&] { load_torchscript_teacher(tuple, shape, 2); },
               {tuple, "forward returned a Tuple", "expected the logits"});
  const std::string junk = (dir / "junk.pt").string();
  write_file_atomic(junk, "not a zip archive at all");
  expect_error([&] { load_torchscript_teacher(junk, shape, 2); },
               {junk, "not a TorchScript archive"});
  // A state dict saved like Python's torch.save(model.state_dict()) is a zip, but no module.
  c10::Dict<std::string, torch::Tensor> state;
  state.insert("fc.weight", torch::zeros({2, 3}));
  const auto pickled = torch::pickle_save(state);
  const std::string state_file = (dir / "state_dict.pt").string();
  write_file_atomic(state_file, std::string(pickled.begin(), pickled.end()));
  expect_error([&] { load_torchscript_teacher(state_file, shape, 2); },
               {state_file, "not a TorchScript archive"});
  expect_error([&] { load_torchscript_teacher(dir / "missing.pt", shape, 2); },
               {"missing.pt", "no such file"});
}

TEST(TorchScriptTeacher, TapsFollowTheFeaturesConventionOrSayWhatTheModuleOffers) {
  TempDir dir("tstaps");
  const auto shape = teacher_shape();
  const std::string with = (dir / "with.pt").string();
  write_torchscript(with, torch::randn({2, shape[0]}), "return torch.matmul(x, self.w.t())",
                    "def features(self, x):\n"
                    "    h = torch.relu(x)\n"
                    "    return {'relu': h, 'double': 2.0 * h}\n");
  auto t = load_torchscript_teacher(with, shape, 2);
  EXPECT_EQ(t->tap_names(), (std::vector<std::string>{"relu", "double", "logits"}));
  const auto x = torch::randn({4, shape[0]});
  const Features f = t->forward_features(x);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_TRUE(f[0].second.equal(torch::relu(x)));
  EXPECT_TRUE(f[2].second.allclose(t->forward(x)));

  const std::string without = (dir / "without.pt").string();
  write_torchscript(without, torch::randn({2, shape[0]}), "return torch.matmul(x, self.w.t())",
                    "def embed(self, x):\n    return torch.relu(x)\n");
  auto u = load_torchscript_teacher(without, shape, 2);
  expect_error([&] { u->forward_features(x); },
               {without, "features(self, x) -> Dict[str, Tensor]", "forward", "embed"});
}

TEST(TeacherLogitsFile, ReadsNpyAndPtInTheDataSetsOrder) {
  TempDir dir("logits");
  const auto& b = synthetic();
  const int64_t pool = b.pool.size(), test = b.test.size();
  const auto all = torch::randn({pool + test, 2});
  write_npy(all.slice(0, 0, pool), dir / "pool.npy");
  TeacherLogits l = load_teacher_logits(dir / "pool.npy", b);
  EXPECT_TRUE(l.pool.equal(all.slice(0, 0, pool)));
  EXPECT_FALSE(l.test.defined());
  write_npy(all.to(torch::kHalf), dir / "all16.npy");
  l = load_teacher_logits(dir / "all16.npy", b);
  EXPECT_EQ(l.pool.scalar_type(), torch::kFloat);
  EXPECT_TRUE(l.test.equal(all.slice(0, pool).to(torch::kHalf).to(torch::kFloat)));
  // .pt: what torch::pickle_save writes (Python's torch.save format) and LibTorch's torch::save.
  const auto pickled = torch::pickle_save(all);
  write_file_atomic(dir / "pickled.pt", std::string(pickled.begin(), pickled.end()));
  EXPECT_TRUE(load_teacher_logits(dir / "pickled.pt", b).test.equal(all.slice(0, pool)));
  torch::save(all, (dir / "saved.pt").string());
  EXPECT_TRUE(load_teacher_logits(dir / "saved.pt", b).pool.equal(all.slice(0, 0, pool)));
}

TEST(TeacherLogitsFile, ErrorsNameTheFileAndTheProblem) {
  TempDir dir("logitsbad");
  const auto& b = synthetic();
  const int64_t pool = b.pool.size();
  const auto file = [&](const std::string& name) { return (dir / name).string(); };
  write_npy(torch::randn({pool, 2}).to(torch::kDouble), file("f64.npy"));
  expect_error([&] { load_teacher_logits(file("f64.npy"), b); },
               {file("f64.npy"), "dtype Double", "expected float32 or float16"});
  write_npy(torch::randn({pool - 1, 2}), file("rows.npy"));
  expect_error([&] { load_teacher_logits(file("rows.npy"), b); },
               {file("rows.npy"), fmt::format("{} rows: expected {}", pool - 1, pool)});
  write_npy(torch::randn({pool, 3}), file("cols.npy"));
  expect_error([&] { load_teacher_logits(file("cols.npy"), b); },
               {file("cols.npy"), "3 columns", "has 2 classes"});
  write_npy(torch::randn({pool * 2}), file("flat.npy"));
  expect_error([&] { load_teacher_logits(file("flat.npy"), b); },
               {file("flat.npy"), "expected two dimensions"});
  auto nan = torch::randn({pool, 2});
  nan[3][1] = std::nan("");
  nan[5][0] = INFINITY;
  write_npy(nan, file("nan.npy"));
  expect_error([&] { load_teacher_logits(file("nan.npy"), b); },
               {file("nan.npy"), "row 3 column 1 is nan", "2 non-finite"});
  const auto dict = torch::pickle_save(c10::Dict<std::string, torch::Tensor>());
  write_file_atomic(file("dict.pt"), std::string(dict.begin(), dict.end()));
  expect_error([&] { load_teacher_logits(file("dict.pt"), b); },
               {file("dict.pt"), "expected one tensor"});
  write_file_atomic(file("logits.csv"), "1,2\n");
  expect_error([&] { load_teacher_logits(file("logits.csv"), b); },
               {file("logits.csv"), "'.csv'", "expected .npy or .pt"});
  expect_error([&] { load_teacher_logits(file("none.npy"), b); }, {file("none.npy"), "no such file"});
}
