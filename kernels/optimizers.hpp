#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "optimi/dtype.hpp"
#include "optimi/macros.hpp"

// Per-element math of the eight optimizers, written once for every backend (spec optimizers.md,
// decision 1; ../shared/reference/fused_optimizers.py is the executable statement). Each functor
// holds the per-tensor scalars the host computed (in double, handed over as float32) and updates
// element i of one parameter tensor: load, compute in float32, round to the storage type T only
// where a value is stored. The gradient is never written.
namespace optimi::kernels {

// Everything one parameter's update touches, as typed pointers to contiguous storage.
template <class T>
struct ParamTensors {
  T* param;
  const T* grad;
  T* state[4];  // the optimizer's buffers, in the order its algorithm names them
  T* kahan;     // null unless Kahan summation is active
};

// The same, type-erased, as the host hands it to a backend.
struct KernelArgs {
  DType dtype = DType::Float32;
  int64_t numel = 0;
  void* param = nullptr;
  const void* grad = nullptr;
  void* state[4] = {nullptr, nullptr, nullptr, nullptr};
  void* kahan = nullptr;
  bool update = true;  // false: optimizer accumulation (state only)
};

template <class T>
ParamTensors<T> typed(const KernelArgs& a) {
  return {static_cast<T*>(a.param),
          static_cast<const T*>(a.grad),
          {static_cast<T*>(a.state[0]), static_cast<T*>(a.state[1]), static_cast<T*>(a.state[2]),
           static_cast<T*>(a.state[3])},
          static_cast<T*>(a.kahan)};
}

// How weight decay enters an update (spec 1.4).
enum class Decay {
  kNone,
  kFactor,  // p_w = round(p * factor), stored before the update
  kL2,      // g + l2 * p in float32, never stored
};

// What holds for every element of one tensor's update; backends compile a loop per variant so
// that none of these choices is made per element.
struct Variant {
  bool kahan = false;  // compensated update: low-precision parameters with a Kahan buffer
  bool update = true;  // false: optimizer accumulation, the state absorbs the gradient only
  Decay decay = Decay::kNone;
};

// The buffers an op's apply touches, for backends that stage elements in registers
// (kernels/cuda/optimizers.cu).
struct Footprint {
  int states = 0;             // state[0 .. states) are read
  bool writes_states = true;  // ... and written
  bool param = true;          // the parameter is read, and with the Kahan buffer written by updates
  bool grad = true;           // the gradient is read
};

// Conversions between the storage types and float32 as branch-free bit operations, so that every
// loop vectorises (dtype.hpp's float16 conversions branch). Same results as load/store in
// dtype.hpp: round to nearest, ties to even, subnormals kept.
OPTIMI_HD float half_to_float(uint16_t h) {
  uint32_t o = static_cast<uint32_t>(h & 0x7fffu) << 13;
  uint32_t exponent = o & 0x0f800000u;
  o += 0x38000000u;  // exponent bias 15 -> 127
  uint32_t inf_nan = o + 0x38000000u;
  float subnormal = bits_to_float(o + 0x00800000u) - bits_to_float(0x38800000u);
  uint32_t magnitude = exponent == 0x0f800000u ? inf_nan
                       : exponent == 0u        ? float_to_bits(subnormal)
                                               : o;
  return bits_to_float(magnitude | (static_cast<uint32_t>(h & 0x8000u) << 16));
}

OPTIMI_HD uint16_t float_to_half(float x) {
  uint32_t u = float_to_bits(x);
  uint32_t a = u & 0x7fffffffu;
  uint32_t normal = (a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13;
  // Subnormal halves: a * 2^24 rounded to an integer by adding and removing 1.5 * 2^23.
  float scaled = bits_to_float(a < 0x38800000u ? a : 0x38800000u) * 16777216.0f;
  uint32_t subnormal = static_cast<uint32_t>((scaled + 12582912.0f) - 12582912.0f);
  uint32_t magnitude = a > 0x7f800000u    ? 0x7e00u  // NaN
                       : a >= 0x477ff000u ? 0x7c00u  // rounds to infinity
                       : a < 0x38800000u  ? subnormal
                                          : normal;
  return static_cast<uint16_t>(((u >> 16) & 0x8000u) | magnitude);
}

template <class T>
OPTIMI_HD float widen(T v) {
  if constexpr (std::is_same_v<T, float16>) {
    return half_to_float(v.bits);
  } else {
    return load(v);
  }
}

// Rounding to T: round_to keeps the rounded value in float32, store_exact stores a value already
// representable, store_rounded does both.
template <class T>
OPTIMI_HD float round_to(float x) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    uint32_t u = float_to_bits(x);
#if defined(__CUDA_ARCH__)
    // CUDA's canonical NaN, 0x7fffffff, would carry into the sign below.
    if ((u & 0x7fffffffu) > 0x7f800000u) return bits_to_float((u & 0xffff0000u) | 0x00400000u);
#endif
    // Every value rounded here is the result of float32 arithmetic on bfloat16 inputs and
    // host-computed scalars, so on the host a NaN is quiet and has its low 16 bits clear (the
    // payload of a bfloat16 input, or the default NaN): it stays the same quiet NaN.
    return bits_to_float((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
  } else if constexpr (std::is_same_v<T, float16>) {
    return half_to_float(float_to_half(x));
  } else {
    return x;
  }
}

template <class T>
OPTIMI_HD T store_exact(float x) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return bfloat16{static_cast<uint16_t>(float_to_bits(x) >> 16)};
  } else if constexpr (std::is_same_v<T, float16>) {
    return float16{float_to_half(x)};
  } else {
    return x;
  }
}

