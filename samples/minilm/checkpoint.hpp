#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <optimi/optimi.hpp>

#include "history.hpp"
#include "model.hpp"

// Checkpoints: the model as safetensors named like the PyTorch reference, with the architecture
// in __metadata__ (so any safetensors reader, or --resume, rebuilds the model from the file
// alone), and beside it the optimizer's own safetensors file. The model file's metadata also
// carries what --resume needs to continue the run exactly: step, RNG state, settings, history.
namespace minilm {

struct RunState {
  int64_t step = 0;
  uint64_t rng_state = 0;
  std::map<std::string, std::string> settings;  // cli.hpp's run_settings
  History history;
  std::filesystem::path optimizer_file;  // absolute once read
};

struct Checkpoint {
  ModelConfig arch;
  std::map<std::string, optimi::Tensor> weights;
  std::optional<RunState> run;  // absent in weights-only files (e.g. from PyTorch)
};

// Throws std::runtime_error naming the file for unreadable, corrupt or incomplete checkpoints.
Checkpoint read_checkpoint(const std::filesystem::path& path);

// Writes checkpoints to one path. Each write saves the optimizer to a new file named after the
// step, then atomically replaces the model file that refers to it, and only then deletes the
// optimizer file the replaced checkpoint referred to: killed at any moment, `path` is a complete
// checkpoint, old or new.
class CheckpointWriter {
 public:
  explicit CheckpointWriter(std::filesystem::path path);
  void write(const MiniLM& model, const optimi::optim::Optimizer& optimizer, const RunState& run);

 private:
  std::filesystem::path path_;
  std::filesystem::path superseded_;
};

}  // namespace minilm
