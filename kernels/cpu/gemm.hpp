#pragma once

#include "optimi/tensor.hpp"

namespace optimi::kernels::cpu {

// c[i] = a[i] @ b[i] for every index i of the leading batch dims. a [..., M, K] and b [..., K, N]
// are read in place whatever their strides (transposed matrices, stride-0 broadcast batch dims);
// c [..., M, N] is contiguous. All three share one floating-point dtype and one batch shape.
// 16-bit floats multiply in float32 and round once on store.
void gemm(const Tensor& a, const Tensor& b, Tensor& c);

}  // namespace optimi::kernels::cpu