template <class T>
OPTIMI_HD T store_rounded(float x) {
  if constexpr (std::is_same_v<T, float16>) {
    return float16{float_to_half(x)};  // rounds as it converts
  } else {
    return store_exact<T>(round_to<T>(x));
  }
}

// p_w + delta as it is to be stored. Without Kahan summation this is the float32 sum (rounded once
// by the caller's store); with it, the compensated sum, already representable in T:
//   k32 = k + delta;  p_new = round(p_w + round(k32));  k = round(k32 + (p_w - p_new)).
template <bool kKahan, class T>
OPTIMI_HD float add_update(T* kahan, int64_t i, float p_w, float delta) {
  if constexpr (kKahan) {
    float k32 = widen(kahan[i]) + delta;
    float p_new = round_to<T>(p_w + round_to<T>(k32));
    kahan[i] = store_rounded<T>(k32 + (p_w - p_new));
    return p_new;
  } else {
    return p_w + delta;
  }
}

template <bool kKahan, class T>
OPTIMI_HD void apply_update(const ParamTensors<T>& t, int64_t i, float p_w, float delta) {
  float sum = add_update<kKahan>(t.kahan, i, p_w, delta);
  t.param[i] = kKahan ? store_exact<T>(sum) : store_rounded<T>(sum);
}

// One tensor's weight decay: the multiplicative factor (optimi skips a factor of exactly 0, which
// the host encodes as no decay) or the L2 coefficient.
struct WeightDecay {
  float factor = 1.0f;
  float l2 = 0.0f;

  OPTIMI_HD Decay kind() const {
    if (l2 != 0.0f) return Decay::kL2;
    return factor != 1.0f ? Decay::kFactor : Decay::kNone;  // p * 1 rounds to p: no work
  }
  template <Decay kDecay>
  OPTIMI_HD float grad(float g, float p) const {
    if constexpr (kDecay == Decay::kL2) {
      return g + l2 * p;
    } else {
      return g;
    }
  }
  template <Decay kDecay, class T>
  OPTIMI_HD float param(float p) const {
    if constexpr (kDecay == Decay::kFactor) {
      return round_to<T>(p * factor);
    } else {
      return p;
    }
  }
};

// m̂ and v̂ of the Adam family. optimi folds bias correction into debiased betas, so the state
// holds debiased averages: m̂ = m̂ + (1-β̂1)(g - m̂), v̂ = β̂2 v̂ + (1-β̂2) g².
struct AdamMoments {
  float beta1_comp;
  float beta2_hat;
  float beta2_comp;

  struct Values {
    float m, v;
  };
  template <class T>
  OPTIMI_HD Values update(float g, T* exp_avg, T* exp_avg_sq, int64_t i) const {
    float m0 = widen(exp_avg[i]);
    float m = m0 + beta1_comp * (g - m0);
    float v = beta2_hat * widen(exp_avg_sq[i]) + beta2_comp * (g * g);
    exp_avg[i] = store_rounded<T>(m);
    exp_avg_sq[i] = store_rounded<T>(v);
    return {m, v};
  }
};

// SGD without momentum: no state.
struct SgdStep {
  static constexpr Footprint kFootprint{};
  float neg_lr;
  WeightDecay decay;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    if constexpr (kV.update) {
      float p = widen(t.param[i]);
      float g = decay.grad<kV.decay>(widen(t.grad[i]), p);
      apply_update<kV.kahan>(t, i, decay.param<kV.decay, T>(p), neg_lr * g);
    }
  }
};

