#include "metadistill/train/external_teacher.h"

#include <torch/script.h>

#include "metadistill/data/npy.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

// The first line of a c10::Error, without LibTorch's backtrace.
std::string short_message(const c10::Error& e) {
  std::string m = e.what_without_backtrace();
  const auto nl = m.find('\n');
  if (nl != std::string::npos) m.resize(nl);
  return m.size() > 300 ? m.substr(0, 300) + "..." : m;
}

// What failed inside the TorchScript interpreter: its last line ("RuntimeError: mat1 and mat2
// shapes cannot be multiplied (2x3 and 7x2)"), after the TorchScript traceback.
std::string interpreter_message(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return short_message(*c);
  std::string m = e.what();
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ' || m.back() == '"')) m.pop_back();
  const auto nl = m.rfind('\n');
  if (nl != std::string::npos) m = m.substr(nl + 1);
  return m.size() > 300 ? m.substr(0, 300) + "..." : m;
}

std::string shape_of(const c10::IValue& v) {
  if (v.isTensor()) return fmt::format("a tensor {}", v.toTensor().sizes());
  return fmt::format("a {}", v.type()->annotation_str());
}

}  // namespace

TorchScriptClassifierImpl::TorchScriptClassifierImpl(std::shared_ptr<torch::jit::Module> module,
                                                     std::string file)
    : module_(std::move(module)), file_(std::move(file)), taps_({"logits"}) {
  module_->eval();
}

void TorchScriptClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  module_->eval();
}

torch::Tensor TorchScriptClassifierImpl::forward(torch::Tensor x) {
  c10::IValue out;
  try {
    out = module_->forward({x});
  } catch (const std::exception& e) {
    fail("teacher {}: forward on input {} failed: {}", file_, x.sizes(), interpreter_message(e));
  }
  check(out.isTensor(), "teacher {}: forward returned {}; expected the logits, a tensor [N, K]",
        file_, shape_of(out));
  return out.toTensor();
}

bool TorchScriptClassifierImpl::has_features() const {
  return module_->find_method("features").has_value();
}

std::string TorchScriptClassifierImpl::offers() const {
  std::vector<std::string> methods, children;
  for (const auto& m : module_->get_methods()) methods.push_back(m.name());
  for (const auto& c : module_->named_children()) children.push_back(c.name);
  return fmt::format("methods [{}], submodules [{}]", fmt::join(methods, ", "),
                     fmt::join(children, ", "));
}

