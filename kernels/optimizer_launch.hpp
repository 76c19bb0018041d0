#pragma once

#include <cmath>
#include <span>
#include <vector>

#include "kernels/optimizers.hpp"
#include "optimi/device.hpp"

// Device-neutral entry points of the optimizer kernels: the host code of optim/ computes each
// step's scalars and hands the functors of kernels/optimizers.hpp to the parameters' backend.
namespace optimi::kernels {

// Runs ops[k] over every element of tensors[k], all on `device`, as one multi-tensor launch.
// Returns, per tensor, the sum of a reducing op's per-element values (StableAdamW's first pass;
// on CUDA this waits for the device), 0 for the others.
template <class Op>
std::vector<double> launch(Device device, std::span<const Op> ops,
                           std::span<const KernelArgs> tensors);

// StableAdamW's per-tensor learning rate (spec 2.8): lr clipped by the RMS of g / sqrt(max(v̂,
// eps²)), and decoupled weight decay with that lr. Host and device share this arithmetic, so the
// CUDA step computes it without returning the RMS to the host.
struct StableAdamWClip {
  double lr;
  double weight_decay;
  bool decouple_lr;
  double max_lr;  // read with decouple_lr only
  float eps;

  // The second pass's functor for a tensor of `numel` elements whose first pass summed to `sum`.
  OPTIMI_HD StableAdamWUpdate update(double sum, int64_t numel) const {
    const double rms = std::sqrt(sum / static_cast<double>(numel));
    const double lr_t = lr / (rms > 1.0 ? rms : 1.0);  // a NaN RMS leaves lr unclipped
    WeightDecay decay;  // unlike the other optimizers, a factor of 0 is applied
    if (weight_decay != 0.0) {
      const double rate = decouple_lr ? (lr_t / max_lr) * weight_decay : lr_t * weight_decay;
      decay.factor = static_cast<float>(1.0 - rate);
    }
    return {eps, static_cast<float>(-lr_t), decay};
  }
};

// Both StableAdamW passes over tensors on `device`: the moments and per-tensor RMS, then (when
// `update`, i.e. not accumulating) the clipped update.
void stable_adamw_step(Device device, const StableAdamWMoments& moments,
                       const StableAdamWClip& clip, std::span<const KernelArgs> tensors,
                       bool update);

}  // namespace optimi::kernels
