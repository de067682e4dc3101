#pragma once
/// Moving parameter lists in place for the hypergradients' auxiliary passes. Parameters are set
/// by copies, never by w + εu − εu, so that restoring them is exact.
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// The parameters of `module` that require grad (what the optimizer steps).
std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module);

/// Detached copies of `params`.
std::vector<torch::Tensor> snapshot_parameters(const std::vector<torch::Tensor>& params);

/// params[i] ← values[i] (no autograd record).
void assign_parameters(const std::vector<torch::Tensor>& params,
                       const std::vector<torch::Tensor>& values);

/// params[i] ← base[i] + alpha · dir[i] (no autograd record).
void assign_parameters_axpy(const std::vector<torch::Tensor>& params,
                            const std::vector<torch::Tensor>& base, double alpha,
                            const std::vector<torch::Tensor>& dir);

/// ∇_params loss, detached; zeros for a parameter the loss does not reach.
std::vector<torch::Tensor> gradients_or_zeros(const torch::Tensor& loss,
                                              const std::vector<torch::Tensor>& params,
                                              bool retain_graph = false);

/// Saves the buffers of modules (BatchNorm running statistics) and restores them at scope exit,
/// around passes that are not training steps.
class BufferGuard {
 public:
  explicit BufferGuard(torch::nn::Module& module);
  /// Throws `Error` for a null module.
  explicit BufferGuard(const std::vector<torch::nn::Module*>& modules);
  ~BufferGuard();
  BufferGuard(const BufferGuard&) = delete;
  BufferGuard& operator=(const BufferGuard&) = delete;

 private:
  void save(torch::nn::Module& module);
  std::vector<torch::Tensor> buffers_, saved_;
};

}  // namespace metadistill
