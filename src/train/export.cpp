#include "metadistill/train/export.h"

#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/script.h>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

std::string py_bool(bool b) { return b ? "True" : "False"; }
// Shortest text that reads back as the same double in Python.
std::string py_float(double v) { return fmt::format("{}", v); }

std::pair<int64_t, int64_t> pair_of(const torch::ExpandingArray<2>& a) { return {a->at(0), a->at(1)}; }

const torch::nn::Conv2dImpl& check_conv(const torch::nn::Conv2dImpl& c, const std::string& name) {
  const auto& o = c.options;
  check(c10::get_if<torch::ExpandingArray<2>>(&o.padding()) != nullptr,
        "export: layer {}: only explicit convolution padding is exported", name);
  check(o.groups() == 1 && pair_of(o.dilation()) == std::pair<int64_t, int64_t>{1, 1} &&
            c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr,
        "export: layer {}: groups, dilation and padding modes other than the defaults are not "
        "exported",
        name);
  return c;
}

// How one layer is constructed in PyTorch, and applied in TorchScript's functional form (the
// TorchScript file is compiled by LibTorch from builtins only: no torch.nn there).
struct Layer {
  std::string python;                             // "nn.Linear(3, 2, bias=True)"
  std::function<std::string(std::string)> call;  // "torch.addmm(self.fc.bias, x, ...)"
};

Layer describe(const torch::nn::Module& m, const std::string& n) {
  if (const auto* l = dynamic_cast<const torch::nn::LinearImpl*>(&m)) {
    const auto& o = l->options;
    // LibTorch's TorchScript builtins have no torch.linear; addmm is what linear computes for
    // a 2-D input with a bias (the same kernel, so the same numbers).
    const bool bias = o.bias();
    return {fmt::format("nn.Linear({}, {}, bias={})", o.in_features(), o.out_features(),
                        py_bool(bias)),
            [n, bias](std::string x) {
              return bias ? fmt::format("torch.addmm(self.{0}.bias, {1}, self.{0}.weight.t())", n, x)
                          : fmt::format("torch.matmul({}, self.{}.weight.t())", x, n);
            }};
  }
  if (const auto* c = dynamic_cast<const torch::nn::Conv2dImpl*>(&m)) {
    const auto& o = check_conv(*c, n).options;
    const auto k = pair_of(o.kernel_size()), s = pair_of(o.stride());
    const auto p = pair_of(c10::get<torch::ExpandingArray<2>>(o.padding()));
    const std::string bias = o.bias() ? fmt::format("self.{}.bias", n) : "None";
    return {fmt::format("nn.Conv2d({}, {}, kernel_size=({}, {}), stride=({}, {}), padding=({}, "
                        "{}), bias={})",
                        o.in_channels(), o.out_channels(), k.first, k.second, s.first, s.second,
                        p.first, p.second, py_bool(o.bias())),
            [n, bias, s, p](std::string x) {
              return fmt::format("torch.conv2d({}, self.{}.weight, {}, [{}, {}], [{}, {}])", x, n,
                                 bias, s.first, s.second, p.first, p.second);
            }};
  }
  if (const auto* b = dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m)) {
    const auto& o = b->options;
    check(o.affine() && o.track_running_stats(),
          "export: layer {}: BatchNorm without affine parameters or running statistics is not "
          "exported",
          n);
    const double momentum = o.momentum().value_or(0.1);
    return {fmt::format("nn.BatchNorm2d({}, eps={}, momentum={})", o.num_features(),
                        py_float(o.eps()),
                        o.momentum() ? py_float(momentum) : std::string("None")),
            [n, o](std::string x) {
              return fmt::format("torch.batch_norm({0}, self.{1}.weight, self.{1}.bias, "
                                 "self.{1}.running_mean, self.{1}.running_var, False, 0.0, {2}, "
                                 "False)",
                                 x, n, py_float(o.eps()));
            }};
  }
  fail("export: layer {} ({}) has no PyTorch counterpart here", n, m.name());
}

// The forward of a zoo student as Python statements over its layers; `call(layer, arg)` writes
// one layer applied to `arg` (a module call in the Python module, the functional form in
// TorchScript). Mirrors the C++ forwards in src/models/{linear,cnn,conv_tiny}.cpp.
std::vector<std::string> forward_lines(const std::string& kind,
                                       const std::function<std::string(const std::string&,
                                                                       const std::string&)>& call) {
  if (kind == "logreg") return {"return " + call("fc", "x")};
  if (kind == "mlp") return {"h = torch.relu(" + call("fc1", "x") + ")", "return " + call("fc2", "h")};
  // cnn, conv-tiny, conv-very-tiny: (conv, BN, 2×2 max-pool, ReLU) × 3, then two linear layers.
  std::vector<std::string> lines;
  std::string in = "x";
  for (int i = 1; i <= 3; ++i) {
    lines.push_back(fmt::format("h = torch.relu(torch.max_pool2d({}, [2, 2]))",
                                call(fmt::format("bn{}", i), call(fmt::format("conv{}", i), in))));
    in = "h";
  }
  lines.push_back("h = torch.relu(" + call("fc1", "torch.flatten(h, 1)") + ")");
  lines.push_back("return " + call("fc2", "h"));
  return lines;
}

