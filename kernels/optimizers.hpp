#pragma once

#include <cmath>
#include <cstdint>

#include "optimi/dtype.hpp"
#include "optimi/macros.hpp"

// Per-element math of the eight optimizers, written once for every backend (spec optimizers.md,
// decision 1; ../shared/reference/fused_optimizers.py is the executable statement). Each functor
// holds the per-tensor scalars the host computed (in double, handed over as float32) and updates
// element i of one parameter tensor: load, compute in float32, round to the storage type T only
// where a value is stored. The gradient is never written.
//
// apply<kKahan, kUpdate>: kKahan selects the compensated update (low-precision parameters with a
// Kahan buffer); kUpdate false is an optimizer-accumulation call, which only updates the state.
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

// The float32 value a store to T keeps.
template <class T>
OPTIMI_HD float round_to(float x) {
  return load(store<T>(x));
}

// p_w + delta as it is to be stored. Without Kahan summation this is the float32 sum (rounded once
// by the caller's store); with it, the compensated sum, already representable in T:
//   k32 = k + delta;  p_new = round(p_w + round(k32));  k = round(k32 + (p_w - p_new)).
template <bool kKahan, class T>
OPTIMI_HD float add_update(T* kahan, int64_t i, float p_w, float delta) {
  if constexpr (kKahan) {
    float k32 = load(kahan[i]) + delta;
    float p_new = round_to<T>(p_w + round_to<T>(k32));
    kahan[i] = store<T>(k32 + (p_w - p_new));
    return p_new;
  } else {
    return p_w + delta;
  }
}

template <bool kKahan, class T>
OPTIMI_HD void apply_update(const ParamTensors<T>& t, int64_t i, float p_w, float delta) {
  t.param[i] = store<T>(add_update<kKahan>(t.kahan, i, p_w, delta));
}

// Weight decay of one tensor (spec 1.4): a multiplicative factor stored before the update (1 when
// off; optimi skips a factor of exactly 0, which the host encodes as 1) and an L2 coefficient
// added to the gradient in float32 (0 when off).
struct WeightDecay {
  float factor = 1.0f;
  float l2 = 0.0f;

  // Both sides computed unconditionally, so vectorisers may select between them.
  OPTIMI_HD float grad(float g, float p) const {
    float with_l2 = g + l2 * p;
    return l2 != 0.0f ? with_l2 : g;
  }
  template <class T>
  OPTIMI_HD float param(float p) const {
    return round_to<T>(p * factor);
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
    float m0 = load(exp_avg[i]);
    float m = m0 + beta1_comp * (g - m0);
    float v = beta2_hat * load(exp_avg_sq[i]) + beta2_comp * (g * g);
    exp_avg[i] = store<T>(m);
    exp_avg_sq[i] = store<T>(v);
    return {m, v};
  }
};

// SGD without momentum: state[] unused.
struct SgdStep {
  float neg_lr;
  WeightDecay decay;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    if constexpr (kUpdate) {
      float p = load(t.param[i]);
      float g = decay.grad(load(t.grad[i]), p);
      apply_update<kKahan>(t, i, decay.param<T>(p), neg_lr * g);
    }
  }
};

// SGD with momentum: state[0] = exp_avg (momentum buffer b). With dampening b is a lerp,
// b + (1-μ)(g - b); without, μ b + g.
template <bool kDampening>
struct SgdMomentumStep {
  float weight;  // 1 - μ with dampening, μ without
  float neg_lr;
  WeightDecay decay;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = load(t.param[i]);
    float g = load(t.grad[i]);
    if constexpr (kUpdate) g = decay.grad(g, p);
    float b0 = load(t.state[0][i]);
    float b;
    if constexpr (kDampening) {
      b = b0 + weight * (g - b0);
    } else {
      b = weight * b0 + g;
    }
    t.state[0][i] = store<T>(b);
    if constexpr (kUpdate) apply_update<kKahan>(t, i, decay.param<T>(p), neg_lr * b);
  }
};

// state[0] = round(scale * (g + l2 p)): SGD's torch_init momentum buffer (scale 1, L2 term when
// L2 decay is active) and Adan's prev_grad = -g (scale -1).
struct GradientInit {
  float scale;
  float l2;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float g = load(t.grad[i]);
    float with_l2 = g + l2 * load(t.param[i]);
    t.state[0][i] = store<T>(scale * (l2 != 0.0f ? with_l2 : g));
  }
};

// Adam and AdamW: state = {exp_avg, exp_avg_sq}.
struct AdamStep {
  AdamMoments moments;
  float eps;
  float neg_lr;
  WeightDecay decay;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = load(t.param[i]);
    float g = load(t.grad[i]);
    if constexpr (kUpdate) g = decay.grad(g, p);
    auto mv = moments.update(g, t.state[0], t.state[1], i);
    if constexpr (kUpdate) {
      apply_update<kKahan>(t, i, decay.param<T>(p), neg_lr * mv.m / (std::sqrt(mv.v) + eps));
    }
  }
};

