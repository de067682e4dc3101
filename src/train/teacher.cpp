#include "metadistill/train/teacher.h"

#include <iostream>
#include <optional>

#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/process.h"
#include "metadistill/util/runtime.h"

namespace metadistill {

namespace fs = std::filesystem;

DataSet teacher_view(const DataSet& data) {
  DataSet v;
  v.x = data.teacher_input();
  v.y = data.y;
  return v;
}

fs::path teacher_training_folder(const fs::path& path, const ModelSpec& spec,
                                 const DataBundle& bundle, const TrainerOptions& o) {
  // Keyed by what shapes the training, so a changed config never resumes a stale run.
  const std::string key = hash_string(fmt::format(
      "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", spec.name, bundle.fingerprint, o.epochs,
      o.batch_size, o.lr, o.lr_step, o.lr_gamma, o.lr_schedule, o.optimizer, o.momentum,
      o.weight_decay, o.seed, o.augmentation, spec.num_classes));
  return fmt::format("{}.training-{}", path.string(), key.substr(0, 12));
}

LoadedModel train_teacher(const DataBundle& bundle, const ModelSpec& spec,
                          const TrainerOptions& options, const fs::path& path,
                          double* test_accuracy) {
  seed_everything(options.seed);
  LoadedModel out{make_model(spec), spec};
  const DataSet test = teacher_view(bundle.test);
  FitData data;
  data.train_set = &bundle.teacher_train;
  data.train_ids = torch::arange(bundle.teacher_train.size(), torch::kLong);
  data.test_set = &test;
  FixedMetaOptimizer plain("teacher", Metaparameters{1.0, 1.0});
  // Long teacher trainings checkpoint next to the teacher file and resume after an interruption;
  // the folder goes once the teacher is saved.
  TrainerOptions o = options;
  const bool own_folder = o.out_dir.empty();
  if (own_folder) {
    o.out_dir = teacher_training_folder(path, spec, bundle, options);
    o.resume = true;
  }
  Trainer trainer(o);
  auto result = trainer.fit(*out.model, data, plain);
  if (test_accuracy != nullptr) *test_accuracy = result.final_test_accuracy;
  out.model->to(torch::kCPU);
  // Data parallel: every rank holds the same weights; rank 0 writes them.
  const bool writer = !o.data_parallel || o.data_parallel->rank() == 0;
  if (writer) save_model_file(*out.model, spec, path);
  if (own_folder && writer) {
    std::error_code ignored;
    fs::remove_all(o.out_dir, ignored);
  }
  out.model->to(options.device);
  return out;
}

namespace {

// Runs `make` unless `path` exists, under an exclusive lock on "<path>.lock", so that of several
// processes needing the same missing file only one makes it; the others wait for the lock and
// then find the file. The lock is an flock, which the kernel releases when its holder dies,
// however it dies: a killed holder's lock is taken over by the next waiter, which makes the file
// itself (a teacher training resumes from its checkpoint folder). The lock file stays: removing
// it could let two processes lock two different files of the same name.
template <typename Make>
void make_once(const fs::path& path, const std::string& what, Make make) {
  if (fs::exists(path)) return;
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path lock_path = path.string() + ".lock";
  auto lock = FileLock::try_acquire(lock_path);
  if (!lock) {
    std::cerr << fmt::format("{} {} is being made by another process (lock {}); waiting for it\n",
                             what, path.string(), lock_path.string());
    lock = FileLock::acquire(lock_path);
  }
  if (fs::exists(path)) return;  // made by the process that held the lock
  make();
}

}  // namespace

LoadedModel ensure_teacher(const DataBundle& bundle, const ModelSpec& spec,
                           const TrainerOptions& options, const fs::path& path) {
  std::optional<LoadedModel> trained;
  make_once(path, "teacher", [&] {
    std::cerr << fmt::format("teacher {} is missing: training a {} teacher on {} ({} epochs)\n",
                             path.string(), spec.name, bundle.name, options.epochs);
    double acc = 0;
    trained = train_teacher(bundle, spec, options, path, &acc);
    std::cerr << fmt::format("teacher saved to {} (test accuracy {:.4f})\n", path.string(), acc);
  });
  if (trained) return std::move(*trained);
  auto t = load_model_file(path, options.device);
  check(t.spec.num_classes == bundle.num_classes,
        "teacher {}: has {} classes, data set {} has {}", path.string(), t.spec.num_classes,
        bundle.name, bundle.num_classes);
  const auto shape = bundle.pool.teacher_input().sizes().slice(1).vec();
  check(t.spec.input_shape == shape, "teacher {}: built for input shape {}, data gives {}",
        path.string(), c10::IntArrayRef(t.spec.input_shape), c10::IntArrayRef(shape));
  return t;
}

torch::Tensor predict_logits(ClassifierImpl& model, const torch::Tensor& inputs,
                             int64_t batch_size, torch::Device device) {
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t lo = 0; lo < inputs.size(0); lo += batch_size) {
    auto x = inputs.slice(0, lo, std::min(inputs.size(0), lo + batch_size)).to(device);
    parts.push_back(model.forward(x).to(torch::kCPU, torch::kFloat));
  }
  model.train(was_training);
  return torch::cat(parts);
}

torch::Tensor cached_teacher_logits(ClassifierImpl& teacher, const fs::path& teacher_file,
                                    const DataBundle& bundle, const fs::path& cache_dir,
                                    torch::Device device, DataParallel* group) {
  const std::string key = hash_string(hash_string(read_file(teacher_file)) + bundle.fingerprint);
  const fs::path path = cache_dir / fmt::format("teacher-logits-{}.pt", key);
  // The cache when it is there and fits the data; else undefined.
  const auto stored = [&] {
    if (!fs::exists(path)) return torch::Tensor();
    try {
      auto t = load_tensor(path);
      if (t.dim() == 2 && t.size(0) == bundle.pool.size() && t.size(1) == bundle.num_classes)
        return t;
    } catch (const Error& e) {
      std::cerr << "ignoring unreadable teacher cache: " << e.what() << "\n";
    }
    return torch::Tensor();
  };
  if (group != nullptr) {
    torch::Tensor logits = stored();
    // The ranks agree: all use their caches, or all compute (a cache may be on one machine only).
    if (group->all_reduce_max(logits.defined() ? 0.0 : 1.0) == 0.0) return logits;
    const auto inputs = bundle.pool.teacher_input();
    const int64_t n = inputs.size(0), ranks = group->world_size();
    std::vector<torch::Tensor> parts;
    for (int r = 0; r < ranks; ++r) {
      const int64_t lo = n * r / ranks, hi = n * (r + 1) / ranks;
      if (hi == lo) continue;
      std::vector<torch::Tensor> part{
          r == group->rank() ? predict_logits(teacher, inputs.slice(0, lo, hi), 1024, device)
                             : torch::empty({hi - lo, bundle.num_classes}, torch::kFloat)};
      group->broadcast(part, r);
      parts.push_back(part[0]);
    }
    logits = torch::cat(parts);
    save_tensor_atomic(logits, path);
    return logits;
  }
  const auto compute = [&] {
    auto logits = predict_logits(teacher, bundle.pool.teacher_input(), 1024, device);
    save_tensor_atomic(logits, path);
    return logits;
  };
  torch::Tensor logits;
  // One process computes a missing cache; the others wait for it and read what it wrote.
  make_once(path, "teacher-output cache", [&] { logits = compute(); });
  if (logits.defined()) return logits;
  logits = stored();
  return logits.defined() ? logits : compute();
}

}  // namespace metadistill
