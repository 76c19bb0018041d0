#pragma once

#include <cstdint>

#include "kernels/cpu/gemm.hpp"
#include "optimi/dtype.hpp"

// Packed AVX-512 GEMM kernels for the two dtypes models train in: float32 on FMA and bfloat16 on
// the AVX512-BF16 dot-product instruction, whose float32 accumulation rounds once on store.
namespace optimi::kernels::cpu {

// Whether this CPU runs gemm_avx512 for `dtype` (Float32 or BFloat16; checked once, at run time).
bool avx512_gemm_available(DType dtype);

// c [m, n] (rows ldc apart, columns adjacent) = a [m, k] @ b [k, n], plus bias [n] in every row
// when not null (just the bias, or zeros, when k = 0); any operand strides, though one unit stride
// per operand is the fast case.
// Spreads output tiles over threads when `threaded`.
void gemm_avx512(MatrixRef<float> a, MatrixRef<float> b, float* c, int64_t ldc, int64_t m,
                 int64_t n, int64_t k, const float* bias, bool threaded);
void gemm_avx512(MatrixRef<bfloat16> a, MatrixRef<bfloat16> b, bfloat16* c, int64_t ldc, int64_t m,
                 int64_t n, int64_t k, const bfloat16* bias, bool threaded);

}  // namespace optimi::kernels::cpu
