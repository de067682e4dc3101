#include "metadistill/experiment/distill.h"

#include "metadistill/data/cifar.h"
#include "metadistill/data/fashion_mnist.h"
#include "metadistill/data/image_folder.h"
#include "metadistill/data/synthetic.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/runtime.h"

namespace metadistill {

namespace fs = std::filesystem;

DataBundle load_data(const DataConfig& c, const std::string& cache_dir) {
  if (c.name == "synthetic") {
    SyntheticOptions o;
    o.variant = c.variant;
    o.seed = c.synthetic_seed;
    o.n_val = c.synthetic_val_rows;
    o.val_is_test = c.val_is_test;
    return make_synthetic(o);
  }
  if (c.name == "fmnist") {
    FashionMnistOptions o;
    if (!c.root.empty()) o.root = c.root;
    if (c.val_size >= 0) o.val_size = c.val_size;
    o.split_seed = c.split_seed;
    o.limit_train = c.limit_train;
    o.limit_test = c.limit_test;
    return load_fashion_mnist(o);
  }
  const auto apply_folder_settings = [&](ImageFolderDataOptions& f) {
    f.folder.cached_in(cache_dir)
        .with_verbose(true)
        .on_bad_image(parse_bad_image_policy(c.on_bad_image))
        .on_size_mismatch(parse_size_mismatch_policy(c.on_size_mismatch));
    if (!c.mean.empty()) f.normalized(c.mean, c.std);
  };
  if (c.name == "folder") {
    ImageFolderOptions folder(c.root);
    folder.with_classes(c.classes).with_channels(c.channels);
    if (!c.image_size.empty()) folder.with_size(c.image_size[0], c.image_size[1]);
    ImageFolderDataOptions f(folder);
    f.named("folder:" + fs::path(c.root).filename().string())
        .splits(c.train_split, c.test_split)
        .val_rows(c.val_size)
        .seeded(c.split_seed)
        .train_limit(c.limit_train)
        .test_limit(c.limit_test);
    apply_folder_settings(f);
    return load_image_folder(f);
  }
  CifarOptions o;
  if (!c.root.empty()) o.root = c.root;
  o.reduced = c.name == "cifar10-reduced";
  if (c.val_size >= 0) {
    o.val_size = c.val_size;
    o.reduced_val_size = c.val_size;
  }
  o.split_seed = c.split_seed;
  o.limit_train = c.limit_train;
  o.limit_test = c.limit_test;
  if (c.format == "folder") {
    // Same bundle layout as the binary batches, so nothing after this point depends on the format.
    ImageFolderDataOptions f = cifar10_folder_options(o);
    apply_folder_settings(f);
    return load_image_folder(f);
  }
  return load_cifar10(o);
}

Prepared prepare(const Config& config) {
  Prepared p;
  p.data = load_data(config.data, config.cache);
  const auto device = parse_device(config.device);
  ModelSpec spec(config.teacher.model, p.data.num_classes,
                 p.data.pool.teacher_input().sizes().slice(1).vec());
  TrainerOptions t = config.teacher.trainer;
  t.device = device;
  p.teacher = ensure_teacher(p.data, spec, t, config.teacher_file);
  p.teacher_logits =
      cached_teacher_logits(*p.teacher.model, config.teacher_file, p.data, config.cache, device);
  p.teacher_test_accuracy =
      evaluate_accuracy(*p.teacher.model, teacher_view(p.data.test), 1024, device);
  return p;
}

nlohmann::json RunResult::to_json() const {
  nlohmann::json j = {{"method", method},
                      {"seed", seed},
                      {"initial", {{"lambda1", initial.lambda1}, {"temperature", initial.temperature}}},
                      {"final", {{"lambda1", final.lambda1}, {"temperature", final.temperature}}},
                      {"final_test_accuracy", train.final_test_accuracy},
                      {"best_test_accuracy", train.best_test_accuracy},
                      {"best_epoch", train.best_epoch},
                      {"seconds", train.seconds},
                      {"steps", train.steps},
                      {"hyper_steps", train.hyper_steps}};
  for (const auto& e : train.history)
    j["test_accuracy_by_epoch"].push_back({e.epoch, e.test_accuracy});
  if (!train.history.empty()) {
    const auto& last = train.history.back();
    j["final_val_loss"] = last.val_loss;
    j["final_test_loss"] = last.test_loss;
    j["final_test_ece"] = last.test_ece;
    j["final_effective_lr"] = last.effective_lr;
  }
  return j;
}

RunResult run_distill(const Config& given, const Prepared& prepared, const std::string& method,
                      uint64_t seed, const fs::path& out_dir, bool resume, bool verbose) {
  const auto& data = prepared.data;
  // A variant trains with its own settings under its own name (the result row's method).
  std::string base;
  const Config config = given.for_method(method, base);
  MethodOptions mo = config.method;
  mo.method = base;
  mo.seed = seed;
  auto meta = make_meta_optimizer(mo);

  seed_everything(seed);
  ModelSpec spec(config.student.model, data.num_classes, data.pool.x.sizes().slice(1).vec());
  Classifier student = make_model(spec);

  TrainerOptions t = config.student.trainer;
  t.seed = seed;
  t.device = parse_device(config.device);
  t.out_dir = out_dir;
  t.resume = resume;
  t.verbose = verbose;

  FitData fit;
  fit.train_set = &data.pool;
  fit.test_set = &data.test;
  DataSet validation;
  if (meta->trains_on_validation()) {
    // The paper's `none` trains on the whole of D = D_train ∪ D_val.
    fit.train_ids = data.val_is_test ? data.train_idx
                                     : std::get<0>(torch::cat({data.train_idx, data.val_idx}).sort());
  } else {
    fit.train_ids = data.train_idx;
    validation = data.validation();
    fit.val_set = &validation;
  }
  fit.teacher_logits = prepared.teacher_logits;

  RunResult r;
  r.method = method;
  r.seed = seed;
  r.initial = meta->current();
  Trainer trainer(t);
  r.train = trainer.fit(*student, fit, *meta);
  r.final = meta->current();
  if (!out_dir.empty()) {
    write_file_atomic(out_dir / "result.json", r.to_json().dump(2));
    fs::path model_path = out_dir / "student.pt";
    student->to(torch::kCPU);
    save_model_file(*student, spec, model_path);
  }
  return r;
}

}  // namespace metadistill
