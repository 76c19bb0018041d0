#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <vector>

#include <optimi/optimi.hpp>

#include "checkpoint.hpp"
#include "cli.hpp"
#include "data.hpp"
#include "history.hpp"
#include "model.hpp"
#include "report.hpp"

// The training loop, set up the way the optimi documentation recommends: weight-decay parameter
// groups (the token embeddings excluded), fully decoupled weight decay, warmup then cosine,
// gradient release and optimizer accumulation when asked for.
namespace minilm {

// The optimizer a run with `config` trains `model` with (a resumed run's file must fit it).
std::unique_ptr<optimi::optim::Optimizer> make_training_optimizer(const Config& config,
                                                                  MiniLM& model);

class Trainer {
 public:
  enum class Outcome { kFinished, kStopped, kInterrupted };

  // `resume` (optional) supplies optimizer state, step, RNG state and history; the model must
  // already hold its weights. Throws for an optimizer file that does not match.
  Trainer(const Config& config, MiniLM& model, const Dataset& data, optimi::Device device,
          const Checkpoint* resume);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains up to --steps (or --stop-after), validating and checkpointing every --eval-every
  // steps. Ctrl-C ends the run after the current step, with a checkpoint when checkpointing.
  Outcome run(Progress& progress);

  int64_t step() const { return step_; }
  const History& history() const { return history_; }
  const optimi::optim::Optimizer& optimizer() const { return *optimizer_; }
  // Set when a checkpoint was written by this run.
  std::optional<int64_t> last_checkpoint_step() const { return last_checkpoint_; }
  MemoryReport memory() const;

 private:
  double train_step();  // one optimizer step; returns the mean micro-batch loss
  void checkpoint();

  const Config& config_;
  MiniLM& model_;
  const Dataset& data_;
  optimi::Device device_;
  std::unique_ptr<optimi::optim::Optimizer> optimizer_;
  std::unique_ptr<optimi::optim::WarmupCosine> scheduler_;
  std::optional<CheckpointWriter> writer_;
  std::vector<optimi::RemovableHandle> grad_probes_;
  int64_t step_ = 0;
  History history_;
  std::optional<int64_t> last_checkpoint_;
  int64_t peak_grad_bytes_ = 0;
};

}  // namespace minilm
