// `metadistill init ROOT`: a commented starter config for an image folder, written from what the
// folder holds (splits, classes, image size, grey or colour) and the defaults a folder gets
// (experiment/config.h). The output is a YAML file that `load_config` reads back unchanged.
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "commands.h"
#include "common.h"
#include "metadistill/data/image_codec.h"
#include "metadistill/data/image_folder.h"
#include "metadistill/experiment/config.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill::cli {

namespace {

namespace fs = std::filesystem;

struct InitOptions {
  std::string data = "folder";
  std::string root;
  std::string train_split = "train";
  std::string test_split = "test";
};

std::string yaml_string(const std::string& s) {
  // Double-quoted YAML scalar: safe for any path.
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

std::string counts_text(const ImageFolderListing& l) {
  const auto counts = l.class_counts();
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i)
    s += fmt::format("{}{}: {}", i ? ", " : "", l.classes[i], counts[i]);
  return s;
}

std::string trainer_yaml(const TrainerOptions& t) {
  return fmt::format(
      "{{epochs: {}, batch_size: {}, lr: {}, optimizer: {}, momentum: {}, weight_decay: {},\n"
      "          lr_schedule: {}, eval_every: {}, checkpoint_every: {}, augmentation: {}}}",
      t.epochs, t.batch_size, t.lr, t.optimizer, t.momentum, t.weight_decay, t.lr_schedule,
      t.eval_every, t.checkpoint_every, t.augmentation);
}

int run(const InitOptions& o) {
  const fs::path root = fs::absolute(o.root).lexically_normal();
  // The splits: listing opens no image and names a missing folder or an empty class.
  const ImageFolderOptions listing_options(root);
  const ImageFolderListing train = list_image_folder(listing_options, o.train_split);
  const ImageFolderListing test = list_image_folder(listing_options, o.test_split);
  check(train.classes == test.classes,
        "image folder {}: the classes of '{}' ({}) and '{}' ({}) differ", root.string(),
        o.train_split, fmt::join(train.classes, ", "), o.test_split, fmt::join(test.classes, ", "));

  // The defaults a folder gets, channels detected from the files, through the config reader
  // itself, so that the file written here says what a config naming only the folder would do.
  const fs::path probe =
      fs::temp_directory_path() / fmt::format("metadistill-init-{}.yaml", ::getpid());
  write_file_atomic(probe, fmt::format("data: {{name: folder, root: {}, train_split: {}, "
                                       "test_split: {}}}\n",
                                       yaml_string(root.string()), yaml_string(o.train_split),
                                       yaml_string(o.test_split)));
  Config c;
  try {
    c = load_config(probe);
  } catch (...) {
    fs::remove(probe);
    throw;
  }
  fs::remove(probe);

  const torch::Tensor first = read_image(train.folder / train.files.front().relative, c.data.channels);
  const int64_t n_train = static_cast<int64_t>(train.files.size());
  const int64_t val_size = std::max<int64_t>(1, n_train / 10);

  std::ostringstream y;
  y << fmt::format("# metadistill config for the image folder {}\n", root.string());
  y << "# written by `metadistill init`; every key below may be changed or left out (a left-out\n"
       "# key takes the default a folder gets, shown here).\n";
  y << fmt::format("#   {}: {} images in {} classes ({})\n", o.train_split, n_train,
                   train.classes.size(), counts_text(train));
  y << fmt::format("#   {}: {} images ({})\n", o.test_split, test.files.size(), counts_text(test));
  y << fmt::format("#   first image {}: {}x{}, {}\n", train.files.front().relative, first.size(1),
                   first.size(2), c.data.channels == 1 ? "grey" : "colour");
  y << fmt::format("out: {}                 # results, teacher, caches\n", yaml_string(c.out));
  y << "threads: 1                  # intra-op threads per run (leave out for all cores)\n";
  y << "data:\n  name: folder\n";
  y << fmt::format("  root: {}\n", yaml_string(root.string()));
  y << fmt::format("  train_split: {}\n  test_split: {}\n", yaml_string(o.train_split),
                   yaml_string(o.test_split));
  y << fmt::format("  channels: {}                 # 1 grey, 3 colour (detected from the files)\n",
                   c.data.channels);
  y << fmt::format("  image_size: [{}, {}]          # every image must have it ...\n",
                   first.size(1), first.size(2));
  y << "  on_size_mismatch: reject    # ... or: resize (bilinear, antialiased)\n";
  y << "  on_bad_image: fail          # or: skip (a warning names each file left out)\n";
  y << fmt::format(
      "  val_size: {}                # rows of '{}' held out to learn the metaparameters on\n",
      val_size, o.train_split);
  y << "teacher:\n";
  y << fmt::format("  model: {}               # any image >= 8x8: conv-tiny, resnet8/20/10/18, "
                   "preact-resnet18\n",
                   c.teacher.model);
  y << "  train: " << trainer_yaml(c.teacher.trainer) << "\n";
  y << "student:\n";
  y << fmt::format("  model: {}                  # the paper's student; conv-very-tiny, conv-tiny, "
                   "...\n",
                   c.student.model);
  y << "  train: " << trainer_yaml(c.student.trainer) << "\n";
  y << "method:\n";
  y << fmt::format("  name: {}                # fixed λ1 = 0.5, T = 1; gradient, proposed and the "
                   "online\n"
                   "                             # hypergradient learn them on the validation rows\n",
                   c.method.method);
  y << fmt::format("  settings: {{val_temperature: {}, gamma: {}}}\n",
                   c.method.extra.at("val_temperature").get<double>(),
                   c.method.extra.at("gamma").get<double>());
  std::cout << y.str();
  return 0;
}

}  // namespace

void setup_init(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  auto* sub = app.add_subcommand(
      "init", "print a commented starter config for an image folder (metadistill init ROOT > my.yaml)");
  sub->add_option("root", o->root, "the folder: ROOT/<split>/<class>/<image>.jpg|jpeg|png")
      ->required();
  sub->add_option("--data", o->data,
                  "kind of data: folder (the shipped configs/ cover synthetic, fmnist, cifar10)")->check(CLI::IsMember({"folder"}));
  sub->add_option("--train-split", o->train_split, "training split folder (default train)");
  sub->add_option("--test-split", o->test_split, "test split folder (default test)");
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
