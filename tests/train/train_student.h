#pragma once
// The trainer tests' student run: a logistic-regression student on a data bundle, seeded by the
// options' seed, with the bundle's validation split and the given teacher logits.
#include <filesystem>
#include <memory>

#include "metadistill/data/dataset.h"
#include "metadistill/data/synthetic.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/models/classifier.h"
#include "metadistill/train/trainer.h"
#include "metadistill/util/runtime.h"

namespace metadistill::testing {

/// The paper's synthetic data with its default options (the trainer tests' bundle).
inline DataBundle small_synthetic() { return make_synthetic(SyntheticOptions()); }

inline TrainResult train_student(const DataBundle& b, const torch::Tensor& logits,
                                 MetaOptimizer& meta, TrainerOptions o, Classifier* out = nullptr) {
  seed_everything(o.seed);
  auto model = make_model(ModelSpec("logreg", 2, {3}));
  FitData fit;
  fit.train_set = &b.pool;
  fit.train_ids = b.train_idx;
  DataSet val = b.validation();
  fit.val_set = &val;
  fit.test_set = &b.test;
  fit.teacher_logits = logits;
  Trainer trainer(o);
  auto r = trainer.fit(*model, fit, meta);
  if (out) *out = model;
  return r;
}

/// A run of `o.epochs` epochs into `full_dir`, and the same run stopped after `stop_after` epochs
/// and resumed to the end into `part_dir`, each part with a fresh method from `make_method`.
struct ResumedRuns {
  TrainResult full, resumed;
  Classifier full_model, resumed_model;
  /// The methods of the full run and of the resumed part, after training.
  std::unique_ptr<MetaOptimizer> full_method, resumed_method;
};

template <typename MakeMethod>
ResumedRuns train_and_resume(const DataBundle& b, const torch::Tensor& logits,
                             MakeMethod make_method, const TrainerOptions& o, int64_t stop_after,
                             const std::filesystem::path& full_dir,
                             const std::filesystem::path& part_dir) {
  ResumedRuns r;
  r.full_method = make_method();
  r.full = train_student(b, logits, *r.full_method, TrainerOptions(o).with_out_dir(full_dir),
                         &r.full_model);
  auto part = TrainerOptions(o).with_out_dir(part_dir);
  part.epochs = stop_after;
  auto first = make_method();
  train_student(b, logits, *first, part);
  part.epochs = o.epochs;
  part.resume = true;
  r.resumed_method = make_method();
  r.resumed = train_student(b, logits, *r.resumed_method, part, &r.resumed_model);
  return r;
}

}  // namespace metadistill::testing