// RAdam (and Ranger between lookaheads): state = {exp_avg, exp_avg_sq[, la_param]}. Rectified
// steps once ρ_t > 5, an un-adapted momentum step before.
template <bool kRectified>
struct RAdamStep {
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

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = load(t.param[i]);
    float g = load(t.grad[i]);
    if constexpr (kUpdate) g = decay.grad(g, p);
    auto mv = moments.update(g, t.state[0], t.state[1], i);
    if constexpr (kUpdate) apply_update<kKahan>(t, i, decay.param<T>(p), delta(mv.m, mv.v));
  }
};

// Ranger's step when t mod k = 0: the RAdam update, then the slow weights φ (state[2]) move α of
// the way to the fast weights and become the parameter. With Kahan summation both updates are
// compensated, the compensation staying float32 between them, and the slow weights' error term
// has weight 1 (spec decision 3).
template <bool kRectified>
struct RangerLookaheadStep {
  RAdamStep<kRectified> radam;
  float alpha;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float p = load(t.param[i]);
    float g = load(t.grad[i]);
    if constexpr (kUpdate) g = radam.decay.grad(g, p);
    auto mv = radam.moments.update(g, t.state[0], t.state[1], i);
    if constexpr (kUpdate) {
      float p_w = radam.decay.template param<T>(p);
      float delta = radam.delta(mv.m, mv.v);
      float phi = load(t.state[2][i]);
      float phi_new;
      if constexpr (kKahan) {
        float k32 = load(t.kahan[i]) + delta;
        float fast = round_to<T>(p_w + round_to<T>(k32));
        k32 = k32 + (p_w - fast);
        k32 = k32 + alpha * (fast - phi);
        phi_new = round_to<T>(phi + round_to<T>(k32));
        k32 = k32 + (phi - phi_new);
        t.kahan[i] = store<T>(k32);
      } else {
        phi_new = phi + alpha * ((p_w + delta) - phi);
      }
      T stored = store<T>(phi_new);
      t.state[2][i] = stored;
      t.param[i] = stored;
    }
  }
};

// Lion: state = {exp_avg} (the raw EMA m, not debiased). The sign update uses the old m.
struct LionStep {
  float beta1_comp;  // 1 - β1
  float beta2_comp;  // 1 - β2
  float neg_lr;
  WeightDecay decay;

  OPTIMI_HD static float sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float g = load(t.grad[i]);
    float m = load(t.state[0][i]);
    t.state[0][i] = store<T>(m + beta2_comp * (g - m));
    if constexpr (kUpdate) {
      float u = sign(m + beta1_comp * (g - m));
      apply_update<kKahan>(t, i, decay.param<T>(load(t.param[i])), neg_lr * u);
    }
  }
};

// Adan: state = {exp_avg (m̂), exp_avg_diff (d̂), exp_avg_sq (n̂), prev_grad (-g_{t-1})}. Weight
// decay is Adam-style (factor before the update) or Adan-style (divisor after it); without Kahan
// summation the float32 sum is divided before its one rounding.
struct AdanStep {
  float beta1_comp;
  float beta2_comp;
  float beta2;  // undebiased, weighs the gradient difference
  float beta3_hat;
  float beta3_comp;
  float eps;
  float neg_lr;
  float neg_lr_beta2;  // -lr·β2
  float factor = 1.0f;
  float divisor = 1.0f;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    float g = load(t.grad[i]);
    float diff = load(t.state[3][i]) + g;
    float m0 = load(t.state[0][i]);
    float m = m0 + beta1_comp * (g - m0);
    float d0 = load(t.state[1][i]);
    float d = d0 + beta2_comp * (diff - d0);
    float z = beta2 * diff + g;
    float n = beta3_hat * load(t.state[2][i]) + beta3_comp * (z * z);
    t.state[0][i] = store<T>(m);
    t.state[1][i] = store<T>(d);
    t.state[2][i] = store<T>(n);
    t.state[3][i] = store<T>(-g);
    if constexpr (kUpdate) {
      float den = std::sqrt(n) + eps;
      float delta = neg_lr * m / den + neg_lr_beta2 * d / den;
      float p_w = round_to<T>(load(t.param[i]) * factor);
      t.param[i] = store<T>(add_update<kKahan>(t.kahan, i, p_w, delta) / divisor);
    }
  }
};

// StableAdamW pass 1: the moments, and this element's share of the per-tensor RMS,
// g² / max(v̂, eps²), from the float32 updated v̂.
struct StableAdamWMoments {
  AdamMoments moments;
  float eps_sq;  // float32 eps·eps

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD float apply(const ParamTensors<T>& t, int64_t i) const {
    float g = load(t.grad[i]);
    auto mv = moments.update(g, t.state[0], t.state[1], i);
    return (g * g) / (mv.v < eps_sq ? eps_sq : mv.v);
  }
};

// StableAdamW pass 2: decay with the RMS-clipped learning rate, then the update from the stored
// moments.
struct StableAdamWUpdate {
  float eps;
  float neg_lr;  // -lr_t
  float factor;

  template <bool kKahan, bool kUpdate, class T>
  OPTIMI_HD void apply(const ParamTensors<T>& t, int64_t i) const {
    if constexpr (kUpdate) {
      float m = load(t.state[0][i]);
      float v = load(t.state[1][i]);
      float p_w = round_to<T>(load(t.param[i]) * factor);
      apply_update<kKahan>(t, i, p_w, neg_lr * m / (std::sqrt(v) + eps));
    }
  }
};

}  // namespace optimi::kernels
