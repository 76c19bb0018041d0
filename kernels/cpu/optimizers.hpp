#pragma once

#include <span>
#include <vector>

#include "kernels/optimizer_launch.hpp"
#include "kernels/optimizers.hpp"

namespace optimi::kernels::cpu {

// Runs ops[k] over every element of tensors[k], all tensors in one parallel region (a
// multi-tensor launch: one per parameter group and step), each thread taking its share of every
// tensor. Returns, per tensor, the sum of the per-element values of a reducing op, 0 for the
// others. Instantiated for every functor of kernels/optimizers.hpp.
template <class Op>
std::vector<double> launch(std::span<const Op> ops, std::span<const KernelArgs> tensors);

// Both StableAdamW passes (kernels::stable_adamw_step on the CPU), tensor by tensor so that the
// second pass finds the moments the first one stored still in cache.
void stable_adamw_step(const StableAdamWMoments& moments, const StableAdamWClip& clip,
                       std::span<const KernelArgs> tensors, bool update);

}  // namespace optimi::kernels::cpu
