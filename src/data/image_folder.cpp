#include "metadistill/data/image_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <sstream>
#include <tuple>

#include "metadistill/data/image_codec.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

// Bumped whenever decoding changes what a cached file holds, so old caches are not used.
constexpr const char* kCacheFormat = "metadistill-image-folder-v1";
// At most this many warnings are printed one per line; the rest are counted.
constexpr size_t kMaxWarningLines = 20;
// Images per chunk when accumulating statistics, to bound the float64 copy.
constexpr int64_t kStatisticsChunk = 1024;

bool is_hidden(const std::string& name) { return !name.empty() && name[0] == '.'; }

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

std::string to_string(BadImagePolicy p) { return p == BadImagePolicy::kSkip ? "skip" : "fail"; }
std::string to_string(SizeMismatchPolicy p) {
  return p == SizeMismatchPolicy::kResize ? "resize" : "reject";
}

// Names of the entries of `folder` that are not hidden, sorted; filesystem errors (permissions)
// become an `Error` naming the folder.
std::vector<std::string> entry_names(const fs::path& folder) {
  std::vector<std::string> names;
  try {
    for (const auto& entry : fs::directory_iterator(folder)) {
      std::string name = entry.path().filename().string();
      if (!is_hidden(name)) names.push_back(std::move(name));
    }
  } catch (const fs::filesystem_error& e) {
    fail("image folder {}: cannot list: {}", folder.string(), e.code().message());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// One stat() for type, size and modification time; false when the entry cannot be stat'ed.
bool stat_entry(const fs::path& path, struct stat* st) { return ::stat(path.c_str(), st) == 0; }

// A problem with one entry: an `Error` under kFail, a recorded skip under kSkip.
void bad_entry(const ImageFolderOptions& options, ImageFolderListing& listing,
               const fs::path& path, const std::string& reason) {
  if (options.bad_image == BadImagePolicy::kFail)
    fail("image folder {}: {}: {} (the skip policy leaves bad entries out with a warning)",
         listing.folder.string(), path.string(), reason);
  listing.skipped.push_back(fmt::format("{}: {}", path.string(), reason));
}

// Prints warnings, at most kMaxWarningLines of them.
void print_warnings(const std::vector<std::string>& warnings) {
  for (size_t i = 0; i < warnings.size() && i < kMaxWarningLines; ++i)
    std::cerr << "warning: " << warnings[i] << "\n";
  if (warnings.size() > kMaxWarningLines)
    std::cerr << fmt::format("warning: ... and {} more\n", warnings.size() - kMaxWarningLines);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Text <-> uint8 tensor, to keep the warnings in the cache archive.
torch::Tensor text_tensor(const std::vector<std::string>& lines) {
  std::string joined;
  for (const auto& l : lines) joined += l + '\n';
  auto t = torch::empty({static_cast<int64_t>(joined.size())}, torch::kUInt8);
  if (!joined.empty()) std::memcpy(t.data_ptr(), joined.data(), joined.size());
  return t;
}
std::vector<std::string> text_lines(const torch::Tensor& t) {
  std::string joined(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()),
                     static_cast<size_t>(t.numel()));
  std::vector<std::string> lines;
  std::istringstream in(joined);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

fs::path cache_file(const ImageFolderOptions& options, const ImageFolderListing& listing,
                    const std::string& split) {
  std::string tag = split;
  for (auto& ch : tag)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
  return options.cache_dir /
         fmt::format("images-{}-{}.pt", tag, listing.cache_key(options));
}

void save_cache(const fs::path& path, const ImageFolderSplit& split, const torch::Tensor& kept) {
  torch::serialize::OutputArchive archive;
  archive.write("images", split.images);
  archive.write("labels", split.labels);
  archive.write("kept", kept);
  archive.write("resized", torch::tensor({split.resized}, torch::kInt64));
  archive.write("warnings", text_tensor(split.warnings));
  std::ostringstream out;
  archive.save_to(out);
  write_file_atomic(path, out.str());
}

// Reads a cache file written by `save_cache` for `listing`; throws `Error` when it is unreadable
// or does not fit the listing.
ImageFolderSplit load_cache(const fs::path& path, const ImageFolderListing& listing,
                            const ImageFolderOptions& options) {
  torch::serialize::InputArchive archive;
  torch::Tensor images, labels, kept, resized, warnings;
  try {
    archive.load_from(path.string());
    archive.read("images", images);
    archive.read("labels", labels);
    archive.read("kept", kept);
    archive.read("resized", resized);
    archive.read("warnings", warnings);
  } catch (const c10::Error& e) {
    fail("{}: not an image cache written by metadistill ({})", path.string(),
         std::string(e.what_without_backtrace()));
  }
  const int64_t n = images.dim() == 4 ? images.size(0) : -1;
  const int64_t files = static_cast<int64_t>(listing.files.size());
  check(n >= 1 && images.scalar_type() == torch::kUInt8 && images.size(1) == options.channels &&
            (options.height == 0 || images.size(2) == options.height) &&
            (options.width == 0 || images.size(3) == options.width) &&
            labels.dim() == 1 && labels.size(0) == n && kept.dim() == 1 && kept.size(0) == n &&
            kept.scalar_type() == torch::kInt64 && resized.numel() == 1 &&
            kept.min().item<int64_t>() >= 0 && kept.max().item<int64_t>() < files,
        "{}: image cache does not fit the {} listed files", path.string(), files);
  ImageFolderSplit split;
  split.classes = listing.classes;
  split.images = images;
  split.labels = labels.to(torch::kInt64);
  auto k = kept.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) split.files.push_back(listing.files[k[i]].relative);
  split.resized = resized.item<int64_t>();
  split.warnings = text_lines(warnings);
  split.from_cache = true;
  return split;
}

// x[c] = (p[c] / 255 - mean[c]) / stddev[c] on uint8 [N, C, H, W].
torch::Tensor normalize(const torch::Tensor& images, const std::vector<double>& mean,
                        const std::vector<double>& stddev) {
  const int64_t c = images.size(1);
  auto m = torch::tensor(mean, torch::kFloat64).to(torch::kFloat32).view({1, c, 1, 1});
  auto s = torch::tensor(stddev, torch::kFloat64).to(torch::kFloat32).view({1, c, 1, 1});
  return images.to(torch::kFloat32).div_(255.0).sub_(m).div_(s).contiguous();
}

}  // namespace

BadImagePolicy parse_bad_image_policy(const std::string& name) {
  if (name == "fail") return BadImagePolicy::kFail;
  if (name == "skip") return BadImagePolicy::kSkip;
  fail("bad-image policy '{}': expected fail or skip", name);
}

SizeMismatchPolicy parse_size_mismatch_policy(const std::string& name) {
  if (name == "reject") return SizeMismatchPolicy::kReject;
  if (name == "resize") return SizeMismatchPolicy::kResize;
  fail("size-mismatch policy '{}': expected reject or resize", name);
}

std::vector<int64_t> ImageFolderListing::class_counts() const {
  std::vector<int64_t> counts(classes.size(), 0);
  for (const auto& f : files) ++counts[static_cast<size_t>(f.label)];
  return counts;
}

std::string ImageFolderListing::cache_key(const ImageFolderOptions& options) const {
  std::error_code ec;
  fs::path absolute = fs::weakly_canonical(folder, ec);
  if (ec) absolute = fs::absolute(folder);
  std::string text = fmt::format("{}\n{}\n{}x{}x{} size:{} bad:{}\n", kCacheFormat,
                                 absolute.string(), options.channels, options.height,
                                 options.width, to_string(options.size_mismatch),
                                 to_string(options.bad_image));
  for (const auto& c : classes) text += "class " + c + "\n";
  for (const auto& f : files)
    text += fmt::format("{}\t{}\t{}\t{}\n", f.relative, f.label, f.bytes, f.mtime_ns);
  for (const auto& s : skipped) text += "skipped " + s + "\n";
  // Two 64-bit hashes with different seeds: a 128-bit key, so collisions are not a concern.
  return hash_string(text) + hash_bytes(text.data(), text.size(), 0x84222325cbf29ce4ULL);
}

ImageFolderListing list_image_folder(const ImageFolderOptions& options, const std::string& split) {
  check(!split.empty(), "image folder {}: empty split name", options.root.string());
  check(fs::is_directory(options.root),
        "image folder {}: no such folder (expected ROOT/<split>/<class>/<image>.jpg|jpeg|png)",
        options.root.string());
  ImageFolderListing listing;
  listing.folder = options.root / split;
  if (!fs::is_directory(listing.folder)) {
    auto present = entry_names(options.root);
    fail("image folder {}: split folder {} is missing (found: {}; expected "
         "ROOT/{}/<class>/<image>.jpg|jpeg|png)",
         options.root.string(), listing.folder.string(),
         present.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(present, ", ")),
         split);
  }

  std::vector<std::string> folders;
  for (const auto& name : entry_names(listing.folder)) {
    if (fs::is_directory(listing.folder / name))
      folders.push_back(name);
    else
      bad_entry(options, listing, listing.folder / name,
                "not a class folder (a split folder holds one folder per class)");
  }
  listing.classes = options.classes.empty() ? folders : options.classes;
  check(!listing.classes.empty(), "image folder {}: no class folders",
        listing.folder.string());
  if (!options.classes.empty()) {
    for (const auto& f : folders)
      if (std::find(listing.classes.begin(), listing.classes.end(), f) == listing.classes.end())
        bad_entry(options, listing, listing.folder / f,
                  fmt::format("class folder not among the {} configured classes ({})",
                              listing.classes.size(), fmt::join(listing.classes, ", ")));
  }

  for (size_t label = 0; label < listing.classes.size(); ++label) {
    const std::string& cls = listing.classes[label];
    const fs::path dir = listing.folder / cls;
    if (!fs::is_directory(dir)) {
      bad_entry(options, listing, dir, fmt::format("class folder missing (class {})", label));
      continue;
    }
    size_t found = 0;
    for (const auto& name : entry_names(dir)) {
      const fs::path path = dir / name;
      struct stat st;
      if (!stat_entry(path, &st)) {
        bad_entry(options, listing, path, std::strerror(errno));
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        bad_entry(options, listing, path, "not a regular file");
        continue;
      }
      if (!has_image_extension(path)) {
        bad_entry(options, listing, path,
                  "not an image file (expected the extension .jpg, .jpeg or .png)");
        continue;
      }
      ImageFile f;
      f.relative = cls + "/" + name;
      f.label = static_cast<int64_t>(label);
      f.bytes = static_cast<uint64_t>(st.st_size);
      f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      listing.files.push_back(std::move(f));
      ++found;
    }
    if (found == 0)
      bad_entry(options, listing, dir, "empty class folder (no .jpg, .jpeg or .png file)");
  }
  return listing;
}

