#include "metadistill/meta/parameter_ops.h"

namespace metadistill {

std::vector<torch::Tensor> snapshot_parameters(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

void assign_parameters(const std::vector<torch::Tensor>& params,
                       const std::vector<torch::Tensor>& values) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(values[i]);
}

void assign_parameters_axpy(const std::vector<torch::Tensor>& params,
                            const std::vector<torch::Tensor>& base, double alpha,
                            const std::vector<torch::Tensor>& dir) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    torch::Tensor p = params[i];
    torch::add_out(p, base[i], dir[i], alpha);
  }
}

}  // namespace metadistill
