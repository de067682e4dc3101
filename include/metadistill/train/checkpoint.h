#pragma once
/// Model files: a zoo model with the spec that rebuilds it, written atomically.
#include <filesystem>
#include <string>

#include <torch/torch.h>

#include "metadistill/models/classifier.h"

namespace metadistill {

/// A model read back from disk.
struct LoadedModel {
  Classifier model;
  ModelSpec spec;
};

/// Serializes the spec and the module (parameters and buffers) into `archive`.
void write_model(torch::serialize::OutputArchive& archive, const ClassifierImpl& model,
                 const ModelSpec& spec);
/// Reads a model written by `write_model`; `where` names the file in error messages.
LoadedModel read_model(torch::serialize::InputArchive& archive, const std::string& where);

/// Writes a model file atomically (temp file + rename).
void save_model_file(const ClassifierImpl& model, const ModelSpec& spec,
                     const std::filesystem::path& path);
/// Reads a model file; throws `Error` naming the file when it is missing, truncated or not a
/// metadistill model.
LoadedModel load_model_file(const std::filesystem::path& path, torch::Device device = torch::kCPU);

/// Serializes an archive to bytes / writes it atomically.
std::string archive_bytes(torch::serialize::OutputArchive& archive);
void save_archive_atomic(torch::serialize::OutputArchive& archive,
                         const std::filesystem::path& path);
/// Opens an archive file; throws `Error` naming it when missing or corrupt.
void load_archive(torch::serialize::InputArchive& archive, const std::filesystem::path& path,
                  torch::Device device = torch::kCPU);

}  // namespace metadistill
