#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"
#include "kernels/cpu/row_reduce.hpp"
#include "kernels/fast_math.hpp"

namespace optimi::kernels::cpu {
namespace {

// Rows are contiguous: one pass per reduction, vectorised along the row.
template <class T>
void forward_last_dim(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  using C = compute_t<T>;
  parallel_region(worth_sharing(rows * n), [&](const Team& team) {
    std::vector<C> buf(n);
    team.for_static(rows, [&](int64_t r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      const SoftmaxRow<C> s = softmax_row(n, buf.data(), xr, C(1));
      if (log) {
        const C shift = s.max + std::log(s.sum);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) yr[j] = store<T>(load(xr[j]) - shift);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) yr[j] = store<T>(buf[j]);
      }
    });
  });
}

// Strided dim: reduce over `size` for all `inner` columns at once, so the inner loops stay
// contiguous.
template <class T>
void forward_strided(const T* x, T* y, int64_t outer, int64_t size, int64_t inner, bool log) {
  using C = compute_t<T>;
  parallel_region(worth_sharing(outer * size * inner), [&](const Team& team) {
    std::vector<C> m(inner), s(inner);
    team.for_static(outer, [&](int64_t o) {
      const T* xo = x + o * size * inner;
      T* yo = y + o * size * inner;
      std::fill(m.begin(), m.end(), -std::numeric_limits<C>::infinity());
      std::fill(s.begin(), s.end(), C(0));
      for (int64_t k = 0; k < size; ++k) {
        for (int64_t i = 0; i < inner; ++i) {
          const C v = load(xo[k * inner + i]);
          m[i] = v > m[i] ? v : m[i];
        }
      }
      for (int64_t k = 0; k < size; ++k) {
        for (int64_t i = 0; i < inner; ++i) s[i] += fast_exp(load(xo[k * inner + i]) - m[i]);
      }
      for (int64_t i = 0; i < inner; ++i) {
        if (log) {
          s[i] = m[i] + std::log(s[i]);
        } else {
          s[i] = C(1) / s[i];
        }
      }
      for (int64_t k = 0; k < size; ++k) {
        for (int64_t i = 0; i < inner; ++i) {
          const C v = load(xo[k * inner + i]);
          yo[k * inner + i] = store<T>(log ? v - s[i] : fast_exp(v - m[i]) * s[i]);
        }
      }
    });
  });
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <class T>
void backward_last_dim(const T* g, const T* y, T* dx, int64_t rows, int64_t n, bool log) {
  using C = compute_t<T>;
  parallel_for(rows, worth_sharing(rows * n), [&](int64_t r) {
    const T* gr = g + r * n;
    const T* yr = y + r * n;
    T* dr = dx + r * n;
    if (log) {
      const C acc = row_total(gr, n);
      row_map(
          n, dr, [acc](auto gj, auto yj) { return gj - fast_exp(yj) * acc; }, gr, yr);
    } else {
      const C acc = row_sum(
          n, [](auto gj, auto yj) { return gj * yj; }, gr, yr);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) dr[j] = store<T>(load(yr[j]) * (load(gr[j]) - acc));
    }
  });
}

template <class T>
void backward_strided(const T* g, const T* y, T* dx, int64_t outer, int64_t size, int64_t inner,
                      bool log) {
  using C = compute_t<T>;
  parallel_region(worth_sharing(outer * size * inner), [&](const Team& team) {
    std::vector<C> acc(inner);
    team.for_static(outer, [&](int64_t o) {
      const int64_t base = o * size * inner;
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t k = 0; k < size; ++k) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t at = base + k * inner + i;
          acc[i] += log ? load(g[at]) : load(g[at]) * load(y[at]);
        }
      }
      for (int64_t k = 0; k < size; ++k) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t at = base + k * inner + i;
          const C gv = load(g[at]);
          const C yv = load(y[at]);
          dx[at] = store<T>(log ? gv - fast_exp(yv) * acc[i] : yv * (gv - acc[i]));
        }
      }
    });
  });
}

}  // namespace

void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t size, int64_t inner,
                     bool log) {
  visit_floating(log ? "log_softmax" : "softmax", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (inner == 1) {
      forward_last_dim(x.data<T>(), y.data<T>(), outer, size, log);
    } else {
      forward_strided(x.data<T>(), y.data<T>(), outer, size, inner, log);
    }
  });
}

void softmax_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x, int64_t outer,
                      int64_t size, int64_t inner, bool log) {
  visit_floating(log ? "log_softmax" : "softmax", y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (inner == 1) {
      backward_last_dim(grad_y.data<T>(), y.data<T>(), grad_x.data<T>(), outer, size, log);
    } else {
      backward_strided(grad_y.data<T>(), y.data<T>(), grad_x.data<T>(), outer, size, inner, log);
    }
  });
}

}  // namespace optimi::kernels::cpu
