#include "checkpoint.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace minilm {
namespace {

const char* const kStep = "minilm.step";
const char* const kRng = "minilm.rng_state";
const char* const kSettings = "minilm.settings";
const char* const kHistory = "minilm.history";
const char* const kOptimizer = "minilm.optimizer";

std::filesystem::path optimizer_path(const std::filesystem::path& model_path, int64_t step) {
  std::string stem = model_path.filename().string();
  if (stem.ends_with(".safetensors")) stem.resize(stem.size() - std::string(".safetensors").size());
  return model_path.parent_path() / (stem + ".optim-" + std::to_string(step) + ".safetensors");
}

}  // namespace

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  optimi::nn::SafetensorsFile file = optimi::nn::load_safetensors(path);
  Checkpoint c;
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("checkpoint " + path.string() + ": " + what);
  };
  try {
    c.arch = ModelConfig::from_metadata(file.metadata);
    c.arch.validate();
  } catch (const std::exception& e) {
    fail(e.what());
  }
  // The declared architecture must be the one the tensors have, so that a file cannot make us
  // build a model larger than itself. Each layer has 12 tensors: bound the loop below first.
  if (c.arch.layers > int64_t(file.tensors.size()))
    fail("__metadata__ declares " + std::to_string(c.arch.layers) + " layers but the file holds " +
         std::to_string(file.tensors.size()) + " tensors");
  const auto expected = c.arch.state_shapes();
  for (const auto& [name, shape] : expected) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) fail("tensor '" + name + "' is missing");
    if (it->second.shape() != shape)
      fail("tensor '" + name + "' has shape " + optimi::shape_str(it->second.shape()) +
           " but the architecture in __metadata__ needs " + optimi::shape_str(shape));
  }
  for (const auto& [name, t] : file.tensors)
    if (!expected.contains(name)) fail("unexpected tensor '" + name + "'");
  c.weights = std::move(file.tensors);
  const auto& m = file.metadata;
  if (!m.contains(kStep)) return c;
  try {
    RunState run;
    run.step = std::stoll(m.at(kStep));
    if (run.step < 0) throw std::out_of_range("negative step " + m.at(kStep));
    run.rng_state = std::stoull(m.at(kRng));
    run.settings = nlohmann::json::parse(m.at(kSettings)).get<std::map<std::string, std::string>>();
    run.history = History::from_json(nlohmann::json::parse(m.at(kHistory)));
    // A bare name of our own pattern: the writer later deletes the file it names.
    const std::string& name = m.at(kOptimizer);
    if (std::filesystem::path(name).filename().string() != name ||
        name.find(".optim-") == std::string::npos || !name.ends_with(".safetensors"))
      throw std::out_of_range("bad optimizer file name '" + name + "'");
    run.optimizer_file = path.parent_path() / name;
    c.run = std::move(run);
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path.string() + ": malformed run state (" + e.what() +
                             ")");
  }
  return c;
}

CheckpointWriter::CheckpointWriter(std::filesystem::path path) : path_(std::move(path)) {
  // A checkpoint already there (the one being resumed, or an older run's) is about to be
  // replaced; its optimizer file goes with it. One that cannot be read is simply overwritten.
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return;
  try {
    if (auto run = read_checkpoint(path_).run) superseded_ = run->optimizer_file;
  } catch (const std::exception&) {
  }
}

void CheckpointWriter::write(const MiniLM& model, const optimi::optim::Optimizer& optimizer,
                             const RunState& run) {
  const std::filesystem::path optim_file = optimizer_path(path_, run.step);
  optimizer.save(optim_file);
  std::map<std::string, std::string> metadata = model.config().to_metadata();
  metadata[kStep] = std::to_string(run.step);
  metadata[kRng] = std::to_string(run.rng_state);
  metadata[kSettings] = nlohmann::json(run.settings).dump();
  metadata[kHistory] = run.history.to_json().dump();
  metadata[kOptimizer] = optim_file.filename().string();
  optimi::nn::save_state_dict(model, path_, metadata);
  std::error_code ec;
  if (!superseded_.empty() && !std::filesystem::equivalent(superseded_, optim_file, ec))
    std::filesystem::remove(superseded_, ec);
  superseded_ = optim_file;
}

}  // namespace minilm
