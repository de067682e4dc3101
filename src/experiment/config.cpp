#include "metadistill/experiment/config.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <yaml-cpp/yaml.h>

#include "metadistill/data/image_codec.h"
#include "metadistill/data/image_folder.h"
#include "metadistill/experiment/search_run.h"
#include "metadistill/meta/gradient_method.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "config_section.h"

namespace metadistill {

namespace {

using detail::Section;

void read_trainer(Section s, TrainerOptions& t) {
  s.get("epochs", t.epochs);
  s.get("batch_size", t.batch_size);
  s.get("lr", t.lr);
  s.get("lr_step", t.lr_step);
  s.get("lr_gamma", t.lr_gamma);
  s.get("lr_schedule", t.lr_schedule);
  if (s.raw("optimizer").IsMap()) {
    // optimizer: {kind: lstm, file: FILE} (the learned optimizer, meta/lstm_optimizer.h)
    Section o = s.child("optimizer");
    o.get("kind", t.optimizer);
    std::string file;
    o.get("file", file);
    t.optimizer_file = file;
    o.finish();
  } else {
    s.get("optimizer", t.optimizer);
  }
  s.get("momentum", t.momentum);
  s.get("weight_decay", t.weight_decay);
  s.get("eval_every", t.eval_every);
  s.get("checkpoint_every", t.checkpoint_every);
  s.get("trajectory_every", t.trajectory_every);
  s.get("val_batch_size", t.val_batch_size);
  s.get("augmentation", t.augmentation);
  s.get("kd_scale", t.kd_scale);
  s.get("step_norm", t.step_norm);
  s.finish();
}

nlohmann::json yaml_to_json(const YAML::Node& n) {
  if (!n || n.IsNull()) return nullptr;
  if (n.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
    return j;
  }
  if (n.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : n) j.push_back(yaml_to_json(v));
    return j;
  }
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  if (s == "true" || s == "false") return s == "true";
  // YAML's special floats, so that a range check names them as numbers.
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::nan("");
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF")
    return INFINITY;
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -INFINITY;
  try {
    size_t pos = 0;
    long long i = std::stoll(s, &pos);
    if (pos == s.size()) return i;
    double d = std::stod(s, &pos);
    if (pos == s.size()) return d;
  } catch (const std::exception&) {
  }
  return s;
}

nlohmann::json trainer_json(const TrainerOptions& t) {
  nlohmann::json j = {{"epochs", t.epochs},         {"batch_size", t.batch_size}, {"lr", t.lr},
          {"lr_step", t.lr_step},       {"lr_gamma", t.lr_gamma},     {"lr_schedule", t.lr_schedule},
          {"optimizer", t.optimizer},
          {"momentum", t.momentum},     {"weight_decay", t.weight_decay},
          {"eval_every", t.eval_every}, {"checkpoint_every", t.checkpoint_every},
          {"trajectory_every", t.trajectory_every}, {"augmentation", t.augmentation},
          {"kd_scale", t.kd_scale},         {"step_norm", t.step_norm},
          {"val_batch_size", t.val_batch_size}};
  if (!t.optimizer_file.empty()) {
    // The learned optimizer shapes the run by its contents (a missing file is named later).
    j["optimizer_file"] = t.optimizer_file.string();
    std::error_code ec;
    if (std::filesystem::is_regular_file(t.optimizer_file, ec))
      j["optimizer_file_hash"] = hash_string(read_file(t.optimizer_file));
  }
  return j;
}

// 1 when the first image of every class of the training split (at most 8 classes looked at)
// is grey (R = G = B everywhere, whatever the file's colour type), else 3. 3 too when the folder
// cannot be read here: the loader then names the problem.
int64_t folder_channels(const DataConfig& d) {
  try {
    // The loader's own listing (its rules for class folders and image files).
    const ImageFolderListing listing = list_image_folder(ImageFolderOptions(d.root), d.train_split);
    int checked = 0;
    int64_t label = -1;
    for (const auto& f : listing.files) {  // sorted by label, then name: a class's first file
      if (f.label == label) continue;
      label = f.label;
      const torch::Tensor img = read_image(listing.folder / f.relative, 3);
      if (!img[0].equal(img[1]) || !img[1].equal(img[2])) return 3;
      if (++checked == 8) break;
    }
    return checked > 0 ? 1 : 3;
  } catch (const std::exception&) {
    return 3;
  }
}

// Defaults for a folder of images of unknown kind: a small ResNet teacher and the paper's CNN
// student (both take any image of at least 8 x 8), momentum SGD with a cosine schedule, every
// epoch evaluated, no augmentation (a flip would corrupt digits or text), T_val = 1.
void apply_folder_defaults(Config& c) {
  c.teacher.model = "resnet8";
  c.student.model = "cnn";
  for (TrainerOptions* t : {&c.teacher.trainer, &c.student.trainer}) {
    t->with_batch_size(64).with_lr(0.05).with_lr_step(0, 1.0);
    t->optimizer = "momentum";
    t->momentum = 0.9;
    t->weight_decay = 5e-4;
    t->lr_schedule = "cosine";
    t->eval_every = 1;
    t->augmentation = "none";
  }
  c.teacher.trainer.with_epochs(15);
  c.student.trainer.with_epochs(20);
  c.method.extra = {{"val_temperature", 1.0}, {"gamma", 0.1}};
  if (c.out == default_config().out) {
    auto root = std::filesystem::path(c.data.root).lexically_normal();
    if (root.filename().empty()) root = root.parent_path();  // "photos/" -> "photos"
    c.out = "runs/folder-" + root.filename().string();
  }
}

}  // namespace