ImageFolderSplit decode_image_folder(const ImageFolderListing& listing,
                                     const ImageFolderOptions& options) {
  check(options.channels == 1 || options.channels == 3,
        "image folder {}: channels must be 1 or 3, got {}", listing.folder.string(),
        options.channels);
  check(options.height >= 0 && options.width >= 0,
        "image folder {}: image size {}x{} must be >= 0 (0 = the first image's)",
        listing.folder.string(), options.height, options.width);
  const int64_t n = static_cast<int64_t>(listing.files.size());
  check(n > 0, "image folder {}: no images", listing.folder.string());
  const int64_t channels = options.channels;
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::pair<int64_t, int64_t>> original(static_cast<size_t>(n), {0, 0});
  auto path_of = [&](int64_t i) { return listing.folder / listing.files[i].relative; };
  auto first_failure = [&](int64_t i) {
    if (options.bad_image == BadImagePolicy::kFail) throw Error(errors[i]);
  };

  // Without a configured size, the first image that decodes sets it (sequentially, so that the
  // choice does not depend on thread timing).
  int64_t height = options.height, width = options.width, start = 0;
  torch::Tensor first;
  if (height == 0 || width == 0) {
    for (; start < n && !first.defined(); ++start) {
      try {
        first = read_image(path_of(start), channels);  // [C, h, w]
      } catch (const Error& e) {
        errors[start] = e.what();
        first_failure(start);
      }
    }
    check(first.defined(), "image folder {}: none of the {} images can be decoded ({})",
          listing.folder.string(), n, errors[0]);
    height = first.size(1);
    width = first.size(2);
    original[start - 1] = {height, width};
  }

  auto images = torch::zeros({n, channels, height, width}, torch::kUInt8);  // [N, C, H, W]
  const int64_t pixels = channels * height * width;
  if (first.defined())
    std::memcpy(images.data_ptr<uint8_t>() + (start - 1) * pixels, first.data_ptr(), pixels);
  // Each file is independent; errors are recorded per file and reported in listing order after
  // the loop, so the message does not depend on thread timing either.
  at::parallel_for(start, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        torch::Tensor img = read_image(path_of(i), channels);  // [C, h, w]
        original[i] = {img.size(1), img.size(2)};
        if (img.size(1) != height || img.size(2) != width) {
          if (options.size_mismatch == SizeMismatchPolicy::kReject) {
            errors[i] = fmt::format(
                "image {}: {}x{} pixels, expected {}x{} like the other images (or allow "
                "resizing)",
                path_of(i).string(), img.size(1), img.size(2), height, width);
            continue;
          }
          img = resize_image(img, height, width);
        }
        std::memcpy(images.data_ptr<uint8_t>() + i * pixels, img.contiguous().data_ptr(),
                    pixels);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  });

  ImageFolderSplit split;
  split.classes = listing.classes;
  for (const auto& s : listing.skipped) split.warnings.push_back("skipped " + s);
  std::vector<int64_t> kept, labels;
  int64_t bad = 0, first_bad = -1;
  int64_t resized = 0, first_resized = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      ++bad;
      if (first_bad < 0) first_bad = i;
      continue;
    }
    if (original[i].first != height || original[i].second != width) {
      ++resized;
      if (first_resized < 0) first_resized = i;
    }
    kept.push_back(i);
  }
  if (bad > 0 && options.bad_image == BadImagePolicy::kFail) {
    if (bad == 1) throw Error(errors[first_bad]);
    fail("{} (and {} more bad images in {})", errors[first_bad], bad - 1,
         listing.folder.string());
  }
  for (int64_t i = 0; i < n; ++i)
    if (!errors[i].empty()) split.warnings.push_back("skipped " + errors[i]);
  check(!kept.empty(), "image folder {}: no image left of {} ({})", listing.folder.string(), n,
        first_bad >= 0 ? errors[first_bad] : std::string());
  if (resized > 0)
    split.warnings.push_back(fmt::format(
        "image folder {}: resized {} of {} images to {}x{} (the first, {}, was {}x{})",
        listing.folder.string(), resized, n, height, width, listing.files[first_resized].relative,
        original[first_resized].first, original[first_resized].second));
  std::vector<int64_t> per_class(listing.classes.size(), 0);
  for (int64_t i : kept) {
    labels.push_back(listing.files[i].label);
    split.files.push_back(listing.files[i].relative);
    ++per_class[static_cast<size_t>(listing.files[i].label)];
  }
  for (size_t c = 0; c < per_class.size(); ++c)
    if (per_class[c] == 0)
      split.warnings.push_back(fmt::format("image folder {}: class {} ('{}') has no images",
                                           listing.folder.string(), c, listing.classes[c]));

  const auto kept_ids = torch::tensor(kept, torch::kInt64);
  split.images = bad > 0 ? images.index_select(0, kept_ids) : images;
  split.labels = torch::tensor(labels, torch::kInt64);
  split.resized = resized;
  return split;
}

