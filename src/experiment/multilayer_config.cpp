// The `multilayer:` section of a config; the other sections go through `load_config` unchanged.
#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "config_section.h"
#include "metadistill/experiment/multilayer.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace fs = std::filesystem;

static MultiLayerConfig read_multilayer_config(const fs::path& path) {
  const std::string file = path.string();
  MultiLayerConfig c;
  // Every other section is an ordinary config's (load_config checks the file and leaves the
  // `multilayer:` section to this reader).
  c.base = load_config(path);
  const YAML::Node root = YAML::LoadFile(file);
  const bool vid_loss = detail::loss_kind(root, file) == "vid";
  const YAML::Node node = root["multilayer"];
  check((node && node.IsMap()) || (vid_loss && !node),
        "{}: a multilayer config needs a 'multilayer:' mapping (methods, teacher_taps, "
        "student_taps, ...) or a 'loss:' section of kind vid", file);
  detail::Section section(node, "multilayer", file);
  // The loss keys may stand in `loss:` (kind vid) instead; the same key in both is refused.
  detail::Section loss(vid_loss ? root["loss"] : YAML::Node(), "loss", file);
  MultiLayerOptions& o = c.options;
  // Reads `key` into the option through its TORCH_ARG accessor pair, from `loss:` for the loss
  // keys given there.
  auto option = [&](const char* key, auto current, auto setter) {
    auto value = current;
    const auto& keys = detail::vid_loss_keys();
    if (vid_loss && detail::given(root, {"loss", key}) &&
        std::find(keys.begin(), keys.end(), key) != keys.end()) {
      check(!detail::given(root, {"multilayer", key}),
            "{}: loss.{} and multilayer.{} are the same setting given twice; keep one", file, key,
            key);
      loss.get(key, value);
    } else {
      section.get(key, value);
    }
    setter(value);
  };
  section.get("methods", c.methods);
  option("teacher_taps", o.teacher_taps(), [&](auto v) { o.teacher_taps(v); });
  option("student_taps", o.student_taps(), [&](auto v) { o.student_taps(v); });
  option("beta", o.beta(), [&](auto v) { o.beta(v); });
  option("hinton_lambda1", o.hinton_lambda1(), [&](auto v) { o.hinton_lambda1(v); });
  option("temperature", o.temperature(), [&](auto v) { o.temperature(v); });
  option("meta_lr", o.meta_lr(), [&](auto v) { o.meta_lr(v); });
  option("beta_lr", o.beta_lr(), [&](auto v) { o.beta_lr(v); });
  option("beta_min", o.beta_min(), [&](auto v) { o.beta_min(v); });
  option("beta_max", o.beta_max(), [&](auto v) { o.beta_max(v); });
  option("meta_optimizer", o.meta_optimizer(), [&](auto v) { o.meta_optimizer(v); });
  option("fd_scale", o.fd_scale(), [&](auto v) { o.fd_scale(v); });
  option("online_mu", o.online_mu(), [&](auto v) { o.online_mu(v); });
  option("e1", o.e1(), [&](auto v) { o.e1(v); });
  option("e2", o.e2(), [&](auto v) { o.e2(v); });
  option("val_temperature", o.val_temperature(), [&](auto v) { o.val_temperature(v); });
  option("vid_init_variance", o.vid_init_variance(), [&](auto v) { o.vid_init_variance(v); });
  option("vid_eps", o.vid_eps(), [&](auto v) { o.vid_eps(v); });
  option("hyper_every", o.hyper_every(), [&](auto v) { o.hyper_every(v); });
  option("vid_hidden", o.vid_hidden(), [&](auto v) { o.vid_hidden(v); });
  option("random_beta", o.random_beta(), [&](auto v) { o.random_beta(v); });
  option("vid_weight_decay", o.vid_weight_decay(), [&](auto v) { o.vid_weight_decay(v); });
  if (section.raw("sensitivity").IsDefined() && !section.raw("sensitivity").IsNull()) {
    detail::Section sub = section.child("sensitivity");
    sub.get("methods", c.sensitivity.methods);
    sub.get("beta", c.sensitivity.beta);
    sub.get("temperature", c.sensitivity.temperature);
    sub.finish();
    try {
      c.sensitivity.validate();
    } catch (const Error& e) {
      fail("{}: multilayer.sensitivity: {}", file, e.what());
    }
  }
  section.finish();

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
    return top.IsMap() && (detail::given(top, {"multilayer"}) ||
                           (detail::given(top, {"loss", "kind"}) &&
                            top["loss"]["kind"].as<std::string>() == "vid"));
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
