#pragma once

#include <cmath>
#include <type_traits>

#include "kernels/fast_math.hpp"
#include "optimi/macros.hpp"

// Element-wise math shared by the CPU loops and the CUDA kernels. Each functor computes in the
// compute type C (float for 32- and 16-bit floats, double for float64, int64_t for integers).
namespace optimi::kernels::fn {

// exp and tanh in the compute type: float uses the vectorisable fast_math versions (about 2 ulp),
// which keeps GELU/SiLU/softmax-style loops memory bound; other types use the standard library.
template <class C>
OPTIMI_HD C exp(C x) {
  if constexpr (std::is_same_v<C, float>) {
    return fast_exp(x);
  } else {
    return C(std::exp(double(x)));
  }
}
template <class C>
OPTIMI_HD C tanh(C x) {
  if constexpr (std::is_same_v<C, float>) {
    return fast_tanh(x);
  } else {
    return C(std::tanh(double(x)));
  }
}

// ---- binary (a, b) ----
struct Add {
  template <class C>
  OPTIMI_HD C operator()(C a, C b) const {
    return a + b;
  }
};
struct Sub {
  template <class C>
  OPTIMI_HD C operator()(C a, C b) const {
    return a - b;
  }
};
struct Mul {
  template <class C>
  OPTIMI_HD C operator()(C a, C b) const {
    return a * b;
  }
};
struct Div {
  template <class C>
  OPTIMI_HD C operator()(C a, C b) const {
    return a / b;
  }
};
struct Maximum {
  template <class C>
  OPTIMI_HD C operator()(C a, C b) const {
    return a >= b ? a : b;
  }
};
// 1 where a is the maximum of (a, b) (ties go to a), else 0: routes maximum's gradient.
struct GreaterEqualMask {
  template <class C>
  OPTIMI_HD C operator()(C a, C b) const {
    return a >= b ? C(1) : C(0);
  }
};

// ---- unary with a scalar parameter s ----
struct AddScalar {
  template <class C>
  OPTIMI_HD C operator()(C x, C s) const {
    return x + s;
  }
};
struct MulScalar {
  template <class C>
  OPTIMI_HD C operator()(C x, C s) const {
    return x * s;
  }
};
struct RSubScalar {  // s - x
  template <class C>
  OPTIMI_HD C operator()(C x, C s) const {
    return s - x;
  }
};
struct RDivScalar {  // s / x
  template <class C>
  OPTIMI_HD C operator()(C x, C s) const {
    return s / x;
  }
};
struct PowScalar {
  template <class C>
  OPTIMI_HD C operator()(C x, C s) const {
    if (s == C(2)) return x * x;
    return std::pow(x, s);
  }
};

// ---- unary ----
struct Neg {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return -x;
  }
};
struct Exp {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return fn::exp(x);
  }
};
struct Log {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return std::log(x);
  }
};
struct Sqrt {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return std::sqrt(x);
  }
};
struct Rsqrt {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return C(1) / std::sqrt(x);
  }
};
struct Tanh {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return fn::tanh(x);
  }
};
struct Abs {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return x < C(0) ? -x : x;
  }
};
struct Sign {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
  }
};
struct Relu {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return x > C(0) ? x : C(0);
  }
};
struct Sigmoid {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return C(1) / (C(1) + fn::exp(-x));
  }
};
struct Silu {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return x / (C(1) + fn::exp(-x));
  }
};
// softplus with PyTorch's threshold of 20, as Mish uses it.
template <class C>
OPTIMI_HD C softplus(C x) {
  return x > C(20) ? x : std::log1p(std::exp(x));
}
struct Mish {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return x * std::tanh(softplus(x));
  }
};
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;
// 0.5 * (1 + tanh(u)) is sigmoid(2u): one exp and one division, no cancellation near 0 (which is
// what tanh itself needs a second polynomial for). Exactly 0 far left, where float exp would
// overflow (fast_exp saturates instead, which would leave the backward a huge x times a tiny s).
// u = sqrt(2 / pi) (x + 0.044715 x^3), the argument of tanh (arithmetic alone: vector lanes too).
template <class C>
OPTIMI_HD C gelu_tanh_inner(C x) {
  return C(kSqrt2OverPi) * (x + C(0.044715) * x * x * x);
}
inline constexpr double kGeluFarLeft = -40;  // u below which the sigmoid is taken as 0
template <class C>
OPTIMI_HD C gelu_tanh_sigmoid(C x) {
  const C u = gelu_tanh_inner(x);
  return u < C(kGeluFarLeft) ? C(0) : C(1) / (C(1) + fn::exp(C(-2) * u));
}
struct GeluTanh {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return x * gelu_tanh_sigmoid(x);
  }
};
struct GeluErf {
  template <class C>
  OPTIMI_HD C operator()(C x) const {
    return C(0.5) * x * (C(1) + std::erf(x * C(kInvSqrt2)));
  }
};

// ---- backward of activations: (grad, x) -> grad * f'(x) ----
struct ReluBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C x) const {
    return x > C(0) ? g : C(0);
  }
};
struct SigmoidBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C x) const {
    C s = Sigmoid{}(x);
    return g * s * (C(1) - s);
  }
};
struct SiluBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C x) const {
    C s = Sigmoid{}(x);
    return g * s * (C(1) + x * (C(1) - s));
  }
};
struct MishBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C x) const {
    C t = std::tanh(softplus(x));
    C s = Sigmoid{}(x);
    return g * (t + x * s * (C(1) - t * t));
  }
};
// With s = sigmoid(2u) = 0.5 * (1 + tanh(u)): d/dx [x * s] = s + 2 * s * (1 - s) * x * du/dx
// (s * (1 - s) first: where it is 0, a huge x * du must not turn it into NaN).
struct GeluTanhBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C x) const {
    const C s = gelu_tanh_sigmoid(x);
    const C du = C(kSqrt2OverPi) * (C(1) + C(3 * 0.044715) * x * x);
    return g * (s + C(2) * s * (C(1) - s) * x * du);
  }
};
struct GeluErfBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C x) const {
    C cdf = C(0.5) * (C(1) + std::erf(x * C(kInvSqrt2)));
    C pdf = C(kInvSqrt2Pi) * std::exp(C(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
};
// (grad, y = tanh(x)) -> grad * (1 - y^2)
struct TanhBackward {
  template <class C>
  OPTIMI_HD C operator()(C g, C y) const {
    return g * (C(1) - y * y);
  }
};

}  // namespace optimi::kernels::fn
