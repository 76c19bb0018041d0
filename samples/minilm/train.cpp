#include "train.hpp"

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <stdexcept>

#include "inference.hpp"
#include "optimizers.hpp"

namespace minilm {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

// The first Ctrl-C asks the loop to stop at the next step boundary; the handler then steps
// aside, so a second one ends the process at once (checkpoint writes are atomic either way).
extern "C" void on_interrupt(int) {
  g_interrupted = 1;
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

std::unique_ptr<optimi::optim::Optimizer> make_training_optimizer(const Config& config,
                                                                  MiniLM& model) {
  return make_optimizer(
      {config.optimizer, config.lr, config.weight_decay, config.decouple_lr, config.kahan,
       config.gradient_release},
      optimi::utils::param_groups_weight_decay(model, config.weight_decay, {"tok_embeddings"}));
}

Trainer::Trainer(const Config& config, MiniLM& model, const Dataset& data, optimi::Device device,
                 const Checkpoint* resume)
    : config_(config), model_(model), data_(data), device_(device) {
  optimizer_ = make_training_optimizer(config, model);
  // Built from the constructor's lrs, before the optimizer's saved state is loaded.
  scheduler_ = std::make_unique<optimi::optim::WarmupCosine>(
      *optimizer_, config.warmup, std::max(config.steps, config.warmup + 1), config.lr / 10,
      /*warmup_start_factor=*/0.1);

  // Measures the gradient bytes alive as each parameter's gradient completes. Registered
  // before gradient release's hooks, so each probe sees its parameter's gradient still there.
  for (optimi::Tensor& p : model.parameters()) {
    grad_probes_.push_back(p.register_post_accumulate_grad_hook([this](optimi::Tensor&) {
      int64_t live = 0;
      for (const optimi::Tensor& q : model_.parameters())
        if (q.grad().defined()) live += q.grad().nbytes();
      peak_grad_bytes_ = std::max(peak_grad_bytes_, live);
    }));
  }
  if (config.gradient_release)
    optimi::utils::prepare_for_gradient_release(model, *optimizer_,
                                                /*ignore_existing_hooks=*/true);

  if (resume && resume->run) {
    try {
      optimizer_->load(resume->run->optimizer_file);
    } catch (const std::exception& e) {
      throw std::runtime_error("--resume " + config.resume + ": " + e.what());
    }
    step_ = resume->run->step;
    scheduler_->set_last_step(step_);
    optimi::default_generator().set_state(resume->run->rng_state);
    history_ = resume->run->history;
  }
  if (!config.checkpoint.empty()) writer_.emplace(config.checkpoint);
}

Trainer::~Trainer() {
  if (config_.gradient_release) optimi::utils::remove_gradient_release(model_);
  for (auto& h : grad_probes_) h.remove();
}

double Trainer::train_step() {
  const bool release = config_.gradient_release;
  const int64_t n = config_.accumulation;
  double total = 0;
  for (int64_t micro = 0; micro < n; ++micro) {
    // Under gradient release, optimizer accumulation folds every micro-batch but the last into
    // the optimizer state; the last one steps. Without it, gradients add up in .grad.
    if (release) optimizer_->set_optimizer_accumulation(micro + 1 < n);
    Batch b =
        random_batch(data_.train, config_.batch, config_.seq, optimi::default_generator(), device_);
    optimi::Tensor loss = model_.loss(b.inputs, b.targets);
    total += loss.item();
    (release || n == 1 ? loss : loss / double(n)).backward();
  }
  if (!release) {
    optimizer_->step();
    optimizer_->zero_grad();
  }
  return total / double(n);
}

Trainer::Outcome Trainer::run(Progress& progress) {
  using clock = std::chrono::steady_clock;
  const int64_t target =
      config_.stop_after > 0 ? std::min(config_.stop_after, config_.steps) : config_.steps;
  const int64_t first = step_;
  const double tokens_per_step = double(config_.batch * config_.seq * config_.accumulation);
  g_interrupted = 0;
  optimi::reset_peak_memory_stats(device_);
  auto previous = std::signal(SIGINT, on_interrupt);
  const auto start = clock::now();
  double train_seconds = 0;
  Outcome outcome = Outcome::kFinished;
  while (step_ < target) {
    const auto t0 = clock::now();
    const double lr = optimizer_->lr(optimizer_->num_param_groups() - 1);
    const double loss = train_step();
    scheduler_->step();
    ++step_;
    train_seconds += std::chrono::duration<double>(clock::now() - t0).count();
    if (!std::isfinite(loss))
      throw std::runtime_error("the training loss is " + std::to_string(loss) + " at step " +
                               std::to_string(step_) + ": try a lower --lr");
    history_.train.push_back({step_, loss, lr});

    const double done = double(step_ - first);
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    progress.update(step_, loss, lr, done * tokens_per_step / train_seconds,
                    elapsed / done * double(target - step_));

    if (step_ % config_.eval_every == 0 || step_ == config_.steps) {
      const double val = evaluate(model_, data_.val, config_.batch, device_);
      history_.val.push_back({step_, val});
      std::string line = "step " + std::to_string(step_) + "/" + std::to_string(config_.steps) +
                         "  validation loss " + format_fixed(val, 4);
      if (data_.floor) line += "  (" + format_fixed(val - *data_.floor, 4) + " above the floor)";
      progress.message(line);
      if (writer_) checkpoint();
    }
    if (g_interrupted) {
      outcome = Outcome::kInterrupted;
      break;
    }
  }
  if (outcome == Outcome::kFinished && step_ < config_.steps) outcome = Outcome::kStopped;
  if (outcome != Outcome::kFinished && writer_ && step_ > first && last_checkpoint_ != step_)
    checkpoint();
  std::signal(SIGINT, previous);
  progress.finish();
  return outcome;
}

void Trainer::checkpoint() {
  RunState run;
  run.step = step_;
  run.rng_state = optimi::default_generator().state();
  run.settings = run_settings(config_);
  run.history = history_;
  writer_->write(model_, *optimizer_, run);
  last_checkpoint_ = step_;
}

MemoryReport Trainer::memory() const {
  MemoryReport m;
  for (const optimi::Tensor& p : model_.parameters()) {
    m.num_parameters += p.numel();
    m.parameters += p.nbytes();
  }
  m.gradients_peak = peak_grad_bytes_;
  // The optimizer's state is whatever its checkpoint holds; its file names each buffer.
  const std::filesystem::path tmp = std::filesystem::temp_directory_path() /
                                    ("minilm-state-" + std::to_string(getpid()) + ".safetensors");
  optimizer_->save(tmp);
  optimi::nn::SafetensorsFile state = optimi::nn::load_safetensors(tmp);
  std::filesystem::remove(tmp);
  for (const auto& [name, t] : state.tensors)
    (name.ends_with(".kahan_comp") ? m.kahan : m.optimizer_state) += t.nbytes();
  m.peak_all = optimi::memory_stats(device_).peak_bytes;
  return m;
}

}  // namespace minilm
