#pragma once

#include <vector>

#include "kernels/gemm.hpp"
#include "optimi/tensor.hpp"

namespace optimi::kernels::cpu {

// kernels::gemm on the CPU (see kernels/gemm.hpp), for k > 0: c[i] = a[i] @ b[i] (+ bias in every
// row).
void gemm(const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias);
// kernels::gemm_concurrent on the CPU, for products with k > 0.
void gemm_concurrent(const std::vector<GemmProduct>& products);

// One matrix in memory: element (i, j) at data[i * row_stride + j * col_stride].
template <class T>
struct MatrixRef {
  const T* data;
  int64_t row_stride, col_stride;
};

// c [m, n] = a [m, k] @ b [k, n] for one pair of matrices, on the calling thread: for kernels that
// share out their own loops (attention). Each operand has a unit stride in one of its dims; c's
// rows are ldc apart, its columns adjacent; k may be 0 (c = 0).
void gemm_one(MatrixRef<float> a, MatrixRef<float> b, float* c, int64_t ldc, int64_t m, int64_t n,
              int64_t k);
void gemm_one(MatrixRef<double> a, MatrixRef<double> b, double* c, int64_t ldc, int64_t m,
              int64_t n, int64_t k);

}  // namespace optimi::kernels::cpu