Config default_config() {
  Config c;
  c.data.name = "synthetic";
  c.data.variant = "reference";
  c.teacher.model = "logreg";
  c.teacher.trainer.with_epochs(20000).with_batch_size(0).with_lr(0.01).with_lr_step(0, 1.0);
  c.teacher.trainer.eval_every = 1000;
  c.teacher.trainer.checkpoint_every = 0;
  c.student.model = "logreg";
  c.student.trainer.with_epochs(2000).with_batch_size(0).with_lr(1.0).with_lr_step(0, 1.0);
  c.student.trainer.eval_every = 100;
  c.student.trainer.checkpoint_every = 0;
  c.method.method = "naive";
  // The paper's synthetic setting: T_val = 0.1, γ_λ = 0.1 (as configs/synthetic.yaml).
  c.method.extra = {{"val_temperature", 0.1}, {"gamma", 0.1}};
  c.methods = {};
  c.runs = 10;
  c.out = "runs/synthetic";
  c.preset = "reference";
  // A logistic regression on 15 rows: intra-op threads only add synchronization (measured 0.7 s
  // with one thread against several seconds with two on a loaded machine).
  c.threads = 1;
  return c;
}

void Config::resolve_paths() {
  if (teacher_file.empty()) teacher_file = (std::filesystem::path(out) / "teacher.pt").string();
  if (cache.empty()) cache = (std::filesystem::path(out) / "cache").string();
}

