#pragma once
/// Teachers from elsewhere (issue 15): a module saved in Python by `torch.jit.save`, of any
/// architecture, or precomputed logits for a teacher that cannot run here at all.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/data/dataset.h"
#include "metadistill/models/classifier.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace metadistill {

/// A TorchScript module as a classifier: `forward(x)` must return the logits [B, K]. Always runs
/// in eval mode (BatchNorm statistics, dropout), whatever `train()` asks. Multi-layer taps follow
/// a convention: a method `features(self, x) -> Dict[str, Tensor]` returning the named
/// intermediate outputs in forward order; `forward_features` gives them followed by "logits"
/// (from `forward`). Without that method `forward_features` throws, naming what the module
/// offers.
class TorchScriptClassifierImpl : public ClassifierImpl {
 public:
  TorchScriptClassifierImpl(std::shared_ptr<torch::jit::Module> module, std::string file);
  torch::Tensor forward(torch::Tensor x) override;
  Features forward_features(torch::Tensor x) override;
  /// The taps of `features` (found by a probe at load time) and "logits"; only "logits" when the
  /// module has no `features` method.
  std::vector<std::string> tap_names() const override;
  std::string kind() const override { return "torchscript"; }
  /// Sets the training flag of this wrapper only; the TorchScript module stays in eval mode.
  void train(bool on = true) override;
  /// What the module offers, for error messages: its methods and submodules.
  std::string offers() const;
  /// Whether the module has a `features` method.
  bool has_features() const;

 private:
  friend std::shared_ptr<TorchScriptClassifierImpl> load_torchscript_teacher(
      const std::filesystem::path&, const std::vector<int64_t>&, int64_t, torch::Device);
  std::shared_ptr<torch::jit::Module> module_;
  std::string file_;
  std::vector<std::string> taps_;
};

/// Loads a TorchScript file onto `device` in eval mode and checks it on a probe batch of two zero
/// rows of `input_shape`: `forward` must return a tensor [2, num_classes]. Throws `Error` naming
/// the file and the problem: missing, not a TorchScript archive (a state dict saved by
/// `torch.save` is not one), no `forward` (listing the methods it has), forward failing on the
/// data's input shape, a non-tensor output, or an output shape other than N × classes.
std::shared_ptr<TorchScriptClassifierImpl> load_torchscript_teacher(
    const std::filesystem::path& path, const std::vector<int64_t>& input_shape,
    int64_t num_classes, torch::Device device = torch::kCPU);

/// A tensor in a `.pt` file written by Python's `torch.save(tensor, f)` (zip format, the default
/// since PyTorch 1.6), LibTorch's `torch::pickle_save`, or LibTorch's `torch::save(tensor, f)`.
/// Throws `Error` naming the file when it holds something else (a dict, a module).
torch::Tensor load_pt_tensor(const std::filesystem::path& path);

/// Precomputed teacher logits, float32 on the CPU.
struct TeacherLogits {
  /// [N_pool, K]: row i = sample id i of `bundle.pool` (D_train ∪ D_val in the data set's order).
  torch::Tensor pool;
  /// [N_test, K] when the file also has the test rows (after the pool rows); else undefined.
  torch::Tensor test;
};

/// Reads teacher logits from a `.npy` (float32 or float16, N × K, C order) or `.pt` file (a
/// float32/float16 tensor, see `load_pt_tensor`) whose rows follow the data set's order: the pool
/// rows, optionally followed by the test rows. Throws `Error` naming the file and the problem: an
/// unknown extension, a dtype other than float32/float16, not two dimensions, a row count other
/// than N_pool or N_pool + N_test, a column count other than the data's classes, or a NaN/Inf
/// (with its row and column).
TeacherLogits load_teacher_logits(const std::filesystem::path& path, const DataBundle& bundle);

}  // namespace metadistill