ImageFolderSplit read_image_folder(const ImageFolderOptions& options, const std::string& split) {
  const auto start = std::chrono::steady_clock::now();
  const ImageFolderListing listing = list_image_folder(options, split);
  auto report = [&](const ImageFolderSplit& s, const std::string& how) {
    print_warnings(s.warnings);
    if (options.verbose)
      std::cerr << fmt::format("image folder {}: {} images, {} classes, {}x{}, {} in {:.1f} s\n",
                               listing.folder.string(), s.images.size(0), s.classes.size(),
                               s.images.size(2), s.images.size(3), how, seconds_since(start));
  };
  if (options.cache_dir.empty()) {
    ImageFolderSplit s = decode_image_folder(listing, options);
    report(s, "decoded");
    return s;
  }
  const fs::path path = cache_file(options, listing, split);
  if (fs::exists(path)) {
    try {
      ImageFolderSplit s = load_cache(path, listing, options);
      report(s, "read from the cache " + path.string());
      return s;
    } catch (const Error& e) {
      std::cerr << "warning: ignoring unreadable image cache: " << e.what() << "\n";
    }
  }
  ImageFolderSplit s = decode_image_folder(listing, options);
  // Map the kept rows back to listing positions for the cache (files are unique and sorted
  // within the listing, so a lookup by name is exact).
  std::vector<int64_t> kept;
  kept.reserve(s.files.size());
  size_t j = 0;
  for (const auto& name : s.files) {
    while (listing.files[j].relative != name) ++j;
    kept.push_back(static_cast<int64_t>(j++));
  }
  try {
    save_cache(path, s, torch::tensor(kept, torch::kInt64));
  } catch (const std::exception& e) {
    // A cache that cannot be written costs time on the next run, not correctness.
    std::cerr << "warning: image cache not written: " << e.what() << "\n";
  }
  report(s, "decoded and cached in " + path.string());
  return s;
}