void Config::validate() const {
  check(teacher_torchscript.empty() || teacher_logits.empty(),
        "{}: teacher.torchscript and teacher.logits are both given; a teacher is one or the other",
        source);
  static const std::set<std::string> datasets = {"synthetic", "fmnist", "cifar10",
                                                 "cifar10-reduced", "folder", "table"};
  check(datasets.count(data.name) > 0, "{}: data.name '{}': expected synthetic, fmnist, cifar10, "
        "cifar10-reduced, folder or table", source, data.name);
  check(data.name != "table" || (!data.file.empty() && !data.label.empty()),
        "{}: a 'table' data set needs data.file (.csv or .npy) and data.label (its label column)",
        source);
  check(data.test_size >= -1, "{}: data.test_size = {}: expected rows >= 0, or -1 for a fifth",
        source, data.test_size);
  check(data.name != "folder" || !data.root.empty(),
        "{}: data.root: a 'folder' data set needs the folder holding its split folders", source);
  check(data.on_bad_image == "fail" || data.on_bad_image == "skip",
        "{}: data.on_bad_image '{}': expected fail or skip", source, data.on_bad_image);
  check(data.on_size_mismatch == "reject" || data.on_size_mismatch == "resize",
        "{}: data.on_size_mismatch '{}': expected reject or resize", source, data.on_size_mismatch);
  check(data.image_size.empty() ||
            (data.image_size.size() == 2 && data.image_size[0] > 0 && data.image_size[1] > 0),
        "{}: data.image_size [{}]: expected [height, width], both > 0", source,
        fmt::join(data.image_size, ", "));
  check(data.channels == 1 || data.channels == 3, "{}: data.channels = {}: expected 1 or 3",
        source, data.channels);
  check(data.mean.size() == data.std.size(),
        "{}: data.mean has {} values, data.std {}: give both, one per channel", source,
        data.mean.size(), data.std.size());
  for (double v : data.std)
    check(std::isfinite(v) && v > 0, "{}: data.std value {}: expected a finite value > 0",
          source, v);
  check(data.format == "binary" || data.format == "folder",
        "{}: data.format '{}': expected binary or folder", source, data.format);
  check(data.variant == "reference" || data.variant == "paper",
        "{}: data.variant '{}': expected reference or paper", source, data.variant);
  check(data.limit_train >= 0 && data.limit_test >= 0, "{}: data.limit_train/limit_test must be >= 0",
        source);
  check(runs >= 1, "{}: runs = {}: expected >= 1", source, runs);
  auto known = model_names();
  for (const auto* m : {&teacher.model, &student.model})
    check(std::find(known.begin(), known.end(), *m) != known.end(),
          "{}: unknown model '{}': expected one of {}", source, *m, fmt::join(known, ", "));
  auto names = method_names();
  for (const auto& m : search_method_names()) names.push_back(m);
  std::sort(names.begin(), names.end());
  for (const auto& [name, v] : variants) {
    check(std::find(names.begin(), names.end(), name) == names.end(),
          "{}: variants.{}: the name of a registered method; give the variant its own name",
          source, name);
    auto registered = method_names();
    check(std::find(registered.begin(), registered.end(), v.method) != registered.end(),
          "{}: variants.{}.method '{}': expected one of {}", source, name, v.method,
          fmt::join(registered, ", "));
    try {
      std::string base;
      Config c = for_method(name, base);
      c.method.fixed.validate();
      c.student.trainer.validate();
      MethodOptions mo = c.method;
      mo.method = base;
      (void)make_meta_optimizer(mo);  // checks the merged settings
    } catch (const Error& e) {
      fail("{}: variants.{}: {}", source, name, e.what());
    }
  }
  for (const auto& m : methods)
    check(std::find(names.begin(), names.end(), m) != names.end() || variants.count(m) > 0,
          "{}: methods: unknown method '{}': expected one of {}{}", source, m,
          fmt::join(names, ", "), variants.empty() ? "" : " or a name under variants");
  check(first_seed >= 0, "{}: first_seed = {}: expected >= 0", source, first_seed);
  try {
    search.validate();
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
  check(std::isfinite(budget.seconds) && budget.seconds >= 0,
        "{}: budget.seconds = {}: expected seconds >= 0 (0 = no budget)", source, budget.seconds);
  try {
    teacher.trainer.validate();
  } catch (const Error& e) {
    fail("{}: teacher: {}", source, e.what());
  }
  try {
    student.trainer.validate();
  } catch (const Error& e) {
    fail("{}: student: {}", source, e.what());
  }
  try {
    method.fixed.validate();
  } catch (const Error& e) {
    fail("{}: method: {}", source, e.what());
  }
  // The settings every gradient method reads: checked here, before anything is trained.
  try {
    GradientMethodOptions::from_json(method.extra);
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
}

Config Config::for_method(const std::string& name, std::string& base) const {
  auto it = variants.find(name);
  base = name;
  if (it == variants.end()) return *this;
  const MethodVariant& v = it->second;
  Config c = *this;
  base = v.method;
  if (c.method.extra.is_null()) c.method.extra = nlohmann::json::object();
  for (const auto& [key, value] : v.settings.items()) c.method.extra[key] = value;
  if (std::isfinite(v.lambda1) || std::isfinite(v.temperature)) {
    if (std::isfinite(v.lambda1)) c.method.fixed.lambda1 = v.lambda1;
    if (std::isfinite(v.temperature)) c.method.fixed.temperature = v.temperature;
    c.method.given_initial = true;
  }
  if (std::isfinite(v.lr)) c.student.trainer.lr = v.lr;
  if (!v.kd_scale.empty()) c.student.trainer.kd_scale = v.kd_scale;
  if (!v.train.empty())
    read_trainer(Section(YAML::Load(v.train), "variants." + name + ".train", source),
                 c.student.trainer);
  return c;
}

nlohmann::json Config::to_json() const {
  nlohmann::json vs = nlohmann::json::object();
  for (const auto& [name, v] : variants) {
    nlohmann::json j = {{"method", v.method}, {"settings", v.settings}};
    if (std::isfinite(v.lambda1)) j["lambda1"] = v.lambda1;
    if (std::isfinite(v.temperature)) j["temperature"] = v.temperature;
    if (std::isfinite(v.lr)) j["lr"] = v.lr;
    if (!v.kd_scale.empty()) j["kd_scale"] = v.kd_scale;
    if (!v.train.empty()) j["train"] = yaml_to_json(YAML::Load(v.train));
    vs[name] = j;
  }
  nlohmann::json j = {{"preset", preset},
                     {"first_seed", first_seed},
                     {"reference", reference},
                     {"variants", vs},
                     {"source", source},
                     {"data",
                      {{"name", data.name},
                       {"variant", data.variant},
                       {"root", data.root},
                       {"format", data.format},
                       {"val_size", data.val_size},
                       {"split_seed", data.split_seed},
                       {"limit_train", data.limit_train},
                       {"limit_test", data.limit_test},
                       {"val_is_test", data.val_is_test},
                       {"on_bad_image", data.on_bad_image},
                       {"on_size_mismatch", data.on_size_mismatch},
                       {"classes", data.classes},
                       {"image_size", data.image_size},
                       {"channels", data.channels},
                       {"train_split", data.train_split},
                       {"test_split", data.test_split},
                       {"mean", data.mean},
                       {"std", data.std},
                       {"synthetic_seed", data.synthetic_seed},
                       {"synthetic_val_rows", data.synthetic_val_rows}}},
                     {"teacher",
                      {{"model", teacher.model},
                       {"file", teacher_file},
                       {"train", trainer_json(teacher.trainer)}}},
                     {"student",
                      {{"model", student.model}, {"train", trainer_json(student.trainer)}}},
                     {"method",
                      {{"name", method.method},
                       {"lambda1", method.fixed.lambda1},
                       {"temperature", method.fixed.temperature},
                       {"temperature_prior", method.temperature_prior},
                       {"settings", method.extra}}},
                     {"methods", methods},
                     {"runs", runs},
                     {"search",
                      {{"trials", search.trials},
                       {"startup", search.startup},
                       {"objective", search.objective},
                       {"gamma_rule", search.gamma_rule},
                       {"candidates", search.candidates},
                       {"trial_epochs", search.trial_epochs},
                       {"prune", search.prune},
                       {"max_failures", search.max_failures}}},
                     {"budget", {{"seconds", budget.seconds}}},
                     {"seed", seed},
                     {"threads", threads},
                     {"device", device},
                     {"out", out},
                     {"cache", cache}};
  // Keys of later features only where they are used, so that the settings keys of runs stored
  // before them (results/) stay what they were.
  if (data.name == "table") {
    j["data"]["file"] = data.file;
    j["data"]["label"] = data.label;
    j["data"]["test_file"] = data.test_file;
    j["data"]["test_size"] = data.test_size;
  }
  if (!teacher_torchscript.empty()) j["teacher"]["torchscript"] = teacher_torchscript;
  if (!teacher_logits.empty()) j["teacher"]["logits"] = teacher_logits;
  return j;
}

// Every string of a config ends up in JSON (config.json, settings keys, messages), which holds
// UTF-8 only: a file with other bytes is refused here, naming the line, rather than failing later
// in a JSON writer (found by fuzz_config).
static void check_utf8(const std::string& text, const std::string& file) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  int64_t line = 1;
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c == '\n') ++line;
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] >> 6) == 0x2;
    if (ok && len > 1) {
      // Overlong forms, surrogates and code points above U+10FFFF are not UTF-8 either.
      uint32_t cp = c & (0xff >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3f);
      static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= min_cp[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    check(ok, "config {}: line {}: not UTF-8 text (byte 0x{:02x} at offset {})", file, line, c, i);
    // YAML allows no control character but tab, line feed and carriage return (a NUL made
    // yaml-cpp hand on bytes that are not UTF-8; found by fuzz_config).
    check(c >= 0x20 || c == '\t' || c == '\n' || c == '\r',
          "config {}: line {}: control character 0x{:02x} at offset {} (YAML allows only tab, "
          "line feed and carriage return)", file, line, c, i);
    i += len;
  }
}

