#pragma once

#include <vector>

#include "optimi/tensor.hpp"

// Device-neutral GEMM: the CPU kernels or cuBLAS, by the tensors' device.
namespace optimi::kernels {

// c[i] = a[i] @ b[i] (+ bias) for every index i of the leading batch dims (an empty inner dim
// gives the bias, or zeros). a [..., M, K] and b [..., K, N] are read in place (transposed
// matrices, stride-0 broadcast batch dims; a matrix with no unit stride is copied first);
// c [..., M, N] is contiguous; bias, when defined, is a contiguous [N] added to every row (a
// linear layer's). All share one floating-point dtype, one device and one batch shape.
// Accumulates in float32 (float64 for float64) and rounds 16-bit results once on store.
void gemm(const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias = Tensor());

// One product for gemm_concurrent, with gemm's arguments.
struct GemmProduct {
  Tensor a, b, c, bias;
};

// Independent products (none reads another's output), each as gemm computes it. The CPU runs
// them side by side, a thread each, when every one is too small to share out among threads (a
// small linear layer's gradients); otherwise, and on other devices, in turn.
void gemm_concurrent(const std::vector<GemmProduct>& products);

}  // namespace optimi::kernels
