#include "metadistill/meta/parameter_ops.h"

#include "metadistill/util/error.h"

namespace metadistill {

std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

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

std::vector<torch::Tensor> gradients_or_zeros(const torch::Tensor& loss,
                                              const std::vector<torch::Tensor>& params,
                                              bool retain_graph) {
  auto g = torch::autograd::grad({loss}, params, {}, retain_graph, false, /*allow_unused=*/true);
  std::vector<torch::Tensor> out;
  out.reserve(g.size());
  for (size_t i = 0; i < g.size(); ++i)
    out.push_back(g[i].defined() ? g[i].detach() : torch::zeros_like(params[i]));
  return out;
}

BufferGuard::BufferGuard(torch::nn::Module& module) { save(module); }

BufferGuard::BufferGuard(const std::vector<torch::nn::Module*>& modules) {
  for (auto* module : modules) {
    check(module != nullptr, "hypergradient: a null module was given for buffer restoring");
    save(*module);
  }
}

void BufferGuard::save(torch::nn::Module& module) {
  for (auto& b : module.buffers()) {
    buffers_.push_back(b);
    saved_.push_back(b.detach().clone());
  }
}

BufferGuard::~BufferGuard() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_[i]);
}

}  // namespace metadistill
