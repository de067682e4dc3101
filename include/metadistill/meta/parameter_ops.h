#pragma once
/// Moving parameter lists in place for the hypergradients' auxiliary passes. Parameters are set
/// by copies, never by w + εu − εu, so that restoring them is exact.
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// Detached copies of `params`.
std::vector<torch::Tensor> snapshot_parameters(const std::vector<torch::Tensor>& params);

/// params[i] ← values[i] (no autograd record).
void assign_parameters(const std::vector<torch::Tensor>& params,
                       const std::vector<torch::Tensor>& values);

/// params[i] ← base[i] + alpha · dir[i] (no autograd record).
void assign_parameters_axpy(const std::vector<torch::Tensor>& params,
                            const std::vector<torch::Tensor>& base, double alpha,
                            const std::vector<torch::Tensor>& dir);

}  // namespace metadistill
