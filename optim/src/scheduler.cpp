#include "optimi/optim/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "optim/src/validation.hpp"

namespace optimi::optim {
namespace {

void check_steps(const char* op, const char* what, int64_t steps, int64_t minimum) {
  if (steps < minimum) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must be at least " +
                                std::to_string(minimum) + ", got " + std::to_string(steps));
  }
}

void check_start_factor(const char* op, const char* key, double factor) {
  detail::check_fraction("warmup start factor", key, factor, std::string(" in ") + op);
}

// eta_min is an lr: the optimizers' own check applies.
void check_eta_min(const char* op, double eta_min) {
  detail::check_rate("minimum learning rate", "eta_min", eta_min, std::string(" in ") + op);
}

double linear(double base_lr, double start_factor, int64_t step, int64_t steps) {
  if (step >= steps) return base_lr;
  double progress = static_cast<double>(step) / static_cast<double>(steps);
  return base_lr * (start_factor + (1.0 - start_factor) * progress);
}

double cosine(double base_lr, double eta_min, int64_t step, int64_t steps) {
  double progress = static_cast<double>(std::min(step, steps)) / static_cast<double>(steps);
  return eta_min + (base_lr - eta_min) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
}

}  // namespace

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::step() {
  set_last_step(last_step_ + 1);
}

void LRScheduler::set_last_step(int64_t step) {
  if (step < 0) {
    throw std::invalid_argument("LRScheduler::set_last_step: step must be >= 0, got " +
                                std::to_string(step));
  }
  last_step_ = step;
  apply();
}

void LRScheduler::apply() {
  for (size_t g = 0; g < base_lrs_.size(); ++g) {
    optimizer_.set_lr(g, lr_at(base_lrs_[g], last_step_));
  }
}

LinearWarmup::LinearWarmup(Optimizer& optimizer, int64_t warmup_steps, double start_factor)
    : LRScheduler(optimizer), warmup_steps_(warmup_steps), start_factor_(start_factor) {
  check_steps("LinearWarmup", "warmup_steps", warmup_steps, 0);
  check_start_factor("LinearWarmup", "start_factor", start_factor);
  apply();
}

double LinearWarmup::lr_at(double base_lr, int64_t step) const {
  return linear(base_lr, start_factor_, step, warmup_steps_);
}

CosineAnnealing::CosineAnnealing(Optimizer& optimizer, int64_t total_steps, double eta_min)
    : LRScheduler(optimizer), total_steps_(total_steps), eta_min_(eta_min) {
  check_steps("CosineAnnealing", "total_steps", total_steps, 1);
  check_eta_min("CosineAnnealing", eta_min);
  apply();
}

double CosineAnnealing::lr_at(double base_lr, int64_t step) const {
  return cosine(base_lr, eta_min_, step, total_steps_);
}

WarmupCosine::WarmupCosine(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                           double eta_min, double warmup_start_factor)
    : LRScheduler(optimizer),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      eta_min_(eta_min),
      warmup_start_factor_(warmup_start_factor) {
  check_steps("WarmupCosine", "warmup_steps", warmup_steps, 0);
  check_steps("WarmupCosine", "total_steps", total_steps, warmup_steps + 1);
  check_eta_min("WarmupCosine", eta_min);
  check_start_factor("WarmupCosine", "warmup_start_factor", warmup_start_factor);
  apply();
}

double WarmupCosine::lr_at(double base_lr, int64_t step) const {
  if (step < warmup_steps_) return linear(base_lr, warmup_start_factor_, step, warmup_steps_);
  return cosine(base_lr, eta_min_, step - warmup_steps_, total_steps_ - warmup_steps_);
}

}  // namespace optimi::optim