torch::Tensor class_interleaved_order(const torch::Tensor& labels) {
  check(labels.dim() == 1, "class_interleaved_order: expected labels [N], got shape {}",
        labels.sizes());
  auto y = labels.to(torch::kInt64).contiguous();
  const int64_t n = y.size(0);
  const int64_t* lab = y.data_ptr<int64_t>();
  std::vector<int64_t> rank(static_cast<size_t>(n));
  std::vector<int64_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    check(lab[i] >= 0, "class_interleaved_order: negative label {} at {}", lab[i], i);
    if (static_cast<size_t>(lab[i]) >= seen.size()) seen.resize(static_cast<size_t>(lab[i]) + 1, 0);
    rank[i] = seen[static_cast<size_t>(lab[i])]++;
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return std::tie(rank[a], lab[a]) < std::tie(rank[b], lab[b]);
  });
  return torch::tensor(order, torch::kInt64);
}

std::pair<std::vector<double>, std::vector<double>> channel_statistics(const torch::Tensor& images) {
  check(images.dim() == 4 && images.size(0) > 0,
        "channel_statistics: expected images [N, C, H, W] with N >= 1, got shape {}",
        images.sizes());
  const int64_t n = images.size(0), c = images.size(1);
  auto sum = torch::zeros({c}, torch::kFloat64), sum_sq = torch::zeros({c}, torch::kFloat64);
  for (int64_t s = 0; s < n; s += kStatisticsChunk) {
    auto x = images.slice(0, s, std::min(n, s + kStatisticsChunk)).to(torch::kFloat64).div_(255.0);
    sum += x.sum({0, 2, 3});
    sum_sq += x.pow(2).sum({0, 2, 3});
  }
  const double count = static_cast<double>(n * images.size(2) * images.size(3));
  auto mean = sum / count;
  auto var = (sum_sq / count - mean.pow(2)).clamp_min(0);
  auto stddev = var.sqrt();
  std::vector<double> m(mean.data_ptr<double>(), mean.data_ptr<double>() + c);
  std::vector<double> sd(stddev.data_ptr<double>(), stddev.data_ptr<double>() + c);
  return {m, sd};
}

