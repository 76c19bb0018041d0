#pragma once

#include <span>
#include <vector>

#include "kernels/optimizers.hpp"

namespace optimi::kernels::cpu {

// Runs ops[k] over every element of tensors[k], all tensors in one parallel region (a
// multi-tensor launch: one per parameter group and step), each thread taking its share of every
// tensor. Returns, per tensor, the sum of the per-element values of a reducing op (StableAdamW's
// first pass), 0 for the others. Instantiated for every functor of kernels/optimizers.hpp.
template <class Op>
std::vector<double> launch(std::span<const Op> ops, std::span<const KernelArgs> tensors);

}  // namespace optimi::kernels::cpu
