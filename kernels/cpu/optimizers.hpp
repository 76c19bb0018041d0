#pragma once

#include "kernels/optimizers.hpp"

namespace optimi::kernels::cpu {

// Runs `op` once over every element of one contiguous parameter tensor, spread over the OpenMP
// threads. Returns the sum of the per-element values of a reducing op (StableAdamW's first pass),
// 0 for the others. Instantiated for every functor of kernels/optimizers.hpp.
template <class Op>
double launch(const Op& op, const KernelArgs& args);

}  // namespace optimi::kernels::cpu
