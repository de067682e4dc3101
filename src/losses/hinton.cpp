#include "metadistill/losses/hinton.h"

#include <cmath>

#include "metadistill/util/error.h"

namespace metadistill {

KdScale parse_kd_scale(const std::string& name) {
  if (name == "none") return KdScale::kNone;
  if (name == "t_squared") return KdScale::kTSquared;
  fail("kd_scale '{}': expected none or t_squared", name);
}

std::string to_string(KdScale scale) { return scale == KdScale::kTSquared ? "t_squared" : "none"; }

namespace functional {

torch::Tensor distillation_term(const torch::Tensor& student_logits,
                                const torch::Tensor& teacher_logits,
                                const torch::Tensor& temperature) {
  check(teacher_logits.defined(), "distillation term: teacher logits are missing");
  check(student_logits.sizes() == teacher_logits.sizes(),
        "distillation term: student logits {} and teacher logits {} differ in shape",
        student_logits.sizes(), teacher_logits.sizes());
  auto p_teacher = torch::softmax(teacher_logits / temperature, 1);         // [B, K]
  auto log_p_student = torch::log_softmax(student_logits / temperature, 1);  // [B, K]
  return -(p_teacher * log_p_student).sum(1).mean();
}

torch::Tensor hinton_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          const torch::Tensor& targets, const torch::Tensor& lambda1,
                          const torch::Tensor& temperature, KdScale scale) {
  auto ce = torch::nn::functional::cross_entropy(student_logits, targets);
  // λ1 = 1 is the plain classifier (the `none` method): the teacher need not exist.
  if (!lambda1.requires_grad() && lambda1.item<double>() == 1.0) return ce;
  auto kd = distillation_term(student_logits, teacher_logits, temperature);
  if (scale == KdScale::kTSquared) kd = kd * temperature * temperature;
  return lambda1 * ce + (1 - lambda1) * kd;
}

torch::Tensor hinton_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                          const torch::Tensor& targets, double lambda1, double temperature,
                          KdScale scale) {
  validate_hinton(lambda1, temperature);
  auto opts = torch::TensorOptions().dtype(student_logits.dtype()).device(student_logits.device());
  return hinton_loss(student_logits, teacher_logits, targets, torch::tensor(lambda1, opts),
                     torch::tensor(temperature, opts), scale);
}

}  // namespace functional

void validate_hinton(double lambda1, double temperature) {
  check(std::isfinite(lambda1) && lambda1 >= 0.0 && lambda1 <= 1.0,
        "lambda1 = {}: expected a value in [0, 1]", lambda1);
  check(std::isfinite(temperature) && temperature > 0.0,
        "temperature T = {}: expected a finite value > 0", temperature);
}

}  // namespace metadistill