// SGD with momentum: state[0] = exp_avg (momentum buffer b). With dampening b is a lerp,
// b + (1-μ)(g - b); without, μ b + g.
template <bool kDampening>
struct SgdMomentumStep {
  static constexpr Footprint kFootprint{.states = 1};
  float weight;  // 1 - μ with dampening, μ without
  float neg_lr;
  WeightDecay decay;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = widen(t.param[i]);
    float g = decay.grad<kV.decay>(widen(t.grad[i]), p);
    float b0 = widen(t.state[0][i]);
    float b;
    if constexpr (kDampening) {
      b = b0 + weight * (g - b0);
    } else {
      b = weight * b0 + g;
    }
    t.state[0][i] = store_rounded<T>(b);
    if constexpr (kV.update) apply_update<kV.kahan>(t, i, decay.param<kV.decay, T>(p), neg_lr * b);
  }
};

// state[0] = round(scale * (g + l2 p)): SGD's torch_init momentum buffer (scale 1, L2 term when
// L2 decay is active) and Adan's prev_grad = -g (scale -1).
struct GradientInit {
  static constexpr Footprint kFootprint{.states = 1};
  float scale;
  float l2;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float g = widen(t.grad[i]);
    float with_l2 = g + l2 * widen(t.param[i]);
    t.state[0][i] = store_rounded<T>(scale * (l2 != 0.0f ? with_l2 : g));
  }
};

// Adam and AdamW: state = {exp_avg, exp_avg_sq}.
struct AdamStep {
  static constexpr Footprint kFootprint{.states = 2};
  AdamMoments moments;
  float eps;
  float neg_lr;
  WeightDecay decay;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = widen(t.param[i]);
    float g = decay.grad<kV.decay>(widen(t.grad[i]), p);
    auto mv = moments.update(g, t.state[0], t.state[1], i);
    if constexpr (kV.update) {
      float delta = neg_lr * mv.m / (std::sqrt(mv.v) + eps);
      apply_update<kV.kahan>(t, i, decay.param<kV.decay, T>(p), delta);
    }
  }
};

// RAdam (and Ranger between lookaheads): state = {exp_avg, exp_avg_sq[, la_param]}. Rectified
// steps once ρ_t > 5, an un-adapted momentum step before.
template <bool kRectified>
struct RAdamStep {
  static constexpr Footprint kFootprint{.states = 2};
  AdamMoments moments;
  float eps;
  float neg_lr;  // -lr·r_t when rectified
  WeightDecay decay;

  OPTIMI_HD float delta(float m, float v) const {
    if constexpr (kRectified) {
      return neg_lr * m / (std::sqrt(v) + eps);
    } else {
      return neg_lr * m;
    }
  }

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = widen(t.param[i]);
    float g = decay.grad<kV.decay>(widen(t.grad[i]), p);
    auto mv = moments.update(g, t.state[0], t.state[1], i);
    if constexpr (kV.update) {
      apply_update<kV.kahan>(t, i, decay.param<kV.decay, T>(p), delta(mv.m, mv.v));
    }
  }
};

// Ranger's step when t mod k = 0: the RAdam update, then the slow weights φ (state[2]) move α of
// the way to the fast weights and become the parameter. With Kahan summation both updates are
// compensated, the compensation staying float32 between them, and the slow weights' error term
// has weight 1 (spec decision 3).
template <bool kRectified>
struct RangerLookaheadStep : RAdamStep<kRectified> {
  static constexpr Footprint kFootprint{.states = 3};
  float alpha;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    const WeightDecay& decay = this->decay;
    float p = widen(t.param[i]);
    float g = decay.grad<kV.decay>(widen(t.grad[i]), p);
    auto mv = this->moments.update(g, t.state[0], t.state[1], i);
    if constexpr (kV.update) {
      float p_w = decay.param<kV.decay, T>(p);
      float delta = this->delta(mv.m, mv.v);
      float phi = widen(t.state[2][i]);
      T phi_new;
      if constexpr (kV.kahan) {
        float k32 = widen(t.kahan[i]) + delta;
        float fast = round_to<T>(p_w + round_to<T>(k32));
        k32 = k32 + (p_w - fast);
        k32 = k32 + alpha * (fast - phi);
        float rounded = round_to<T>(phi + round_to<T>(k32));
        k32 = k32 + (phi - rounded);
        t.kahan[i] = store_rounded<T>(k32);
        phi_new = store_exact<T>(rounded);
      } else {
        phi_new = store_rounded<T>(phi + alpha * ((p_w + delta) - phi));
      }
      t.state[2][i] = phi_new;
      t.param[i] = phi_new;
    }
  }
};

