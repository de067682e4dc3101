#include "metadistill/train/checkpoint.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

void write_model(torch::serialize::OutputArchive& archive, const ClassifierImpl& model,
                 const ModelSpec& spec) {
  nlohmann::json j = {{"format", "metadistill-model"},
                      {"version", 1},
                      {"name", spec.name},
                      {"num_classes", spec.num_classes},
                      {"input_shape", spec.input_shape}};
  archive.write("spec", c10::IValue(j.dump()));
  torch::serialize::OutputArchive sub;
  model.save(sub);
  archive.write("model", sub);
}

LoadedModel read_model(torch::serialize::InputArchive& archive, const std::string& where) {
  LoadedModel out;
  try {
    c10::IValue v;
    archive.read("spec", v);
    auto j = nlohmann::json::parse(v.toStringRef());
    check(j.value("format", "") == "metadistill-model", "{}: not a metadistill model file", where);
    out.spec = ModelSpec(j.at("name").get<std::string>(), j.at("num_classes").get<int64_t>(),
                         j.at("input_shape").get<std::vector<int64_t>>());
    out.model = make_model(out.spec);
    torch::serialize::InputArchive sub;
    archive.read("model", sub);
    out.model->load(sub);
  } catch (const c10::Error& e) {
    fail("{}: corrupt or incompatible model ({})", where, std::string(e.what_without_backtrace()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt model spec ({})", where, e.what());
  }
  return out;
}

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream ss;
  archive.save_to(ss);
  return ss.str();
}

void save_archive_atomic(torch::serialize::OutputArchive& archive, const fs::path& path) {
  write_file_atomic(path, archive_bytes(archive));
}

void load_archive(torch::serialize::InputArchive& archive, const fs::path& path,
                  torch::Device device) {
  check(fs::exists(path), "cannot open {}: no such file", path.string());
  try {
    archive.load_from(path.string(), device);
  } catch (const c10::Error& e) {
    fail("{}: not a readable metadistill file, truncated or corrupt ({})", path.string(),
         std::string(e.what_without_backtrace()).substr(0, 200));
  }
}

void save_model_file(const ClassifierImpl& model, const ModelSpec& spec, const fs::path& path) {
  torch::serialize::OutputArchive archive;
  write_model(archive, model, spec);
  save_archive_atomic(archive, path);
}

LoadedModel load_model_file(const fs::path& path, torch::Device device) {
  torch::serialize::InputArchive archive;
  load_archive(archive, path, device);
  auto out = read_model(archive, path.string());
  out.model->to(device);
  return out;
}

}  // namespace metadistill