namespace detail {

static bool given_at(const YAML::Node& n, const char* const* key, const char* const* end) {
  if (!n.IsDefined() || n.IsNull()) return false;
  if (key == end) return true;
  if (!n.IsMap()) return false;
  return given_at(n[*key], key + 1, end);  // the const operator[]: never inserts
}

bool given(const YAML::Node& root, std::initializer_list<const char*> path) {
  return given_at(root, path.begin(), path.end());
}

std::string loss_kind(const YAML::Node& root, const std::string& file) {
  std::string kind = "hinton";
  if (given(root, {"loss", "kind"})) {
    try {
      kind = root["loss"]["kind"].as<std::string>();
    } catch (const YAML::Exception&) {
      fail("{}: key 'loss.kind': expected a string", file);
    }
  }
  check(kind == "hinton" || kind == "vid", "{}: loss.kind '{}': expected hinton or vid", file,
        kind);
  return kind;
}

const std::vector<std::string>& vid_loss_keys() {
  static const std::vector<std::string> keys = {
      "teacher_taps", "student_taps",      "beta",    "random_beta",      "hinton_lambda1",
      "temperature",  "vid_init_variance", "vid_eps", "vid_weight_decay", "vid_hidden"};
  return keys;
}

}  // namespace detail

// loss: the loss head and its metaparameters in one place. `kind: hinton` (the default) takes
// lambda1 and temperature (as method.lambda1/temperature), kd_scale and step_norm (as
// student.train's); `kind: vid` takes the multi-layer loss keys (detail::vid_loss_keys), which
// the multi-layer reader (experiment/multilayer_config.cpp) reads. A key given here and at its
// other place is refused, naming both.
static void read_loss_section(const YAML::Node& root, Section l, Config& c,
                              const std::string& file) {
  const std::string kind = detail::loss_kind(root, file);
  l.raw("kind");
  auto once = [&](const char* key, std::initializer_list<const char*> other,
                  const std::string& other_name) {
    check(!(detail::given(root, {"loss", key}) && detail::given(root, other)),
          "{}: loss.{} and {} are the same setting given twice; keep one", file, key, other_name);
  };
  if (kind == "hinton") {
    once("lambda1", {"method", "lambda1"}, "method.lambda1");
    once("temperature", {"method", "temperature"}, "method.temperature");
    once("kd_scale", {"student", "train", "kd_scale"}, "student.train.kd_scale");
    once("step_norm", {"student", "train", "step_norm"}, "student.train.step_norm");
    l.get("lambda1", c.method.fixed.lambda1);
    l.get("temperature", c.method.fixed.temperature);
    l.get("kd_scale", c.student.trainer.kd_scale);
    l.get("step_norm", c.student.trainer.step_norm);
  } else {
    for (const auto& key : detail::vid_loss_keys()) l.raw(key);
  }
  l.finish();
}

