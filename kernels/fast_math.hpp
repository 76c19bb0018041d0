#pragma once

#include <cmath>
#include <cstdint>

#include "optimi/dtype.hpp"
#include "optimi/macros.hpp"

// exp and tanh from plain arithmetic, so that GCC vectorises the CPU loops that call them: glibc
// only has SIMD expf/tanhf under -ffast-math, and the scalar calls dominate softmax- and GELU-style
// kernels. Accurate to about 2 ulp; the same code compiles for the GPU.
namespace optimi::kernels {

// a * b + c: fused by the compiler for scalars; vector types (kernels/cpu/lanes.hpp) give their
// own, found by argument-dependent lookup.
template <class V>
OPTIMI_HD V mul_add(V a, V b, V c) {
  return a * b + c;
}

// The core of Cephes' expf, for scalars and vector lanes alike: exp(x) / 2^n for x clamped to
// [-87, 88] and n = round(x / ln 2), a polynomial in x - n ln 2 (ln 2 split in two for accuracy).
inline constexpr float kLog2e = 1.44269504088896341f;
template <class V>
OPTIMI_HD V exp_reduced(V x, V n) {
  const V r = mul_add(n, V(2.12194440e-4f), mul_add(n, V(-0.693359375f), x));
  V p = V(1.9875691500e-4f);
  p = mul_add(p, r, V(1.3981999507e-3f));
  p = mul_add(p, r, V(8.3334519073e-3f));
  p = mul_add(p, r, V(4.1665795894e-2f));
  p = mul_add(p, r, V(1.6666665459e-1f));
  p = mul_add(p, r, V(5.0000001201e-1f));
  return mul_add(p * r, r, r) + V(1.0f);
}

// Cephes' expf: 0 below -87, saturates at exp(88) above 88, NaN stays NaN.
OPTIMI_HD float fast_exp(float x) {
  float xc = x > -87.0f ? x : -87.0f;  // also maps NaN to a finite value (fixed up below)
  xc = xc < 88.0f ? xc : 88.0f;
  // Round to nearest through the 1.5 * 2^23 trick: std::floor does not vectorise under the
  // default -ftrapping-math.
  const float n = (xc * kLog2e + 12582912.0f) - 12582912.0f;
  const float p = exp_reduced(xc, n);
  const float scale = bits_to_float(uint32_t(int32_t(n) + 127) << 23);
  const float result = x > -87.0f ? p * scale : 0.0f;
  return x == x ? result : x;
}
OPTIMI_HD double fast_exp(double x) {
  return std::exp(x);
}

// Cephes' tanhf: an odd polynomial near 0 (where 1 - 2 / (e^2x + 1) would cancel), else exp.
OPTIMI_HD float fast_tanh(float x) {
  const float a = x < 0.0f ? -x : x;
  const float big = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  return a < 0.625f ? small : (x < 0.0f ? -big : big);
}
OPTIMI_HD double fast_tanh(double x) {
  return std::tanh(x);
}

}  // namespace optimi::kernels