// Lion: state = {exp_avg} (the raw EMA m, not debiased). The sign update uses the old m.
struct LionStep {
  static constexpr Footprint kFootprint{.states = 1};
  float beta1_comp;  // 1 - β1
  float beta2_comp;  // 1 - β2
  float neg_lr;
  WeightDecay decay;

  OPTIMI_HD static float sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float g = widen(t.grad[i]);
    float m = widen(t.state[0][i]);
    t.state[0][i] = store_rounded<T>(m + beta2_comp * (g - m));
    if constexpr (kV.update) {
      float u = sign(m + beta1_comp * (g - m));
      apply_update<kV.kahan>(t, i, decay.param<kV.decay, T>(widen(t.param[i])), neg_lr * u);
    }
  }
};

// Adan: state = {exp_avg (m̂), exp_avg_diff (d̂), exp_avg_sq (n̂), prev_grad (-g_{t-1})}. Weight
// decay is Adam-style (decay.factor before the update) or Adan-style (a divisor after it, 1 when
// off); without Kahan summation the float32 sum is divided before its one rounding.
struct AdanStep {
  static constexpr Footprint kFootprint{.states = 4};
  float beta1_comp;
  float beta2_comp;
  float beta2;  // undebiased, weighs the gradient difference
  float beta3_hat;
  float beta3_comp;
  float eps;
  float neg_lr;
  float neg_lr_beta2;  // -lr·β2
  WeightDecay decay = {};
  float divisor = 1.0f;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float g = widen(t.grad[i]);
    float diff = widen(t.state[3][i]) + g;
    float m0 = widen(t.state[0][i]);
    float m = m0 + beta1_comp * (g - m0);
    float d0 = widen(t.state[1][i]);
    float d = d0 + beta2_comp * (diff - d0);
    float z = beta2 * diff + g;
    float n = beta3_hat * widen(t.state[2][i]) + beta3_comp * (z * z);
    t.state[0][i] = store_rounded<T>(m);
    t.state[1][i] = store_rounded<T>(d);
    t.state[2][i] = store_rounded<T>(n);
    t.state[3][i] = store_exact<T>(-g);  // exact: g came from T
    if constexpr (kV.update) {
      float den = std::sqrt(n) + eps;
      float delta = neg_lr * m / den + neg_lr_beta2 * d / den;
      float p_w = decay.param<kV.decay, T>(widen(t.param[i]));
      t.param[i] = store_rounded<T>(add_update<kV.kahan>(t.kahan, i, p_w, delta) / divisor);
    }
  }
};

// StableAdamW pass 1: the moments, and this element's share of the per-tensor RMS,
// g² / max(v̂, eps²), from the float32 updated v̂.
struct StableAdamWMoments {
  static constexpr Footprint kFootprint{.states = 2, .param = false};
  AdamMoments moments;
  float eps_sq;  // float32 eps·eps

  template <Variant kV, class T>
  OPTIMI_HD float apply(const ParamTensors<T>& t, int64_t i) const {
    float g = widen(t.grad[i]);
    auto mv = moments.update(g, t.state[0], t.state[1], i);
    return (g * g) / (mv.v < eps_sq ? eps_sq : mv.v);
  }
};

// StableAdamW pass 2: decay with the RMS-clipped learning rate, then the update from the stored
// moments.
struct StableAdamWUpdate {
  static constexpr Footprint kFootprint{.states = 2, .writes_states = false, .grad = false};
  float eps;
  float neg_lr;  // -lr_t
  WeightDecay decay;

  template <Variant kV, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    if constexpr (kV.update) {
      float m = widen(t.state[0][i]);
      float v = widen(t.state[1][i]);
      float p_w = decay.param<kV.decay, T>(widen(t.param[i]));
      apply_update<kV.kahan>(t, i, p_w, neg_lr * m / (std::sqrt(v) + eps));
    }
  }
};

}  // namespace optimi::kernels

// Applies X to every op above: the launchers (CPU, CUDA and the device dispatch) instantiate
// their templates for exactly this list.
#define OPTIMI_FOR_EACH_OPTIMIZER_OP(X) \
  X(SgdStep)                            \
  X(SgdMomentumStep<false>)             \
  X(SgdMomentumStep<true>)              \
  X(GradientInit)                       \
  X(AdamStep)                           \
  X(RAdamStep<false>)                   \
  X(RAdamStep<true>)                    \
  X(RangerLookaheadStep<false>)         \
  X(RangerLookaheadStep<true>)          \
  X(LionStep)                           \
  X(AdanStep)                           \
  X(StableAdamWMoments)                 \
  X(StableAdamWUpdate)
