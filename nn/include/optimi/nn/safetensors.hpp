#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "optimi/nn/module.hpp"
#include "optimi/tensor.hpp"

// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// then the raw little-endian tensor data. Dtypes: F64, F32, F16, BF16, I64, BOOL.
namespace optimi::nn {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // on the CPU
  std::map<std::string, std::string> metadata;
};

// Writes atomically: a temporary file in the same directory is written, flushed to disk and
// renamed over `path`, so a reader sees the old file or the new one, never a partial one.
// Throws std::invalid_argument for tensors the format cannot hold and std::runtime_error, naming
// the file, when writing fails.
void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Validates the whole file before trusting it; any malformed, truncated or inconsistent input
// throws std::runtime_error naming the file and the problem.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

// module.state_dict() to a file, and back through Module::load_state_dict.
void save_state_dict(const Module& module, const std::filesystem::path& path,
                     const std::map<std::string, std::string>& metadata = {});
void load_state_dict_file(Module& module, const std::filesystem::path& path, bool strict = true);

}  // namespace optimi::nn
