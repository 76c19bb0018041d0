#pragma once

#include <cstdint>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// Learning-rate schedules that drive any optimizer through lr()/set_lr(), so they work under
// gradient release too. As in PyTorch, construction records each group's current lr as its base
// and sets the lr of step 0; call step() after each optimizer step to move to the next step's lr.
// last_step() is the whole state: set_last_step() on a scheduler built the same way resumes the
// schedule (build it from the optimizer's constructor lrs, i.e. before Optimizer::load).
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;

  void step();
  int64_t last_step() const { return last_step_; }
  void set_last_step(int64_t step);
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  // The lr a group with this base lr has at `step`.
  virtual double lr_at(double base_lr, int64_t step) const = 0;

 protected:
  // Derived constructors call this once their parameters are set.
  void apply();

 private:
  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_step_ = 0;
};

// Linear warmup from start_factor x base to base over warmup_steps, then constant.
class LinearWarmup : public LRScheduler {
 public:
  LinearWarmup(Optimizer& optimizer, int64_t warmup_steps, double start_factor = 0.0);
  double lr_at(double base_lr, int64_t step) const override;

 private:
  int64_t warmup_steps_;
  double start_factor_;
};

// Cosine annealing from base to eta_min over total_steps, then eta_min (PyTorch's closed form).
class CosineAnnealing : public LRScheduler {
 public:
  CosineAnnealing(Optimizer& optimizer, int64_t total_steps, double eta_min = 0.0);
  double lr_at(double base_lr, int64_t step) const override;

 private:
  int64_t total_steps_;
  double eta_min_;
};

// Linear warmup over warmup_steps, then cosine annealing to eta_min at total_steps.
class WarmupCosine : public LRScheduler {
 public:
  WarmupCosine(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
               double eta_min = 0.0, double warmup_start_factor = 0.0);
  double lr_at(double base_lr, int64_t step) const override;

 private:
  int64_t warmup_steps_;
  int64_t total_steps_;
  double eta_min_;
  double warmup_start_factor_;
};

}  // namespace optimi::optim
