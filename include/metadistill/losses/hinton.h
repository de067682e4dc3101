#pragma once
/// The Hinton distillation loss as the paper writes it (metaparameter-optimization-in-kd, eq. for
/// L_train; DESIGN.md 3):
///   L = λ1 · CE(g(x), y) + (1 − λ1) · CE(σ(f(x)/T), σ(g(x)/T)),
/// λ1 on the classification term (the authors' code swaps the two; we follow the paper), both
/// terms averaged over the batch, no T² factor. Computed with log-softmax, so stable for any
/// logits and T > 0.
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// How the distillation term is scaled. kNone: as the paper writes L (the default). kTSquared:
/// (1 − λ1)·T²·CE(σ(f/T), σ(g/T)), Hinton et al. 2015 (as RepDistiller, mdistiller and CTKD do),
/// which keeps the term's gradient at about the same size as T changes, so that T cannot act as a
/// hidden learning rate.
enum class KdScale { kNone, kTSquared };

/// "none" or "t_squared"; throws `Error` naming the value otherwise.
KdScale parse_kd_scale(const std::string& name);
std::string to_string(KdScale scale);

namespace functional {

/// Mean cross-entropy CE(softmax(teacher/T), softmax(student/T)) =
/// −mean_b Σ_k σ(f/T)_bk · log σ(g/T)_bk. `temperature` is a double or a 0-dim tensor (which may
/// require grad).
torch::Tensor distillation_term(const torch::Tensor& student_logits,  // [B, K]
                                const torch::Tensor& teacher_logits,  // [B, K]
                                const torch::Tensor& temperature);    // []

/// L = λ1·CE(g, y) + (1 − λ1)·distillation_term(g, f, T). λ1 and T as 0-dim tensors (the
/// hypergradient differentiates through them). When λ1 is exactly 1 and does not require grad,
/// the teacher's logits may be undefined and are not used.
torch::Tensor hinton_loss(const torch::Tensor& student_logits,  // [B, K]
                          const torch::Tensor& teacher_logits,  // [B, K] or undefined
                          const torch::Tensor& targets,         // [B] int64
                          const torch::Tensor& lambda1,         // []
                          const torch::Tensor& temperature,     // []
                          KdScale scale = KdScale::kNone);

/// Convenience overload with plain values; validates λ1 ∈ [0, 1] and T > 0.
torch::Tensor hinton_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          const torch::Tensor& targets, double lambda1, double temperature,
                          KdScale scale = KdScale::kNone);

}  // namespace functional

/// Throws `Error` naming the value when λ1 ∉ [0, 1] or T is not a finite positive number.
void validate_hinton(double lambda1, double temperature);

}  // namespace metadistill
