#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cpu/lanes.hpp"
#include "kernels/fast_math.hpp"
#include "optimi/dtype.hpp"

// Sums, maxima and maps along one row, for the row kernels (layer norm, softmax, cross entropy,
// the attention softmax). After a `#pragma omp simd reduction` loop GCC folds the vector's 16 lanes
// one at a time through memory: a chain of dependent adds that costs more than the arithmetic on
// rows of a few dozen elements (a layer norm over d = 20 took 3.7 times as long). Where the
// target has AVX-512, float32 rows go 16 elements at a time (the last ones masked) and the lanes
// fold in halves. The per-element math is a generic lambda, applied to 16 lanes there and to
// scalars elsewhere (float64, other targets), so it is written once.

// GCC 12 flags the undefined upper halves that the AVX-512 reductions leave by design, wherever
// one is inlined (as in gemm_avx512.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace optimi::kernels::cpu {

// Σ_j f(in_j...) over rows of n elements (float32, bfloat16, float16 or float64), each element
// read as its compute type.
template <class F, class... In>
auto row_sum(int64_t n, F f, const In*... in) {
  using C = std::common_type_t<compute_t<In>...>;
#if OPTIMI_ROW_LANES
  if constexpr (std::is_same_v<C, float>) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mask = row_mask(n - j);
      acc = _mm512_mask_add_ps(acc, mask, acc, Lanes(f(load_lanes(in + j, mask)...)).v);
    }
    return _mm512_reduce_add_ps(acc);
  } else
#endif
  {
    C sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) sum += f(C(load(in[j]))...);
    return sum;
  }
}

// Σ_j x_j.
template <class T>
compute_t<T> row_total(const T* x, int64_t n) {
  return row_sum(
      n, [](auto v) { return v; }, x);
}

// The largest element of a row (-inf when it is empty; NaNs are skipped, as by `x > m ? x : m`).
template <class T>
compute_t<T> row_max(const T* x, int64_t n) {
  using C = compute_t<T>;
#if OPTIMI_ROW_LANES
  if constexpr (std::is_same_v<C, float>) {
    __m512 acc = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mask = row_mask(n - j);
      // max(x, acc) returns acc where x is NaN.
      acc = _mm512_mask_max_ps(acc, mask, load_lanes(x + j, mask).v, acc);
    }
    return _mm512_reduce_max_ps(acc);
  } else
#endif
  {
    C m = -std::numeric_limits<C>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; ++j) m = load(x[j]) > m ? load(x[j]) : m;
    return m;
  }
}

// out_j = f(in_j...) for j < n, each element read as its compute type (out may be one of the
// inputs). Float32 results go 16 at a time where the target has AVX-512 (the exponentials of a
// softmax, fast_exp on lanes, are the bulk of its cost), others one at a time.
template <class Out, class F, class... In>
void row_map(int64_t n, Out* out, F f, const In*... in) {
  using C = std::common_type_t<compute_t<In>...>;
#if OPTIMI_ROW_LANES
  if constexpr (std::is_same_v<Out, float> && std::is_same_v<C, float>) {
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mask = row_mask(n - j);
      _mm512_mask_storeu_ps(out + j, mask, Lanes(f(load_lanes(in + j, mask)...)).v);
    }
  } else
#endif
  {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) out[j] = store<Out>(f(C(load(in[j]))...));
  }
}

// row_map into a row of the compute type, returning the sum of what it wrote (in one pass: the
// exponentials of a softmax and their total).
template <class C, class F, class... In>
C row_map_total(int64_t n, C* out, F f, const In*... in) {
#if OPTIMI_ROW_LANES
  if constexpr (std::is_same_v<C, float> &&
                std::is_same_v<std::common_type_t<compute_t<In>...>, float>) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mask = row_mask(n - j);
      const __m512 v = Lanes(f(load_lanes(in + j, mask)...)).v;
      _mm512_mask_storeu_ps(out + j, mask, v);
      acc = _mm512_mask_add_ps(acc, mask, acc, v);
    }
    return _mm512_reduce_add_ps(acc);
  } else
#endif
  {
    C sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      const C v = f(C(load(in[j]))...);
      out[j] = v;
      sum += v;
    }
    return sum;
  }
}

// out = softmax(in * scale) over a row, in the compute type, through m = max(in) * scale (for
// scale >= 0 that is max(in * scale) exactly, rounding being monotonic) and the sum of
// exp(in * scale - m); returns both (a log-sum-exp is m + log(sum)).
template <class C>
struct SoftmaxRow {
  C max, sum;
};
template <class C, class T>
SoftmaxRow<C> softmax_row(int64_t n, C* out, const T* in, C scale) {
  const C m = row_max(in, n) * scale;
  const C sum = row_map_total(
      n, out, [scale, m](auto x) { return fast_exp(x * scale - m); }, in);
  const C inv = C(1) / sum;
  row_map(
      n, out, [inv](auto e) { return e * inv; }, out);
  return {m, sum};
}

}  // namespace optimi::kernels::cpu
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
