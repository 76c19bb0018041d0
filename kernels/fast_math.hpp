#pragma once

#include <cmath>
#include <cstdint>

#include "optimi/dtype.hpp"
#include "optimi/macros.hpp"

// exp and tanh from plain arithmetic, so that GCC vectorises the CPU loops that call them: glibc
// only has SIMD expf/tanhf under -ffast-math, and the scalar calls dominate softmax- and GELU-style
// kernels. Accurate to about 2 ulp; the same code compiles for the GPU.
namespace optimi::kernels {

// Cephes' expf: 0 below -87, saturates at exp(88) above 88, NaN stays NaN.
OPTIMI_HD float fast_exp(float x) {
  float xc = x > -87.0f ? x : -87.0f;  // also maps NaN to a finite value (fixed up below)
  xc = xc < 88.0f ? xc : 88.0f;
  // Round to nearest through the 1.5 * 2^23 trick: std::floor does not vectorise under the
  // default -ftrapping-math.
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
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
