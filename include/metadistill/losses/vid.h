#pragma once
/// Variational Information Distillation (VID; Ahn et al., CVPR 2019), the term I(t_i, s_j) of
/// "multilayer-vid-distillation" (DESIGN.md 3.4):
///   VID(t, s) = mean_{b, c, positions} ½ · ((μ(s) − t)² / σ²_c + log σ²_c),
/// the Gaussian negative log-likelihood of the teacher's features t under a Gaussian whose mean
/// μ(s) is regressed from the student's features s and whose variance σ²_c = softplus(α_c) + ε is
/// learned per teacher channel (up to the constant ½·log 2π). Feature maps of different spatial
/// size are matched by adaptive average pooling of the larger one to the smaller size, per
/// dimension (so non-square maps work too).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill {

namespace functional {

/// ½ · mean((mean − target)² / variance + log variance) over every element; `variance` [C] holds
/// σ²_c for channel dimension 1 of `mean` and `target` (same shape [B, C] or [B, C, H, W]).
torch::Tensor vid_nll(const torch::Tensor& mean,      // [B, C, ...]
                      const torch::Tensor& target,    // [B, C, ...]
                      const torch::Tensor& variance);  // [C]

/// The pair (student, teacher) feature maps brought to a common spatial size: the larger map of
/// each dimension is adaptive-average-pooled to the smaller size. Vectors [B, F] pass unchanged.
/// Throws `Error` when one is a map and the other a vector, or the batch sizes differ.
std::pair<torch::Tensor, torch::Tensor> align_spatial(const torch::Tensor& student,  // [B, Cs, ...]
                                                      const torch::Tensor& teacher);  // [B, Ct, ...]

/// The raw parameter α with softplus(α) + eps = variance (so that σ² starts at `variance`).
double softplus_inverse_for(double variance, double eps);

}  // namespace functional

/// Options of `VID`: the student's and teacher's feature shapes without the batch dimension
/// ({C, H, W} for maps, {F} for vectors).
struct VIDOptions {
  VIDOptions(std::vector<int64_t> student_shape, std::vector<int64_t> teacher_shape)
      : student_shape_(std::move(student_shape)), teacher_shape_(std::move(teacher_shape)) {}
  /// Student feature shape {C, H, W} or {F}.
  TORCH_ARG(std::vector<int64_t>, student_shape);
  /// Teacher feature shape {C, H, W} or {F}.
  TORCH_ARG(std::vector<int64_t>, teacher_shape);
  /// Hidden width of the 1×1-convolution regressor; 0 = the teacher's channels (as in the
  /// original VID code's default of the same width).
  TORCH_ARG(int64_t, hidden) = 0;
  /// σ²_c at initialisation (the original code's 5.0).
  TORCH_ARG(double, init_variance) = 5.0;
  /// ε of σ²_c = softplus(α_c) + ε, the smallest variance.
  TORCH_ARG(double, eps) = 1e-5;
};

/// One VID term: the regressor μ (maps: three 1×1 convolutions with ReLUs between them; vectors:
/// one linear map) and the per-channel log-variance parameter α. `forward(s, t)` aligns the
/// spatial sizes (`functional::align_spatial`) and returns `functional::vid_nll(μ(s), t, σ²)`.
class VIDImpl : public torch::nn::Cloneable<VIDImpl> {
 public:
  /// Throws `Error` naming both shapes when they cannot be aligned (a map against a vector, or a
  /// rank other than 1 or 3).
  explicit VIDImpl(VIDOptions options);
  void reset() override;

  /// The VID loss for student features `s` [B, Cs, Hs, Ws] / [B, Fs] and teacher features `t`
  /// [B, Ct, Ht, Wt] / [B, Ft] (the teacher's are used as constants: detach them before).
  torch::Tensor forward(const torch::Tensor& s, const torch::Tensor& t);
  /// μ(s) after alignment, and the aligned target: what `forward` compares.
  std::pair<torch::Tensor, torch::Tensor> predict(const torch::Tensor& s, const torch::Tensor& t);
  /// σ²_c = softplus(α_c) + ε [C_t].
  torch::Tensor variance() const;

  VIDOptions options;
  /// Maps: three 1×1 convolutions; vectors: one Linear.
  torch::nn::Sequential regressor{nullptr};
  /// α [C_t].
  torch::Tensor alpha;
  /// True for feature maps, false for vectors.
  bool spatial = true;
};
TORCH_MODULE(VID);

/// One distillation pair: teacher tap i ↔ student tap j.
struct TapPair {
  std::string teacher, student;
  /// "teacher→student", used as a column name.
  std::string label() const { return teacher + "->" + student; }
};

/// Throws `Error` unless every name of `wanted` is a tap of `model`; the message names the model,
/// the bad tap and the taps the model offers. `role` is "teacher" or "student".
void check_taps(const ClassifierImpl& model, const std::vector<std::string>& wanted,
                const std::string& role);

/// The feature of tap `name` in `features`; throws `Error` listing the taps present.
const torch::Tensor& find_tap(const Features& features, const std::string& name);

/// Options of `MultiVID`.
struct MultiVIDOptions {
  /// Hidden width of each regressor (0 = the teacher tap's channels).
  TORCH_ARG(int64_t, hidden) = 0;
  /// Initial σ²_c of every term.
  TORCH_ARG(double, init_variance) = 5.0;
  /// ε of every term's variance.
  TORCH_ARG(double, eps) = 1e-5;
};

/// The VID terms of a list of pairs, one `VID` submodule per pair (named "pair0", "pair1", ...,
/// so that saving and loading a `MultiVID` keeps every regressor and variance).
class MultiVIDImpl : public torch::nn::Cloneable<MultiVIDImpl> {
 public:
  /// Builds the terms for `pairs` from example features of the teacher and student (one forward
  /// each, any batch size); throws `Error` naming a missing tap (with the taps offered) or a pair
  /// whose shapes cannot be aligned.
  MultiVIDImpl(std::vector<TapPair> pairs, const Features& teacher_example,
               const Features& student_example, MultiVIDOptions options = {});
  /// Builds the terms from the shapes directly (each without the batch dimension, in the order of
  /// `pairs`): what loading a saved `MultiVID` uses.
  MultiVIDImpl(std::vector<TapPair> pairs, std::vector<std::vector<int64_t>> teacher_shapes,
               std::vector<std::vector<int64_t>> student_shapes, MultiVIDOptions options = {});
  void reset() override;

  /// VID(t_i, s_j) of every pair [P], from the two models' features.
  torch::Tensor pair_losses(const Features& teacher, const Features& student);
  /// Σ_p weights_p · VID_p; `weights` [P].
  torch::Tensor forward(const Features& teacher, const Features& student,
                        const torch::Tensor& weights);

  const std::vector<TapPair>& pairs() const { return pairs_; }
  const std::vector<std::vector<int64_t>>& teacher_shapes() const { return teacher_shapes_; }
  const std::vector<std::vector<int64_t>>& student_shapes() const { return student_shapes_; }
  const MultiVIDOptions& options() const { return options_; }
  /// The submodule of pair p.
  VID term(size_t p) const { return terms_.at(p); }

 private:
  std::vector<TapPair> pairs_;
  std::vector<std::vector<int64_t>> teacher_shapes_, student_shapes_;
  MultiVIDOptions options_;
  std::vector<VID> terms_;
};
TORCH_MODULE(MultiVID);

}  // namespace metadistill