DataBundle load_image_folder(const ImageFolderDataOptions& options) {
  const std::string where = options.folder.root.string();
  check(options.pool_size >= 0, "image folder {}: pool_size must be >= 0 (0 = all), got {}",
        where, options.pool_size);
  check(options.limit_train >= 0 && options.limit_test >= 0,
        "image folder {}: limit_train and limit_test must be >= 0 (0 = all), got {} and {}", where,
        options.limit_train, options.limit_test);
  const size_t channels = static_cast<size_t>(options.folder.channels);
  check(options.mean.size() == options.stddev.size() &&
            (options.mean.empty() || options.mean.size() == channels),
        "image folder {}: mean and stddev need {} values each (one per channel) or none "
        "(computed), got {} and {}",
        where, channels, options.mean.size(), options.stddev.size());
  for (size_t c = 0; c < options.stddev.size(); ++c)
    check(options.stddev[c] > 0, "image folder {}: stddev[{}] must be > 0, got {}", where, c,
          options.stddev[c]);

  ImageFolderOptions folder = options.folder;
  ImageFolderSplit train = read_image_folder(folder, options.train_split);
  // The test split is read with the training split's classes and image size.
  folder.classes = train.classes;
  folder.height = train.images.size(2);
  folder.width = train.images.size(3);
  ImageFolderSplit test = read_image_folder(folder, options.test_split);

  const torch::Tensor train_order = class_interleaved_order(train.labels);
  int64_t n_pool = train_order.size(0);
  if (options.pool_size > 0) {
    check(options.pool_size <= n_pool,
          "image folder {}: pool_size {} must lie in [1, {}] (the {} split holds {} images)",
          where, options.pool_size, n_pool, options.train_split, n_pool);
    n_pool = options.pool_size;
  }
  if (options.limit_train > 0) n_pool = std::min(n_pool, options.limit_train);
  const torch::Tensor test_order = class_interleaved_order(test.labels);
  int64_t n_test = test_order.size(0);
  if (options.limit_test > 0) n_test = std::min(n_test, options.limit_test);

  const int64_t n_val = options.val_size >= 0 ? options.val_size : n_pool / 10;
  check(n_val >= 0 && n_val < n_pool,
        "image folder {}: val_size {} must lie in [0, {}) (the pool holds {} images; pool_size "
        "{}, limit_train {})",
        where, n_val, n_pool, n_pool, options.pool_size, options.limit_train);

  const torch::Tensor pool_ids = train_order.slice(0, 0, n_pool);
  const torch::Tensor test_ids = test_order.slice(0, 0, n_test);
  const torch::Tensor pool_images = train.images.index_select(0, pool_ids);  // [N, C, H, W] uint8
  const torch::Tensor test_images = test.images.index_select(0, test_ids);

  DataBundle bundle;
  bundle.name = options.name;
  bundle.num_classes = static_cast<int64_t>(train.classes.size());
  std::tie(bundle.train_idx, bundle.val_idx) = random_split(n_pool, n_val, options.split_seed);
  std::vector<double> mean = options.mean, stddev = options.stddev;
  if (mean.empty()) {
    // From D_train only: the validation and test images stay unseen.
    std::tie(mean, stddev) = channel_statistics(pool_images.index_select(0, bundle.train_idx));
    for (auto& s : stddev) s = std::max(s, 1e-6);  // a constant channel must not divide by 0
  }
  bundle.pool.x = normalize(pool_images, mean, stddev);  // [N, C, H, W] float32
  bundle.pool.y = train.labels.index_select(0, pool_ids).contiguous();
  bundle.test.x = normalize(test_images, mean, stddev);
  bundle.test.y = test.labels.index_select(0, test_ids).contiguous();
  bundle.teacher_train = bundle.pool.select(bundle.train_idx);
  bundle.finalize();
  return bundle;
}

const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> classes = {"airplane", "automobile", "bird",  "cat",
                                                   "deer",     "dog",        "frog",  "horse",
                                                   "ship",     "truck"};
  return classes;
}

ImageFolderDataOptions cifar10_folder_options(const CifarOptions& options) {
  ImageFolderOptions folder(options.root);
  folder.with_classes(cifar10_classes()).with_size(32, 32).with_channels(3);
  ImageFolderDataOptions data(folder);
  data.named(options.reduced ? "cifar10-reduced" : "cifar10")
      .pool_rows(options.reduced ? options.reduced_size : 0)
      .val_rows(options.reduced ? options.reduced_val_size : options.val_size)
      .seeded(options.split_seed)
      .normalized({options.mean.begin(), options.mean.end()},
                  {options.stddev.begin(), options.stddev.end()})
      .train_limit(options.limit_train)
      .test_limit(options.limit_test);
  return data;
}

DataBundle load_cifar10_folder(const CifarOptions& options, const fs::path& cache_dir,
                               bool compute_statistics) {
  ImageFolderDataOptions data = cifar10_folder_options(options);
  data.folder.cached_in(cache_dir);
  if (compute_statistics) data.normalized({}, {});
  return load_image_folder(data);
}

}  // namespace metadistill
