// From PyTorch and back (issue 15), end to end with Debian's python3-torch: a teacher trained and
// scripted in Python, distilled here through the CLI, the student exported, and Python checks
// that it reproduces the C++ student's logits. Python is a declared dependency of the tests
// (scripts/setup.sh): when it or its torch is missing, the test fails.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "metadistill/data/image_codec.h"
#include "metadistill/data/npy.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/train/external_teacher.h"
#include "metadistill/train/teacher.h"
#include "metadistill/util/files.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::describe;
using metadistill::testing::TempDir;

namespace {

// The interpreter with PyTorch: $METADISTILL_PYTHON, else Debian's (python3-torch installs
// there; a python3 earlier on PATH, say pyenv's, may lack it).
std::string python() {
  if (const char* p = std::getenv("METADISTILL_PYTHON")) return p;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

struct PyRun {
  int exit_code = -1;
  std::string output;
};

PyRun run_python(const std::vector<std::string>& args, const fs::path& log) {
  std::string cmd = python();
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " > '" + log.string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  PyRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = fs::exists(log) ? read_file(log) : "";
  r.output = cmd + "\n" + r.output;
  return r;
}

std::string script(const std::string& name) {
  return (fs::path(METADISTILL_SOURCE_DIR) / "scripts" / name).string();
}

// Two classes of grey 28x28 noise, dark and bright: 40 training and 50 test images each.
void write_images(const fs::path& root) {
  auto gen = at::detail::createCPUGenerator(11);
  for (const std::string split : {"train", "test"}) {
    const int n = split == "train" ? 40 : 50;
    for (int cls = 0; cls < 2; ++cls)
      for (int i = 0; i < n; ++i) {
        auto img = torch::randint(0, 120, {1, 28, 28}, gen, torch::kInt64) + 120 * cls;
        write_image(img.to(torch::kUInt8),
                    root / split / (cls == 0 ? "dark" : "bright") / (std::to_string(i) + ".png"));
      }
  }
}

}  // namespace

TEST(PyTorchRoundTrip, IntegrationTorchScriptTeacherToExportedStudentInPython) {
  TempDir dir("roundtrip");
  write_images(dir / "images");

  // 1. The teacher, trained and scripted in Python.
  const auto py_dir = dir / "py";
  PyRun made = run_python({script("pytorch_teacher.py"), "--out-dir", py_dir.string(),
                           "--input-shape", "1,28,28", "--classes", "2", "--train-folder",
                           (dir / "images" / "train").string(), "--steps", "15"},
                          dir / "teacher.log");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  ASSERT_TRUE(fs::exists(py_dir / "teacher.pt")) << made.output;

  // What Python's torch.save and numpy.save wrote reads back here, equal.
  const auto from_pt = load_pt_tensor(py_dir / "sample_logits.pt");
  const auto from_npy = read_npy(py_dir / "sample_logits.npy");
  EXPECT_EQ(from_pt.sizes(), (std::vector<int64_t>{7, 2}));
  EXPECT_TRUE(from_pt.equal(from_npy));

  // Python's features(x) -> Dict[str, Tensor] gives the taps for multi-layer distillation.
  const auto teacher = load_torchscript_teacher(py_dir / "teacher.pt", {1, 28, 28}, 2);
  EXPECT_EQ(teacher->tap_names(), (std::vector<std::string>{"conv1", "conv2", "logits"}));

  // 2. Distilled here through the CLI, the TorchScript file as the teacher.
  const std::string config = (dir / "roundtrip.yaml").string();
  write_file_atomic(config, R"(preset: roundtrip
threads: 1
data: {name: folder, root: )" + (dir / "images").string() + R"(, channels: 1, val_size: 10}
teacher: {torchscript: )" + (py_dir / "teacher.pt").string() + R"(}
student:
  model: cnn
  train: {epochs: 1, batch_size: 16, lr: 0.05, lr_step: 0, eval_every: 1}
method: {name: fixed, lambda1: 0.5, temperature: 2}
)");
  const std::vector<std::string> distill = {"distill", config, "--out", (dir / "run").string(),
                                            "-q"};
  const auto d = metadistill::testing::run_cli(distill);
  ASSERT_EQ(d.exit_code, 0) << describe(distill, d);
  EXPECT_TRUE(contains_all(d.out, {"teacher torchscript test accuracy"})) << describe(distill, d);
  const fs::path run_dir = dir / "run" / "distill" / "fixed-seed0";
  ASSERT_TRUE(fs::exists(run_dir / "student.pt")) << describe(distill, d);
  EXPECT_FALSE(fs::exists(dir / "run" / "teacher.pt")) << "a zoo teacher was trained";

  // 3. Exported.
  const std::vector<std::string> exp = {"export", run_dir.string(), "--out",
                                        (dir / "export").string()};
  const auto e = metadistill::testing::run_cli(exp);
  ASSERT_EQ(e.exit_code, 0) << describe(exp, e);
  for (const char* f : {"student_state_dict.pt", "student_model.py", "student_torchscript.pt",
                        "export.json"})
    EXPECT_TRUE(fs::exists(dir / "export" / f)) << f << "\n" << describe(exp, e);

  // 4. The C++ student's logits on the 100 test images, and Python's from the export.
  Config c = load_config(config);
  const DataBundle data = load_data(c.data);
  ASSERT_EQ(data.test.size(), 100);
  LoadedModel student = load_model_file(run_dir / "student.pt");
  const auto logits = predict_logits(*student.model, data.test.x);
  write_npy(data.test.x, dir / "inputs.npy");
  write_npy(logits, dir / "logits.npy");
  PyRun check = run_python({script("check_export.py"), (dir / "export").string(),
                            (dir / "inputs.npy").string(), (dir / "logits.npy").string(),
                            "--tol", "1e-5"},
                           dir / "check.log");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_TRUE(contains_all(check.output, {"python module: cnn on 100 samples",
                                          "torchscript: cnn on 100 samples", "<= 1e-05"}))
      << check.output;

  // The script's self-check passed: the same comparison refuses logits moved by 1e-3.
  EXPECT_EQ(check.output.find("self-check"), std::string::npos) << check.output;
}

// Multi-layer distillation takes its teacher taps from the TorchScript module's features(x).
TEST(PyTorchRoundTrip, IntegrationMultilayerTapsFromATorchScriptTeacher) {
  TempDir dir("roundtrip-ml");
  write_images(dir / "images");
  const auto py_dir = dir / "py";
  PyRun made = run_python({script("pytorch_teacher.py"), "--out-dir", py_dir.string(),
                           "--input-shape", "1,28,28", "--classes", "2"},
                          dir / "teacher.log");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto config = [&](const std::string& teacher_taps) {
    const std::string path = (dir / ("ml-" + teacher_taps + ".yaml")).string();
    write_file_atomic(path, R"(preset: tiny
runs: 1
threads: 1
data: {name: folder, root: )" + (dir / "images").string() + R"(, channels: 1, val_size: 10}
teacher: {torchscript: )" + (py_dir / "teacher.pt").string() + R"(}
student:
  model: cnn
  train: {epochs: 1, batch_size: 16, lr: 0.05, lr_step: 0, eval_every: 1}
multilayer:
  methods: [all-pairs-fd]
  teacher_taps: [)" + teacher_taps + R"(]
  student_taps: [conv1, conv2]
)");
    return path;
  };
  const std::vector<std::string> good = {"multilayer", config("conv1, conv2"), "--out",
                                         (dir / "m").string(), "-q"};
  const auto r = metadistill::testing::run_cli(good);
  ASSERT_EQ(r.exit_code, 0) << describe(good, r);
  EXPECT_TRUE(contains_all(r.out, {"| all-pairs-fd | 1 |"})) << describe(good, r);
  const std::vector<std::string> bad = {"multilayer", config("conv1, conv9"), "--out",
                                        (dir / "bad").string(), "-q"};
  const auto b = metadistill::testing::run_cli(bad);
  EXPECT_NE(b.exit_code, 0) << describe(bad, b);
  EXPECT_TRUE(contains_all(b.err, {"conv9", "conv1"})) << describe(bad, b);
}

TEST(PyTorchRoundTrip, ExportOfAFolderWithoutAStudentNamesIt) {
  TempDir dir("noexport");
  const std::vector<std::string> args = {"export", (dir / "empty").string()};
  fs::create_directories(dir / "empty");
  const auto r = metadistill::testing::run_cli(args);
  EXPECT_NE(r.exit_code, 0) << describe(args, r);
  EXPECT_TRUE(contains_all(r.err, {(dir / "empty").string(), "no student.pt"})) << describe(args, r);
}
