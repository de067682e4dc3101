#pragma once
// The trainer tests' student run: a logistic-regression student on a data bundle, seeded by the
// options' seed, with the bundle's validation split and the given teacher logits.
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

}  // namespace metadistill::testing