Features TorchScriptClassifierImpl::forward_features(torch::Tensor x) {
  check(has_features(),
        "teacher {}: multi-layer taps need a method `features(self, x) -> Dict[str, Tensor]` "
        "(decorated with @torch.jit.export); the module offers {}",
        file_, offers());
  c10::IValue out;
  try {
    out = module_->get_method("features")({x});
  } catch (const std::exception& e) {
    fail("teacher {}: features on input {} failed: {}", file_, x.sizes(),
         interpreter_message(e));
  }
  check(out.isGenericDict(),
        "teacher {}: features returned {}; expected Dict[str, Tensor] of named taps", file_,
        shape_of(out));
  Features f;
  for (const auto& entry : out.toGenericDict()) {
    check(entry.key().isString() && entry.value().isTensor(),
          "teacher {}: features returned a dict entry that is not str -> Tensor", file_);
    check(entry.key().toStringRef() != "logits",
          "teacher {}: features returned a tap named 'logits'; that name is the forward output's",
          file_);
    f.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  f.emplace_back("logits", forward(x));
  return f;
}

std::vector<std::string> TorchScriptClassifierImpl::tap_names() const { return taps_; }

std::shared_ptr<TorchScriptClassifierImpl> load_torchscript_teacher(
    const fs::path& path, const std::vector<int64_t>& input_shape, int64_t num_classes,
    torch::Device device) {
  check(fs::exists(path), "teacher.torchscript {}: no such file", path.string());
  check(fs::is_regular_file(path), "teacher.torchscript {}: not a file", path.string());
  auto module = std::make_shared<torch::jit::Module>();
  try {
    *module = torch::jit::load(path.string(), device);
  } catch (const std::exception& e) {
    fail("teacher.torchscript {}: not a TorchScript archive saved by torch.jit.save ({})",
         path.string(), interpreter_message(e));
  }
  auto teacher = std::make_shared<TorchScriptClassifierImpl>(module, path.string());
  teacher->eval();
  check(module->find_method("forward").has_value(),
        "teacher.torchscript {}: the module has no forward method; it offers {}", path.string(),
        teacher->offers());

  // A probe batch of two zero rows: the output must be [2, K] before any real work.
  std::vector<int64_t> batch = {2};
  batch.insert(batch.end(), input_shape.begin(), input_shape.end());
  torch::NoGradGuard no_grad;
  const auto probe = torch::zeros(batch, torch::TensorOptions().device(device));
  c10::IValue result;
  try {
    result = module->forward({probe});
  } catch (const std::exception& e) {
    fail("teacher.torchscript {}: does not fit the data's input shape {}: forward on input {} "
         "failed: {}",
         path.string(), c10::IntArrayRef(input_shape), probe.sizes(), interpreter_message(e));
  }
  check(result.isTensor(),
        "teacher.torchscript {}: forward returned {}; expected the logits, a tensor [N, K]",
        path.string(), shape_of(result));
  const torch::Tensor out = result.toTensor();
  check(out.dim() == 2 && out.size(0) == 2 && out.size(1) == num_classes,
        "teacher.torchscript {}: forward on input {} returned shape {}; expected [2, {}] "
        "(N × classes of the data set)",
        path.string(), probe.sizes(), out.sizes(), num_classes);
  check(out.is_floating_point(), "teacher.torchscript {}: forward returned {} logits; expected "
        "floating point", path.string(), c10::toString(out.scalar_type()));
  if (teacher->has_features()) {
    std::vector<std::string> taps;
    for (const auto& [name, t] : teacher->forward_features(probe)) taps.push_back(name);
    teacher->taps_ = taps;
  }
  return teacher;
}

torch::Tensor load_pt_tensor(const fs::path& path) {
  check(fs::exists(path), "{}: no such file", path.string());
  const std::string bytes = read_file(path);
  std::string problem;
  try {
    const c10::IValue v = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
    if (v.isTensor()) return v.toTensor();
    problem = fmt::format("holds {}; expected one tensor (torch.save(tensor, file))", shape_of(v));
  } catch (const std::exception& e) {
    problem = fmt::format("not a tensor saved by torch.save ({})", interpreter_message(e));
  }
  // LibTorch's own torch::save(tensor) writes a TorchScript-style archive instead.
  try {
    torch::Tensor t;
    torch::load(t, path.string());
    return t;
  } catch (const std::exception&) {
  }
  fail("{}: {}", path.string(), problem);
}

TeacherLogits load_teacher_logits(const fs::path& path, const DataBundle& bundle) {
  const std::string file = path.string();
  check(fs::exists(path), "teacher.logits {}: no such file", file);
  const std::string ext = path.extension().string();
  torch::Tensor t;
  if (ext == ".npy") {
    try {
      t = read_npy(path);
    } catch (const Error& e) {
      fail("teacher.logits {}", e.what());
    }
  } else if (ext == ".pt" || ext == ".pth") {
    try {
      t = load_pt_tensor(path);
    } catch (const Error& e) {
      fail("teacher.logits {}", e.what());
    }
  } else {
    fail("teacher.logits {}: unknown extension '{}': expected .npy or .pt", file, ext);
  }
  check(t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kHalf,
        "teacher.logits {}: dtype {}: expected float32 or float16 (numpy: a.astype(np.float32))",
        file, c10::toString(t.scalar_type()));
  const int64_t pool = bundle.pool.size(), test = bundle.test.size(), k = bundle.num_classes;
  check(t.dim() == 2, "teacher.logits {}: shape {}: expected two dimensions, N × {} (classes)",
        file, t.sizes(), k);
  check(t.size(0) == pool || t.size(0) == pool + test,
        "teacher.logits {}: {} rows: expected {} (the training pool of {}, D_train ∪ D_val in the "
        "data set's order) or {} (the pool, then its {} test rows)",
        file, t.size(0), pool, bundle.name, pool + test, test);
  check(t.size(1) == k, "teacher.logits {}: {} columns: data set {} has {} classes", file,
        t.size(1), bundle.name, k);
  t = t.to(torch::kFloat).contiguous();
  const auto bad = torch::nonzero(~torch::isfinite(t));
  if (bad.size(0) > 0) {
    const int64_t row = bad[0][0].item<int64_t>(), col = bad[0][1].item<int64_t>();
    fail("teacher.logits {}: row {} column {} is {} ({} non-finite values in all)", file, row,
         col, t[row][col].item<float>(), bad.size(0));
  }
  TeacherLogits out;
  out.pool = t.slice(0, 0, pool).clone();
  if (t.size(0) == pool + test) out.test = t.slice(0, pool).clone();
  return out;
}

}  // namespace metadistill
