#pragma once

#include <cstdint>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define OPTIMI_ROW_LANES 1
#endif

#include "kernels/fast_math.hpp"
#include "kernels/functors.hpp"
#include "optimi/dtype.hpp"

// 16 float32 lanes of AVX-512 with the arithmetic the row kernels' element lambdas and a few
// element-wise functors use (see row_reduce.hpp, elementwise.cpp), so that one generic lambda or
// functor serves lanes and scalars alike.
namespace optimi::kernels::cpu {

#if OPTIMI_ROW_LANES
// Scalars broadcast.
struct Lanes {
  __m512 v;
  Lanes(__m512 lanes) : v(lanes) {}
  Lanes(float x) : v(_mm512_set1_ps(x)) {}
};
inline Lanes operator+(Lanes a, Lanes b) {
  return _mm512_add_ps(a.v, b.v);
}
inline Lanes operator-(Lanes a, Lanes b) {
  return _mm512_sub_ps(a.v, b.v);
}
inline Lanes operator*(Lanes a, Lanes b) {
  return _mm512_mul_ps(a.v, b.v);
}
inline Lanes mul_add(Lanes a, Lanes b, Lanes c) {
  return _mm512_fmadd_ps(a.v, b.v, c.v);
}

// kernels::fast_exp lane by lane: its reduction and polynomial (exp_reduced), and the same
// results at the edges (0 at or below -87, exp(88) at or above 88, NaN stays NaN). VSCALEFPS
// applies the 2^n that the portable version builds from exponent bits behind clamps and selects,
// which were half its instructions: this one is twice as fast.
using kernels::fast_exp;
inline Lanes fast_exp(Lanes x) {
  // min(88, x) keeps a NaN x (the second operand) as it is.
  const Lanes xc = _mm512_min_ps(_mm512_set1_ps(88.0f), x.v);
  // Lanes at or below -87 become 0; "not less or equal" holds for NaN, which stays.
  const __mmask16 kept = _mm512_cmp_ps_mask(x.v, _mm512_set1_ps(-87.0f), _CMP_NLE_UQ);
  const Lanes n =
      _mm512_roundscale_ps((xc * Lanes(kLog2e)).v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_maskz_scalef_ps(kept, exp_reduced(xc, n).v, n.v);
}

// fn::gelu_tanh_sigmoid lane by lane (found by argument-dependent lookup from the GELU functors):
// the same arithmetic, with the far-left select as a mask.
inline Lanes gelu_tanh_sigmoid(Lanes x) {
  const Lanes u = fn::gelu_tanh_inner(x);
  const __mmask16 far_left =
      _mm512_cmp_ps_mask(u.v, _mm512_set1_ps(float(fn::kGeluFarLeft)), _CMP_LT_OQ);
  const __m512 s =
      _mm512_div_ps(_mm512_set1_ps(1.0f), (Lanes(1.0f) + fast_exp(Lanes(-2.0f) * u)).v);
  return _mm512_mask_blend_ps(far_left, s, _mm512_setzero_ps());
}

inline __mmask16 row_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

// Elements [0, 16) of p as float32 lanes, zero where `mask` is clear. All three conversions are
// exact.
inline Lanes load_lanes(const float* p, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, p);
}
inline Lanes load_lanes(const bfloat16* p, __mmask16 mask) {
  const __m512i bits = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16));
}
inline Lanes load_lanes(const float16* p, __mmask16 mask) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
}
#endif

}  // namespace optimi::kernels::cpu