static Config read_config(const std::filesystem::path& path) {
  Config c = default_config();
  c.source = path.string();
  check(std::filesystem::exists(path), "config {}: no such file", path.string());
  check(!std::filesystem::is_directory(path), "config {}: is a folder; expected a YAML file",
        path.string());
  check_utf8(read_file(path), path.string());
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    fail("config {}: not valid YAML: {}", path.string(), e.what());
  }
  // An empty file would silently run the built-in synthetic experiment instead of the user's.
  check(root && !root.IsNull() && !(root.IsMap() && root.size() == 0),
        "config {}: empty (no settings, only comments or nothing); expected a YAML mapping such "
        "as 'data: {{name: fmnist}}' (leave the config out to run the built-in default)",
        path.string());
  const std::string file = path.string();
  Section top(root, "", file);
  top.get("preset", c.preset);
  top.get("runs", c.runs);
  top.get("seed", c.seed);
  top.get("threads", c.threads);
  top.get("device", c.device);
  top.get("out", c.out);
  top.get("cache", c.cache);
  top.get("methods", c.methods);
  top.get("first_seed", c.first_seed);
  top.get("reference", c.reference);
  {
    auto node = top.raw("variants");
    if (node && !node.IsNull()) {
      check(node.IsMap(), "{}: key 'variants' must be a mapping of names to variants", file);
      for (const auto& kv : node) {
        const auto name = kv.first.as<std::string>();
        Section v(kv.second, "variants." + name, file);
        MethodVariant mv;
        v.get("method", mv.method);
        check(!mv.method.empty(), "{}: variants.{}: key 'method' (the method it varies) is missing",
              file, name);
        v.get("lambda1", mv.lambda1);
        v.get("temperature", mv.temperature);
        v.get("lr", mv.lr);
        v.get("kd_scale", mv.kd_scale);
        auto train = v.raw("train");
        if (train && !train.IsNull()) {
          TrainerOptions checked;
          read_trainer(Section(train, "variants." + name + ".train", file), checked);
          YAML::Emitter out;
          out << YAML::Flow << train;
          mv.train = out.c_str();
        }
        auto settings = v.raw("settings");
        if (settings && !settings.IsNull()) {
          check(settings.IsMap(), "{}: key 'variants.{}.settings' must be a mapping", file, name);
          mv.settings = yaml_to_json(settings);
        }
        v.finish();
        c.variants[name] = mv;
      }
    }
  }
  top.raw("multilayer");  // read by load_multilayer_config (experiment/multilayer.h)
  int64_t channels_in = 0;  // absent or 0: from the files for a folder, else 3
  {
    Section d = top.child("data");
    d.get("name", c.data.name);
    d.get("variant", c.data.variant);
    d.get("root", c.data.root);
    d.get("format", c.data.format);
    d.get("val_size", c.data.val_size);
    d.get("split_seed", c.data.split_seed);
    d.get("limit_train", c.data.limit_train);
    d.get("limit_test", c.data.limit_test);
    d.get("val_is_test", c.data.val_is_test);
    d.get("on_bad_image", c.data.on_bad_image);
    d.get("on_size_mismatch", c.data.on_size_mismatch);
    d.get("classes", c.data.classes);
    d.get("image_size", c.data.image_size);
    d.get("channels", channels_in);
    d.get("train_split", c.data.train_split);
    d.get("test_split", c.data.test_split);
    d.get("mean", c.data.mean);
    d.get("std", c.data.std);
    d.get("synthetic_seed", c.data.synthetic_seed);
    d.get("synthetic_val_rows", c.data.synthetic_val_rows);
    d.get("file", c.data.file);
    d.get("label", c.data.label);
    d.get("test_file", c.data.test_file);
    d.get("test_size", c.data.test_size);
    d.finish();
  }
  // Defaults follow the kind of data: image trainings take minutes to hours, so they checkpoint
  // (and write metrics.csv) every epoch unless the config says otherwise; synthetic runs take
  // seconds and keep the authors' setting (none until the end).
  if (c.data.name != "synthetic") {
    c.teacher.trainer.checkpoint_every = 1;
    c.student.trainer.checkpoint_every = 1;
  }
  if (channels_in != 0)
    c.data.channels = channels_in;
  else if (c.data.name == "folder")
    c.data.channels = folder_channels(c.data);
  // A user's own images: defaults for images of unknown kind and size, before the teacher and
  // student sections, which override them.
  if (c.data.name == "folder") apply_folder_defaults(c);
  {
    Section t = top.child("teacher");
    t.get("model", c.teacher.model);
    t.get("file", c.teacher_file);
    t.get("torchscript", c.teacher_torchscript);
    t.get("logits", c.teacher_logits);
    read_trainer(t.child("train"), c.teacher.trainer);
    t.finish();
  }
  {
    Section s = top.child("student");
    s.get("model", c.student.model);
    read_trainer(s.child("train"), c.student.trainer);
    s.finish();
  }
  {
    Section m = top.child("method");
    m.get("name", c.method.method);
    m.get("lambda1", c.method.fixed.lambda1);
    m.get("temperature", c.method.fixed.temperature);
    m.get("temperature_prior", c.method.temperature_prior);
    auto settings = m.raw("settings");
    if (settings && !settings.IsNull()) {
      check(settings.IsMap(), "{}: key 'method.settings' must be a mapping", file);
      c.method.extra = yaml_to_json(settings);
    }
    m.finish();
  }
  read_loss_section(root, top.child("loss"), c, file);
  {
    Section s = top.child("search");
    s.get("trials", c.search.trials);
    s.get("startup", c.search.startup);
    s.get("objective", c.search.objective);
    s.get("gamma_rule", c.search.gamma_rule);
    s.get("candidates", c.search.candidates);
    s.get("trial_epochs", c.search.trial_epochs);
    s.get("prune", c.search.prune);
    s.get("max_failures", c.search.max_failures);
    s.finish();
  }
  {
    Section b = top.child("budget");
    b.get("seconds", c.budget.seconds);
    b.finish();
  }
  top.finish();
  c.validate();
  return c;
}

// yaml-cpp throws its own exceptions where a node has another shape than the reader expects (a
// mapping used as a key, a list where a name belongs); they become errors naming the file.
Config load_config(const std::filesystem::path& path) {
  try {
    return read_config(path);
  } catch (const YAML::Exception& e) {
    fail("config {}: {} (a key or value of the wrong kind)", path.string(), e.what());
  } catch (const nlohmann::json::exception& e) {
    // A string yaml-cpp unescaped into bytes that are not UTF-8 (a "\\ud800" escape, say).
    fail("config {}: {}", path.string(), e.what());
  }
}

}  // namespace metadistill