std::vector<std::pair<std::string, Layer>> layers_of(const ClassifierImpl& model,
                                                     const ModelSpec& spec) {
  check(exportable_model(spec.name),
        "export: model {} has no PyTorch exporter yet; exportable: logreg, mlp, cnn, conv-tiny, "
        "conv-very-tiny",
        spec.name);
  std::vector<std::pair<std::string, Layer>> out;
  for (const auto& child : model.named_children()) {
    out.emplace_back(child.key(), describe(*child.value(), child.key()));
  }
  return out;
}

}  // namespace

bool exportable_model(const std::string& name) {
  return name == "logreg" || name == "mlp" || name == "cnn" || name == "conv-tiny" ||
         name == "conv-very-tiny";
}

std::string student_python_source(const ClassifierImpl& model, const ModelSpec& spec) {
  const auto layers = layers_of(model, spec);
  std::ostringstream s;
  s << fmt::format(
      "# Generated by `metadistill export`: the architecture of a metadistill {} student\n"
      "# (input [N, {}], {} classes). Load the weights with\n"
      "#   model = Model(); model.load_state_dict(torch.load(\"student_state_dict.pt\")); "
      "model.eval()\n"
      "import torch\n"
      "from torch import nn\n\n"
      "INPUT_SHAPE = ({},)\n"
      "NUM_CLASSES = {}\n\n\n"
      "class Model(nn.Module):\n"
      "    def __init__(self):\n"
      "        super().__init__()\n",
      spec.name, fmt::join(spec.input_shape, ", "), spec.num_classes,
      fmt::join(spec.input_shape, ", "), spec.num_classes);
  for (const auto& [name, layer] : layers)
    s << fmt::format("        self.{} = {}\n", name, layer.python);
  s << "\n    def forward(self, x):\n";
  for (const auto& line :
       forward_lines(spec.name, [](const std::string& layer, const std::string& arg) {
         return fmt::format("self.{}({})", layer, arg);
       }))
    s << "        " << line << "\n";
  return s.str();
}

std::string state_dict_bytes(const torch::nn::Module& model) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& p : model.named_parameters())
    dict.insert(p.key(), p.value().detach().to(torch::kCPU).contiguous().clone());
  for (const auto& b : model.named_buffers())
    dict.insert(b.key(), b.value().detach().to(torch::kCPU).contiguous().clone());
  const std::vector<char> bytes = torch::pickle_save(dict);
  return std::string(bytes.begin(), bytes.end());
}

std::string student_torchscript_bytes(const ClassifierImpl& model, const ModelSpec& spec) {
  const auto layers = layers_of(model, spec);
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module top(c10::QualifiedName("__torch__.metadistill.Student"), cu);
  std::map<std::string, Layer> by_name;
  for (const auto& child : model.named_children()) {
    torch::jit::Module sub(c10::QualifiedName("__torch__.metadistill.Student_" + child.key()), cu);
    for (const auto& p : child.value()->named_parameters(/*recurse=*/false))
      sub.register_parameter(p.key(), p.value().detach().to(torch::kCPU).clone(), false);
    for (const auto& b : child.value()->named_buffers(/*recurse=*/false))
      sub.register_buffer(b.key(), b.value().detach().to(torch::kCPU).clone());
    top.register_module(child.key(), sub);
  }
  for (const auto& [name, layer] : layers) by_name.emplace(name, layer);
  std::ostringstream src;
  src << "def forward(self, x):\n";
  for (const auto& line :
       forward_lines(spec.name, [&](const std::string& layer, const std::string& arg) {
         return by_name.at(layer).call(arg);
       }))
    src << "    " << line << "\n";
  try {
    top.define(src.str());
  } catch (const c10::Error& e) {
    fail("export: TorchScript of model {} does not compile: {}\n{}", spec.name,
         e.what_without_backtrace(), src.str());
  }
  top.eval();
  std::ostringstream out;
  top.save(out);
  return out.str();
}

ExportedStudent export_student(const ClassifierImpl& model, const ModelSpec& spec,
                               const fs::path& out_dir, const std::string& source) {
  // Everything is generated before the first file is written, so a model without an exporter
  // leaves no partial export.
  const std::string python = student_python_source(model, spec);
  const std::string torchscript = student_torchscript_bytes(model, spec);
  const std::string state = state_dict_bytes(model);
  ExportedStudent e;
  e.state_dict = out_dir / "student_state_dict.pt";
  e.python_module = out_dir / "student_model.py";
  e.torchscript = out_dir / "student_torchscript.pt";
  e.manifest = out_dir / "export.json";
  write_file_atomic(e.state_dict, state);
  write_file_atomic(e.python_module, python);
  write_file_atomic(e.torchscript, torchscript);
  const nlohmann::json manifest = {
      {"model", spec.name},
      {"num_classes", spec.num_classes},
      {"input_shape", spec.input_shape},
      {"source", source},
      {"state_dict", e.state_dict.filename().string()},
      {"python_module", e.python_module.filename().string()},
      {"torchscript", e.torchscript.filename().string()},
      {"state_dict_hash", hash_string(state)}};
  write_file_atomic(e.manifest, manifest.dump(2) + "\n");
  return e;
}

}  // namespace metadistill
