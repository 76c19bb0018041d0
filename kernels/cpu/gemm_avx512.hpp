#pragma once

#include <cstdint>

#include "optimi/dtype.hpp"

// Packed AVX-512 GEMM kernels for the two dtypes models train in: float32 on FMA and bfloat16 on
// the AVX512-BF16 dot-product instruction, whose float32 accumulation rounds once on store.
namespace optimi::kernels::cpu {

// Whether this CPU runs gemm_avx512 for `dtype` (Float32 or BFloat16; checked once, at run time).
bool avx512_gemm_available(DType dtype);

// c [m, n] (contiguous) = a [m, k] @ b [k, n], operands given by element strides (any, though one
// unit stride per operand is the fast case); k > 0. Spreads output tiles over threads when
// `threaded`.
void gemm_avx512(const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
                 int64_t b_row_stride, int64_t b_col_stride, float* c, int64_t m, int64_t n,
                 int64_t k, bool threaded);
void gemm_avx512(const bfloat16* a, int64_t a_row_stride, int64_t a_col_stride, const bfloat16* b,
                 int64_t b_row_stride, int64_t b_col_stride, bfloat16* c, int64_t m, int64_t n,
                 int64_t k, bool threaded);

}  // namespace optimi::kernels::cpu
