#include "metadistill/experiment/distill.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>

#include "metadistill/data/cifar.h"
#include "metadistill/data/fashion_mnist.h"
#include "metadistill/data/image_folder.h"
#include "metadistill/data/synthetic.h"
#include "metadistill/data/table.h"
#include "metadistill/experiment/search_run.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/train/external_teacher.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/runtime.h"
#include "metadistill/util/settings_key.h"

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
  if (c.name == "table") {
    TableOptions t(c.file, c.label);
    t.tested_on(c.test_file).test_rows(c.test_size).val_rows(c.val_size).seeded(c.split_seed);
    t.limit_train = c.limit_train;
    t.limit_test = c.limit_test;
    return load_table(t);
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

namespace {

// The input shape of the data's rows (teacher and student alike) and the class count, where
// they are known without decoding a file.
struct KnownShape {
  std::vector<int64_t> input;
  int64_t classes = 2;
};

std::optional<KnownShape> known_shape(const DataConfig& d) {
  if (d.name == "synthetic") return KnownShape{{3}, 2};
  if (d.name == "fmnist") return KnownShape{{1, 28, 28}, 10};
  if (d.name == "cifar10" || d.name == "cifar10-reduced") return KnownShape{{3, 32, 32}, 10};
  if (d.name == "folder" && d.image_size.size() == 2)
    return KnownShape{{d.channels, d.image_size[0], d.image_size[1]},
                      std::max<int64_t>(2, static_cast<int64_t>(d.classes.size()))};
  return std::nullopt;
}

// Builds `model` for `shape` and runs a batch of two zero rows through it; the global random
// state is restored, so that the probe changes no later draw (a resumed run stays bit-identical).
void check_model_fits(const Config& c, const std::string& role, const std::string& model,
                      const KnownShape& shape) {
  auto gen = at::detail::getDefaultCPUGenerator();
  const auto state = gen.get_state();
  std::string problem;
  try {
    torch::NoGradGuard no_grad;
    Classifier m = make_model(ModelSpec(model, shape.classes, shape.input));
    m->eval();
    std::vector<int64_t> batch = {2};
    batch.insert(batch.end(), shape.input.begin(), shape.input.end());
    m->forward(torch::zeros(batch));
  } catch (const Error& e) {
    problem = e.what();
  } catch (const c10::Error& e) {
    problem = std::string(e.what_without_backtrace()).substr(0, 300);
  }
  gen.set_state(state);
  check(problem.empty(), "{}: {}.model '{}' does not fit data {} (input shape [{}]): {}", c.source,
        role, model, c.data.name, fmt::join(shape.input, ", "), problem);
}

// Creates `dir` when missing and writes (then removes) a file in it.
void check_writable(const fs::path& dir, const std::string& what, const std::string& source) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec, "{}: {} {}: cannot create the folder ({})", source, what, dir.string(), ec.message());
  const fs::path probe = dir / fmt::format(".write-test-{}", ::getpid());
  bool ok = false;
  {
    std::ofstream f(probe);
    ok = f.good() && static_cast<bool>(f << "ok");
  }
  fs::remove(probe, ec);
  check(ok, "{}: {} {}: not writable", source, what, dir.string());
}

// What of the method settings shapes a run of `method`: each method reads only some of them,
// so that, say, a changed γ_λ does not invalidate the stored runs of `none`.
nlohmann::json method_settings(const Config& config, const std::string& method) {
  const MethodOptions& m = config.method;
  nlohmann::json j = {{"name", method}};
  if (method == "none" || method == "naive") return j;
  if (method == "fixed" || method == "fixed-train-val") {
    j["lambda1"] = m.fixed.lambda1;
    j["temperature"] = m.fixed.temperature;
    return j;
  }
  if (method == "random") {
    j["temperature_prior"] = m.temperature_prior;
    return j;
  }
  if (is_search_method(method)) {
    j["search"] = config.to_json().at("search");
    return j;
  }
  // The optimizing methods: their initial λ (given, or drawn from the prior) and their settings.
  if (m.given_initial) {
    j["lambda1"] = m.fixed.lambda1;
    j["temperature"] = m.fixed.temperature;
  } else {
    j["temperature_prior"] = m.temperature_prior;
  }
  j["settings"] = m.extra;
  return j;
}

bool external_teacher(const Config& c) {
  return !c.teacher_torchscript.empty() || !c.teacher_logits.empty();
}

}  // namespace

