#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kernels/optimizer_launch.hpp"
#include "kernels/optimizers.hpp"
#include "optim/src/validation.hpp"
#include "optimi/tensor.hpp"

// What each optimizer contributes to the Optimizer base: its options, state buffers and its update,
// which computes the step's scalars on the host and runs a fused kernel over the parameters.
namespace optimi::optim::detail {

// The options every optimi optimizer has.
struct CommonOptions {
  double lr;
  double weight_decay;
  bool decouple_lr;
  std::optional<double> max_lr;  // resolved to lr by the base when decouple_lr
  std::optional<bool> kahan_sum;
  bool gradient_release;
};

template <class Options>
CommonOptions common_options(const Options& o) {
  return {o.lr, o.weight_decay, o.decouple_lr, o.max_lr, o.kahan_sum, o.gradient_release};
}

struct GroupState {
  std::vector<Tensor> params;
  std::vector<size_t> indices;  // the params' positions in the optimizer's flat list
  double lr;
  double weight_decay;
  std::optional<bool> kahan_sum;  // unset becomes true once a low-precision parameter is seen
  int64_t step = 0;               // whole-model step counter
};

struct ParamState {
  bool initialized = false;
  std::vector<Tensor> buffers;  // in Algorithm::buffers() order
  Tensor kahan_comp;            // defined when Kahan summation is active for the parameter
  int64_t step = 0;             // gradient-release step counter
};

// One parameter of a step: the parameter, its gradient and its state.
struct ParamStep {
  Tensor param;
  Tensor grad;
  ParamState* state;
};

// One update of some parameters of a group, all at the same step: the whole group's parameters
// that have gradients on a whole-model step, one parameter under gradient release.
struct StepBatch {
  const GroupState& group;
  std::vector<ParamStep> params;
  int64_t t;    // the step counter after this call's increment (0 without counters)
  bool update;  // false: optimizer accumulation, the state absorbs the gradient only
};

// An option beyond the common ones, by optimi's group-key name, as checkpoints store it.
struct Hyperparameter {
  std::string name;
  std::variant<double*, bool*, int*, std::optional<double>*> value;
};

class Algorithm {
 public:
  explicit Algorithm(CommonOptions common) : common(common) {}
  virtual ~Algorithm() = default;

  virtual std::string_view name() const = 0;
  // Names of the per-parameter state buffers, in the order the kernels index them.
  virtual std::vector<std::string> buffers() const = 0;
  // Whether the optimizer debiases with step counters (all but SGD and Lion).
  virtual bool counts_steps() const { return true; }
  // Fills a new state's buffers (p.state->buffers, sized to buffers()); zeros by default.
  virtual void init_buffers(const GroupState& g, const ParamStep& p) const;
  virtual void update(const StepBatch& b) const = 0;
  // The optimizer's own options, for checkpoints; the common ones are added by the base.
  virtual std::vector<Hyperparameter> hyperparameters() = 0;
  // optimi's checks of the options (spec 1.1): the optimizer's own, then the common ones. Run at
  // construction and again after a checkpoint load has replaced them.
  void validate() const;

  CommonOptions common;

 protected:
  // lr·λ, or (lr/max_lr)·λ with fully decoupled weight decay (spec 1.4).
  double decay_rate(double lr, double weight_decay) const;
  // Weight decay of SGD, Adam(W), RAdam, Ranger and Lion: a factor 1 - rate when decoupled
  // (skipped when exactly 0, as optimi does) or else an L2 coefficient.
  kernels::WeightDecay weight_decay(const GroupState& g, bool decoupled) const;
  virtual void check_options() const {}
};

// debias_beta(β, t) = (β^t - β) / (β^t - 1): optimi folds bias correction into the betas, so its
// state holds debiased averages (spec 0.1).
double debias_beta(double beta, int64_t t);
kernels::AdamMoments adam_moments(double beta1, double beta2, int64_t t);
// RAdam's rectification term r_t, defined once ρ_t > 5 (spec 2.6).
std::optional<double> rectification(double beta2, int64_t t);

// Calls f with RAdam's step functor for step t: rectified (kernels::RAdamStep<true>) once ρ_t > 5,
// an un-adapted momentum step before.
template <class F>
void with_radam_step(double beta1, double beta2, double eps, double lr, int64_t t,
                     kernels::WeightDecay decay, F&& f) {
  kernels::AdamMoments moments = adam_moments(beta1, beta2, t);
  if (std::optional<double> r = rectification(beta2, t)) {
    f(kernels::RAdamStep<true>{moments, static_cast<float>(eps), static_cast<float>(-lr * *r),
                               decay});
  } else {
    f(kernels::RAdamStep<false>{moments, static_cast<float>(eps), static_cast<float>(-lr), decay});
  }
}

// What a backend needs to run functors over some parameters, with gradients made contiguous where
// they were not.
struct KernelLaunch {
  std::vector<kernels::KernelArgs> tensors;
  Device device;
  std::vector<Tensor> contiguous_grads;
};

// Checks that gradients and state match their parameters and packs their pointers.
KernelLaunch prepare_launch(const StepBatch& b);
// One parameter with explicit state buffers (in kernel order), for state initialisation.
KernelLaunch prepare_launch(const Tensor& param, const Tensor& grad,
                            const std::vector<Tensor>& state);

// Runs ops[k] over every element of parameter k on the parameters' device, as one multi-tensor
// launch. Returns the per-parameter sums of a reducing op.
template <class Op>
std::vector<double> launch(std::span<const Op> ops, const KernelLaunch& k) {
  return kernels::launch(k.device, ops, std::span<const kernels::KernelArgs>(k.tensors));
}

// The same op for every parameter.
template <class Op>
std::vector<double> launch(const Op& op, const KernelLaunch& k) {
  std::vector<Op> ops(k.tensors.size(), op);
  return launch(std::span<const Op>(ops), k);
}

template <class Op>
void launch(const Op& op, const StepBatch& b) {
  launch(op, prepare_launch(b));
}

}  // namespace optimi::optim::detail
