// The `multilayer:` section of a config; the other sections go through `load_config` unchanged.
#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "metadistill/experiment/multilayer.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

template <typename T>
void read_key(const YAML::Node& section, const std::string& key, const std::string& file,
              std::set<std::string>& used, T& out, const char* expected,
              const char* prefix = "multilayer.") {
  used.insert(key);
  auto v = section[key];
  if (!v || v.IsNull()) return;
  try {
    out = v.as<T>();
  } catch (const YAML::Exception&) {
    YAML::Emitter e;
    e << YAML::Flow << v;
    fail("{}: key '{}{}': expected {}, got '{}'", file, prefix, key, expected, e.c_str());
  }
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

}  // namespace

static MultiLayerConfig read_multilayer_config(const fs::path& path) {
  const std::string file = path.string();
  check(fs::exists(path), "config {}: no such file", file);
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    fail("config {}: not valid YAML: {}", file, e.what());
  }
  check(root.IsMap(), "config {}: the top level must be a mapping of keys", file);

  // Everything but `multilayer` is an ordinary config: hand it to `load_config` through a
  // temporary file (it reads files only) and put this file's name back into its messages.
  YAML::Node rest(YAML::NodeType::Map);
  YAML::Node section;
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    if (key == "multilayer")
      section = kv.second;
    else
      rest[key] = kv.second;
  }
  YAML::Emitter emitter;
  emitter << rest;
  const fs::path tmp = fs::temp_directory_path() /
                       fmt::format("metadistill-multilayer-{}-{}.yaml", ::getpid(),
                                   hash_string(file + emitter.c_str()));
  MultiLayerConfig c;
  write_file_atomic(tmp, std::string(emitter.c_str()) + "\n");
  try {
    c.base = load_config(tmp);
  } catch (const Error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error(replace_all(e.what(), tmp.string(), file));
  }
  std::error_code ec;
  fs::remove(tmp, ec);
  c.base.source = file;

  check(section && section.IsMap(),
        "{}: a multilayer config needs a 'multilayer:' mapping (methods, teacher_taps, "
        "student_taps, ...)", file);
  std::set<std::string> used;
  MultiLayerOptions& o = c.options;
  std::vector<std::string> strings;
  double d = 0;
  int64_t i = 0;
  bool flag = false;
  read_key(section, "methods", file, used, c.methods, "a list of method names");
  strings = o.teacher_taps();
  read_key(section, "teacher_taps", file, used, strings, "a list of tap names");
  o.teacher_taps(strings);
  strings = o.student_taps();
  read_key(section, "student_taps", file, used, strings, "a list of tap names");
  o.student_taps(strings);
  auto number = [&](const char* key, double current, auto setter) {
    d = current;
    read_key(section, key, file, used, d, "a number");
    setter(d);
  };
  number("beta", o.beta(), [&](double v) { o.beta(v); });
  number("hinton_lambda1", o.hinton_lambda1(), [&](double v) { o.hinton_lambda1(v); });
  number("temperature", o.temperature(), [&](double v) { o.temperature(v); });
  number("meta_lr", o.meta_lr(), [&](double v) { o.meta_lr(v); });
  number("beta_lr", o.beta_lr(), [&](double v) { o.beta_lr(v); });
  number("beta_min", o.beta_min(), [&](double v) { o.beta_min(v); });
  number("beta_max", o.beta_max(), [&](double v) { o.beta_max(v); });
  {
    std::string kind = o.meta_optimizer();
    read_key(section, "meta_optimizer", file, used, kind, "sgd, adam or sign");
    o.meta_optimizer(kind);
  }
  number("fd_scale", o.fd_scale(), [&](double v) { o.fd_scale(v); });
  number("online_mu", o.online_mu(), [&](double v) { o.online_mu(v); });
  number("val_temperature", o.val_temperature(), [&](double v) { o.val_temperature(v); });
  number("vid_init_variance", o.vid_init_variance(), [&](double v) { o.vid_init_variance(v); });
  number("vid_eps", o.vid_eps(), [&](double v) { o.vid_eps(v); });
  i = o.hyper_every();
  read_key(section, "hyper_every", file, used, i, "an integer");
  o.hyper_every(i);
  i = o.e1();
  read_key(section, "e1", file, used, i, "an integer");
  o.e1(i);
  i = o.e2();
  read_key(section, "e2", file, used, i, "an integer");
  o.e2(i);
  i = o.vid_hidden();
  read_key(section, "vid_hidden", file, used, i, "an integer");
  o.vid_hidden(i);
  flag = o.random_beta();
  read_key(section, "random_beta", file, used, flag, "true or false");
  o.random_beta(flag);
  flag = o.vid_weight_decay();
  read_key(section, "vid_weight_decay", file, used, flag, "true or false");
  o.vid_weight_decay(flag);
  used.insert("sensitivity");
  if (auto sub = section["sensitivity"]; sub && !sub.IsNull()) {
    check(sub.IsMap(), "{}: key 'multilayer.sensitivity': expected a mapping (methods, beta, "
          "temperature)", file);
    std::set<std::string> sub_used;
    auto read = [&](const char* key, auto& out, const char* expected) {
      read_key(sub, key, file, sub_used, out, expected, "multilayer.sensitivity.");
    };
    read("methods", c.sensitivity.methods, "a list of method names");
    read("beta", c.sensitivity.beta, "a list of numbers");
    read("temperature", c.sensitivity.temperature, "a list of numbers");
    for (const auto& kv : sub) {
      const auto key = kv.first.as<std::string>();
      check(sub_used.count(key), "{}: unknown key 'multilayer.sensitivity.{}' (known keys here: {})",
            file, key, fmt::join(sub_used, ", "));
    }
    try {
      c.sensitivity.validate();
    } catch (const Error& e) {
      fail("{}: multilayer.sensitivity: {}", file, e.what());
    }
  }
  for (const auto& kv : section) {
    const auto key = kv.first.as<std::string>();
    if (!used.count(key))
      fail("{}: unknown key 'multilayer.{}' (known keys here: {})", file, key, fmt::join(used, ", "));
  }

  if (c.methods.empty())
    c.methods = {"none", "hinton", "pairwise", "all-pairs-random", "all-pairs-fd"};
  const auto names = multilayer_method_names();
  for (const auto& m : c.methods) {
    check(std::find(names.begin(), names.end(), m) != names.end(),
          "{}: multilayer.methods: unknown method '{}': expected one of {}", file, m,
          fmt::join(names, ", "));
    try {
      MultiLayerOptions per = o;
      per.method(m);
      per.validate();
    } catch (const Error& e) {
      fail("{}: multilayer: {}", file, e.what());
    }
  }
  return c;
}

// yaml-cpp throws its own exceptions where a node has another shape than the reader expects (a
// mapping used as a key, a list where a name belongs); they become errors naming the file.
bool has_multilayer_section(const fs::path& path) {
  // Anything unreadable is left to the config reader, whose errors say what is wrong.
  if (!fs::is_regular_file(path)) return false;
  try {
    const YAML::Node top = YAML::LoadFile(path.string());
    return top.IsMap() && top["multilayer"].IsDefined() && !top["multilayer"].IsNull();
  } catch (const std::exception&) {
    return false;
  }
}

MultiLayerConfig load_multilayer_config(const fs::path& path) {
  try {
    return read_multilayer_config(path);
  } catch (const YAML::Exception& e) {
    fail("config {}: {} (a key or value of the wrong kind)", path.string(), e.what());
  }
}

}  // namespace metadistill
