#pragma once
/// Run configuration: one YAML file per experiment (configs/), with strict checking (an unknown
/// key, a wrong type or a value out of range names the key and the file).
///
/// The loss and its metaparameters may stand in one `loss:` section: `kind: hinton` (the
/// default) with `lambda1`, `temperature` (as under `method:`), `kd_scale` and `step_norm` (as
/// under `student.train:`); or `kind: vid`, a multi-layer config (experiment/multilayer.h) with
/// the multi-layer loss keys. A setting given both there and at its other place is refused.
#include <cstdint>
#include <filesystem>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/data/dataset.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/models/classifier.h"
#include "metadistill/search/search.h"
#include "metadistill/train/trainer.h"

namespace metadistill {

/// Which data and how to split it.
struct DataConfig {
  /// "synthetic", "fmnist", "cifar10", "cifar10-reduced" or "folder" (any image folder
  /// ROOT/<split>/<class>/<image>.{jpg,jpeg,png}, see data/image_folder.h).
  std::string name = "synthetic";
  /// Synthetic: "reference" or "paper".
  std::string variant = "reference";
  /// Folder of the data files; empty = the data set's default.
  std::string root;
  /// CIFAR-10 file format: "binary" (data_batch_*.bin) or "folder" (ROOT/<split>/<class>/*.jpg|png).
  std::string format = "binary";
  /// Validation split size; -1 = the data set's default (paper's split).
  int64_t val_size = -1;
  uint64_t split_seed = 0;
  /// Use only the first N training / test samples (0 = all): quick runs and tests.
  int64_t limit_train = 0, limit_test = 0;
  /// Image folders ("folder", and CIFAR-10 with format "folder"): files that cannot become
  /// samples "fail" (an error naming the file) or "skip" (a warning); images of another size
  /// "reject" (a bad image) or "resize".
  std::string on_bad_image = "fail";
  std::string on_size_mismatch = "reject";
  /// "folder": class names (label i = classes[i]; empty = the class folders sorted by name),
  /// image size [height, width] (empty = the first image's), channels (3 RGB or 1 grey) and the
  /// split folders.
  std::vector<std::string> classes;
  std::vector<int64_t> image_size;
  int64_t channels = 3;
  std::string train_split = "train", test_split = "test";
  /// Per-channel normalization x = (p/255 − mean)/std; empty = the data set's default (CIFAR-10:
  /// its published statistics; "folder": computed from D_train).
  std::vector<double> mean, std;
  /// Synthetic: validate the metaparameters on the test rows, as the authors did.
  bool val_is_test = true;
  /// Synthetic: numpy seed of the draw (42 = the authors' data) and the validation rows.
  uint32_t synthetic_seed = 42;
  int64_t synthetic_val_rows = 15;
  /// "table" (data/table.h): the file of rows (.csv with a header row, or a 2-D .npy), the label
  /// column (a header name; for .npy a column index), an optional file of test rows (else
  /// `test_size` rows of `file` are drawn with `split_seed`; -1 = a fifth).
  std::string file, label, test_file;
  int64_t test_size = -1;
};

/// A model and how to train it.
struct ModelTrainConfig {
  std::string model;
  TrainerOptions trainer;
};

/// Equal-budget comparison: every run of every method gets the same wall-clock budget.
struct BudgetConfig {
  /// Seconds per run; 0 = no budget (every method trains its full schedule).
  double seconds = 0;
};

/// A named variation of a method in an experiment's method list (`variants:` in a config): a
/// registered method with its own settings, λ and student learning rate — a fixed-λ grid, a
/// baseline at another learning rate, one method at several μ — each a row of the same table,
/// run on the same seeds (same initialization and data order).
struct MethodVariant {
  /// The registered method it varies.
  std::string method;
  /// Merged over `method.settings` (the variant's keys win).
  nlohmann::json settings = nlohmann::json::object();
  /// λ1 and T: `fixed`'s λ, the initial λ of a learning method; NaN = the config's.
  double lambda1 = std::nan(""), temperature = std::nan("");
  /// The student's learning rate; NaN = the config's.
  double lr = std::nan("");
  /// The student's `kd_scale`; empty = the config's.
  std::string kd_scale;
  /// Keys of `student.train` the variant overrides (`variants.NAME.train`, for example
  /// `{step_norm: ce}`), as YAML text read over the config's with the same checks; empty = none.
  std::string train;
};

/// Everything one `distill` run needs.
struct Config {
  DataConfig data;
  ModelTrainConfig teacher;
  /// Teacher file; empty = <out>/teacher.pt... resolved by `resolve_paths`.
  std::string teacher_file;
  /// A teacher from elsewhere instead of a zoo model (train/external_teacher.h): a file saved by
  /// `torch.jit.save` (`teacher.torchscript`), or precomputed logits (`teacher.logits`, .npy or
  /// .pt). Empty = the zoo teacher of `teacher.model` in `teacher_file`.
  std::string teacher_torchscript, teacher_logits;
  ModelTrainConfig student;
  MethodOptions method;
  /// Methods an experiment compares (empty = all registered that apply).
  std::vector<std::string> methods;
  /// Runs per method in an experiment (seeds first_seed .. first_seed + runs − 1).
  int64_t runs = 1;
  /// First seed of an experiment's runs (a selection seed outside the paired ones, say 100).
  int64_t first_seed = 0;
  /// The method (or variant) an experiment's paired differences are taken against.
  std::string reference = "none";
  /// Named method variants an experiment's `methods` may list besides registered methods.
  std::map<std::string, MethodVariant> variants;
  /// Settings of the search methods of an experiment.
  /// The search baselines as experiment methods (`tpe`, `random-search`; see
  /// experiment/search_run.h): one run = one search of `trials` trials, then a retrain of the
  /// best. The sampler is the method's; `search:` sets the rest.
  SearchSettings search;
  /// Equal-budget mode of an experiment.
  BudgetConfig budget;
  /// Seed of one distill run (model init, batch order, method draws).
  uint64_t seed = 0;
  /// Intra-op threads (<= 0: all cores) and device.
  int threads = 0;
  std::string device = "cpu";
  /// Output folder of the run or experiment; cache folder for teacher outputs.
  std::string out = "runs/synthetic";
  std::string cache;
  /// Name of the preset, shown in tables ("paper", "quick", ...).
  std::string preset = "default";
  /// Where the config came from (file path or "built-in default").
  std::string source = "built-in default";

  /// Fills empty paths from `out`: teacher file <out>/teacher.pt, cache <out>/cache.
  void resolve_paths();
  /// Checks values across sections; throws `Error` naming the key and `source`.
  void validate() const;
  /// The resolved config as JSON (written next to results).
  nlohmann::json to_json() const;
  /// The config a run of `name` (a registered method or a variant) trains with; `base` receives
  /// the registered method's name. Throws `Error` for a variant of an unknown method.
  Config for_method(const std::string& name, std::string& base) const;
};

/// The default: the synthetic experiment of the paper (reference variant).
Config default_config();
/// Reads a YAML config on top of the defaults; throws `Error` naming the file and key for an
/// unknown key, a wrong type or an invalid value.
Config load_config(const std::filesystem::path& path);

}  // namespace metadistill
