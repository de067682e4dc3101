#pragma once
/// Students out to PyTorch (issue 15): a state dict `torch.load` reads, a generated Python module
/// with the same architecture, and a TorchScript file `torch.jit.load` runs.
#include <filesystem>
#include <string>

#include "metadistill/models/classifier.h"

namespace metadistill {

/// The files `export_student` writes.
struct ExportedStudent {
  /// `student_state_dict.pt`: a dict {name: tensor} of every parameter and buffer, under the
  /// names PyTorch's modules use ("fc1.weight", "bn1.running_mean", ...); `torch.load` reads it.
  std::filesystem::path state_dict;
  /// `student_model.py`: `Model()` builds the architecture; `load_state_dict` takes the file above.
  std::filesystem::path python_module;
  /// `student_torchscript.pt`: the eval-mode forward compiled by LibTorch's TorchScript compiler
  /// from a functional form of the same architecture, the weights as its parameters and buffers.
  std::filesystem::path torchscript;
  /// `export.json`: model name, classes, input shape, the file names.
  std::filesystem::path manifest;
};

/// Zoo models `export_student` knows the forward of: logreg, mlp, cnn, conv-tiny, conv-very-tiny.
bool exportable_model(const std::string& name);

/// The Python source of a module `Model` with `model`'s layers (same names, sizes and options)
/// and its forward. Throws `Error` for a zoo model without an exporter (the ResNets) or a layer
/// without a Python counterpart.
std::string student_python_source(const ClassifierImpl& model, const ModelSpec& spec);

/// The state dict as bytes in the format of Python's `torch.save` (zip, via torch::pickle_save).
std::string state_dict_bytes(const torch::nn::Module& model);

/// The student as a TorchScript archive (bytes of `torch.jit.save`).
std::string student_torchscript_bytes(const ClassifierImpl& model, const ModelSpec& spec);

/// Writes the four files into `out_dir` (created when missing), each atomically. `source` names
/// the student file in the manifest. Throws `Error` as `student_python_source`.
ExportedStudent export_student(const ClassifierImpl& model, const ModelSpec& spec,
                               const std::filesystem::path& out_dir,
                               const std::string& source = "");

}  // namespace metadistill