void check_before_start(const Config& config, const std::vector<std::string>& methods) {
  auto known = method_names();
  for (const auto& m : search_method_names()) known.push_back(m);
  std::sort(known.begin(), known.end());
  for (const auto& name : methods) {
    if (is_search_method(name)) continue;  // its settings are the config's `search` section
    check(std::find(known.begin(), known.end(), name) != known.end() ||
              config.variants.count(name) > 0,
          "{}: unknown method '{}': expected one of {}{}", config.source, name,
          fmt::join(known, ", "), config.variants.empty() ? "" : " or a name under variants");
    std::string base;
    MethodOptions mo = config.for_method(name, base).method;
    mo.method = base;
    try {
      make_meta_optimizer(mo);  // reads and checks the settings the method uses
    } catch (const Error& e) {
      fail("{}: method '{}': {}", config.source, name, e.what());
    }
  }
  if (const auto shape = known_shape(config.data)) {
    check_model_fits(config, "student", config.student.model, *shape);
    if (!external_teacher(config) && !config.teacher_file.empty() &&
        !fs::exists(config.teacher_file))
      check_model_fits(config, "teacher", config.teacher.model, *shape);
  }
  for (const auto& [key, file] : {std::pair{"torchscript", &config.teacher_torchscript},
                                  std::pair{"logits", &config.teacher_logits}})
    check(file->empty() || fs::is_regular_file(*file), "{}: teacher.{} {}: no such file",
          config.source, key, *file);
  if (config.student.trainer.optimizer == "lstm") {
    try {
      (void)load_lstm_optimizer(config.student.trainer.optimizer_file);  // a learned optimizer file
    } catch (const Error& e) {
      fail("{}: student.train.optimizer: {}", config.source, e.what());
    }
  }
  if (config.data.name == "table")
    for (const auto& [key, file] : {std::pair{"file", &config.data.file},
                                    std::pair{"test_file", &config.data.test_file}})
      check(file->empty() || fs::is_regular_file(*file), "{}: data.{} {}: no such file",
            config.source, key, *file);
  check_writable(config.out, "output folder", config.source);
  if (!external_teacher(config) && !config.teacher_file.empty() &&
      !fs::exists(config.teacher_file)) {
    const fs::path parent = fs::path(config.teacher_file).parent_path();
    check_writable(parent.empty() ? fs::path(".") : parent, "teacher file's folder",
                   config.source);
  }
  if (!config.cache.empty()) check_writable(config.cache, "cache folder", config.source);
}

nlohmann::json run_settings(const Config& given, const Prepared& prepared,
                            const std::string& method, uint64_t seed) {
  // A variant's run is shaped by its merged settings (for_method is idempotent, so a config
  // already resolved for `method` gives the same).
  std::string base;
  const Config config = given.for_method(method, base);
  const nlohmann::json c = config.to_json();
  nlohmann::json data = c.at("data");
  data.erase("root");  // where the files are does not shape the run; their contents do
  nlohmann::json student = c.at("student");
  student["train"].erase("checkpoint_every");  // when it saves does not shape what it computes
  student["train"].erase("optimizer_file");  // a learned optimizer counts by its contents' hash
  nlohmann::json j = {{"data", data},
                      {"data_fingerprint", prepared.data.fingerprint},
                      {"teacher", prepared.teacher_hash},
                      {"student", student},
                      {"time_limit", config.student.trainer.time_limit},
                      {"method", method_settings(config, base)},
                      {"seed", seed}};
  if (method != base) j["variant"] = method;
  return j;
}

Prepared prepare(const Config& config, DataParallel* group) {
  check_before_start(config, {});
  Prepared p;
  p.data = load_data(config.data, config.cache);
  const auto device = parse_device(config.device);
  const auto input_shape = p.data.pool.teacher_input().sizes().slice(1).vec();
  if (!config.teacher_logits.empty()) {
    // No teacher to run: its outputs come from the file, the test rows' too when given.
    TeacherLogits logits = load_teacher_logits(config.teacher_logits, p.data);
    p.teacher.spec = ModelSpec("logits-file", p.data.num_classes, input_shape);
    p.teacher_hash = hash_string(read_file(config.teacher_logits));
    p.teacher_logits = logits.pool;
    p.teacher_test_accuracy =
        logits.test.defined()
            ? logits.test.argmax(1).eq(p.data.test.y).to(torch::kDouble).mean().item<double>()
            : std::nan("");
    return p;
  }
  if (!config.teacher_torchscript.empty()) {
    auto teacher = load_torchscript_teacher(config.teacher_torchscript, input_shape,
                                            p.data.num_classes, device);
    p.teacher.model = teacher;
    p.teacher.spec = ModelSpec("torchscript", p.data.num_classes, input_shape);
    p.teacher_hash = hash_string(read_file(config.teacher_torchscript));
    p.teacher_logits = cached_teacher_logits(*teacher, config.teacher_torchscript, p.data,
                                             config.cache, device, group);
    p.teacher_test_accuracy =
        evaluate_accuracy(*teacher, teacher_view(p.data.test), 1024, device);
    return p;
  }
  ModelSpec spec(config.teacher.model, p.data.num_classes, input_shape);
  TrainerOptions t = config.teacher.trainer;
  t.device = device;
  p.teacher = ensure_teacher(p.data, spec, t, config.teacher_file);
  p.teacher_hash = hash_string(read_file(config.teacher_file));
  p.teacher_logits =
      cached_teacher_logits(*p.teacher.model, config.teacher_file, p.data, config.cache, device,
                            group);
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
                      uint64_t seed, const fs::path& out_dir, bool resume, bool verbose,
                      std::shared_ptr<DataParallel> group) {
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
  t.verbose = verbose && (!group || group->rank() == 0);
  t.data_parallel = group;
  const nlohmann::json settings = run_settings(config, prepared, method, seed);
  t.settings = settings;

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
  if (!out_dir.empty() && (!group || group->rank() == 0)) {
    nlohmann::json j = r.to_json();
    j.update(settings_record(settings));
    write_file_atomic(out_dir / "result.json", j.dump(2));
    fs::path model_path = out_dir / "student.pt";
    student->to(torch::kCPU);
    save_model_file(*student, spec, model_path);
  }
  return r;
}

}  // namespace metadistill
