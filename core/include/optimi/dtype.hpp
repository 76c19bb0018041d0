#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "optimi/macros.hpp"

namespace optimi {

enum class DType { Float32, Float16, BFloat16, Int64, Float64, Bool };

std::string_view dtype_name(DType);  // "float32", "bfloat16", ...
bool is_floating_point(DType);
int64_t element_size(DType);
// PyTorch's promotion for two tensor operands (float64 > float32 > {bfloat16, float16} > int64 >
// bool; bfloat16 with float16 gives float32).
DType promote_types(DType a, DType b);

// Storage types of the 16-bit floats. Conversions compute through float32 and round to nearest,
// ties to even, like every device we target.
struct bfloat16 {
  uint16_t bits = 0;
};
struct float16 {
  uint16_t bits = 0;
};

OPTIMI_HD float bits_to_float(uint32_t u) {
  float f;
#if defined(__CUDA_ARCH__)
  f = __uint_as_float(u);
#else
  std::memcpy(&f, &u, 4);
#endif
  return f;
}
OPTIMI_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

OPTIMI_HD float to_float(bfloat16 h) {
  return bits_to_float(uint32_t(h.bits) << 16);
}
OPTIMI_HD bfloat16 to_bfloat16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bfloat16{uint16_t((u >> 16) | 0x40)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bfloat16{uint16_t(u >> 16)};
}

OPTIMI_HD float to_float(float16 h) {
  uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {  // zero or subnormal: value = man * 2^-24
    float v = float(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
}
OPTIMI_HD float16 to_float16(float f) {
  uint32_t u = float_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return float16{uint16_t(sign | 0x7e00u)};
  if (a >= 0x477ff000u) return float16{uint16_t(sign | 0x7c00u)};  // rounds to infinity
  if (a < 0x38800000u) {  // subnormal half: round a * 2^24 to an integer, ties to even
    float v = bits_to_float(a) * 16777216.0f;
    float r = v + 12582912.0f - 12582912.0f;  // 1.5 * 2^23 forces round-to-nearest-even
    return float16{uint16_t(sign | uint16_t(r))};
  }
  uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
  return float16{uint16_t(sign | uint16_t((rounded - 0x38000000u) >> 13))};
}

// Compute type of a storage type: 16-bit floats compute in float32.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<bfloat16> {
  using type = float;
};
template <>
struct compute_type<float16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

template <class T>
OPTIMI_HD compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
    return to_float(v);
  } else {
    return v;
  }
}
template <class T, class C>
OPTIMI_HD T store(C v) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return to_bfloat16(float(v));
  } else if constexpr (std::is_same_v<T, float16>) {
    return to_float16(float(v));
  } else {
    return T(v);
  }
}

}  // namespace optimi
