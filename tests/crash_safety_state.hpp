#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optimi/optimi.hpp>
#include <string>

// The training state that tests/crash_writer.cpp checkpoints and test_crash_safety.cpp checks
// against: deterministic, so the test can recompute the files of any iteration.
namespace crash_safety {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";

// About 1 MiB of model and 2 MiB of optimizer state, so a checkpoint takes long enough to write
// that kills land inside the writes.
class State {
 public:
  State() {
    optimi::manual_seed(0);
    model_ =
        std::make_shared<optimi::nn::Sequential>(std::make_shared<optimi::nn::Linear>(256, 512),
                                                 std::make_shared<optimi::nn::Linear>(512, 256));
    optimizer_ = std::make_unique<optimi::optim::AdamW>(model_->parameters(),
                                                        optimi::optim::AdamWOptions{.lr = 1e-3});
  }

  // One training step with gradients fixed by the iteration number.
  void advance(int64_t iteration) {
    for (optimi::Tensor p : model_->parameters()) {
      p.set_grad(optimi::Tensor::full(p.shape(), 1e-3 * double(iteration % 17 + 1)));
    }
    optimizer_->step();
    iteration_ = iteration;
  }

  // The model file carries its iteration, so a reader can tell which checkpoint it got.
  void save(const std::filesystem::path& dir) const {
    optimi::nn::save_state_dict(*model_, dir / kModelFile,
                                {{"iteration", std::to_string(iteration_)}});
    optimizer_->save(dir / kOptimizerFile);
  }

  optimi::nn::Module& model() { return *model_; }
  optimi::optim::Optimizer& optimizer() { return *optimizer_; }

 private:
  std::shared_ptr<optimi::nn::Sequential> model_;
  std::unique_ptr<optimi::optim::AdamW> optimizer_;
  int64_t iteration_ = 0;
};

}  // namespace crash_safety
