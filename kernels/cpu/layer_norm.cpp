#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"
#include "kernels/cpu/row_reduce.hpp"

namespace optimi::kernels::cpu {
namespace {

// p, or a row of `cols` copies of v where p is null (no weight or bias): every row then runs the
// one code path, on lanes for float32 (a row of a few dozen elements would otherwise end in
// scalar iterations, a quarter of a d = 20 row).
template <class C>
const C* or_filled(const C* p, int64_t cols, C v, std::vector<C>& storage) {
  if (p) return p;
  storage.assign(size_t(cols), v);
  return storage.data();
}

template <class T>
void forward(const T* x, const compute_t<T>* weight, const compute_t<T>* bias, compute_t<T> eps,
             T* y, compute_t<T>* mean, compute_t<T>* rstd, int64_t rows, int64_t cols) {
  using C = compute_t<T>;
  std::vector<C> ones, zeros;
  const C* w = or_filled(weight, cols, C(1), ones);
  const C* b = or_filled(bias, cols, C(0), zeros);
  parallel_for(rows, worth_sharing(rows * cols), [&](int64_t r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const C mu = row_total(xr, cols) / C(cols);
    // Two passes: the centred sum of squares does not cancel catastrophically.
    const C sq = row_sum(
        cols,
        [mu](auto v) {
          const auto d = v - mu;
          return d * d;
        },
        xr);
    const C rs = C(1) / std::sqrt(sq / C(cols) + eps);
    mean[r] = mu;
    rstd[r] = rs;
    row_map(
        cols, yr, [mu, rs](auto v, auto wj, auto bj) { return (v - mu) * rs * wj + bj; }, xr, w, b);
  });
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight; dweight and dbias
// reduce over rows.
template <class T>
void backward(const T* dy, const T* x, const compute_t<T>* mean, const compute_t<T>* rstd,
              const compute_t<T>* weight, T* dx, compute_t<T>* dw, compute_t<T>* db, int64_t rows,
              int64_t cols) {
  using C = compute_t<T>;
  std::vector<C> ones;
  const C* w = or_filled(weight, cols, C(1), ones);
  const bool want_params = dw || db;
  // Partial sums of fixed parts of the rows, added in part order: the results depend neither on
  // the number of threads nor on whether the rows were shared out at all (which the team decides
  // by timing, see worth_sharing). At least 64 rows a part, at most 64 parts.
  const int64_t part_rows = std::max<int64_t>(64, (rows + 63) / 64);
  const int64_t parts = (rows + part_rows - 1) / part_rows;
  // A cache line between the sums of neighbouring parts: two threads add to theirs on every row.
  const int64_t stride = cols + 64 / int64_t(sizeof(C));
  std::vector<C> partial_w(want_params ? parts * stride : 0, C(0));
  std::vector<C> partial_b(want_params ? parts * stride : 0, C(0));
  parallel_for(parts, worth_sharing(rows * cols), [&](int64_t part) {
    C* pw = want_params ? partial_w.data() + part * stride : nullptr;
    C* pb = want_params ? partial_b.data() + part * stride : nullptr;
    for (int64_t r = part * part_rows; r < std::min(rows, (part + 1) * part_rows); ++r) {
      const T* xr = x + r * cols;
      const T* gr = dy + r * cols;
      const C mu = mean[r];
      const C rs = rstd[r];
      if (want_params) {
        // A plain loop: on lanes, the next row would load the partial sums through the masked
        // stores of this one, which do not forward to loads (1% slower at d = 20).
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) {
          const C g = load(gr[j]);
          pw[j] += g * (load(xr[j]) - mu) * rs;
          pb[j] += g;
        }
      }
      if (!dx) continue;
      // g = dy * weight; xhat = (x - mu) * rs.
      const C a = row_sum(
                      cols, [](auto g, auto wj) { return g * wj; }, gr, w) /
                  C(cols);
      const C c = row_sum(
                      cols, [mu, rs](auto g, auto v, auto wj) { return g * wj * ((v - mu) * rs); },
                      gr, xr, w) /
                  C(cols);
      row_map(
          cols, dx + r * cols,
          [mu, rs, a, c](auto g, auto v, auto wj) { return rs * (g * wj - a - (v - mu) * rs * c); },
          gr, xr, w);
    }
  });
  if (!want_params) return;
  for (int64_t part = 0; part < parts; ++part) {
    for (int64_t j = 0; j < cols; ++j) {
      if (dw) dw[j] += partial_w[part * stride + j];
      if (db) db[j] += partial_b[part * stride + j];
    }
  }
}

template <class C>
C* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<C>() : nullptr;
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        Tensor& y, Tensor& mean, Tensor& rstd) {
  visit_floating("layer_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const int64_t rows = mean.numel();
    const int64_t cols = rows == 0 ? 0 : x.numel() / rows;
    forward(x.data<T>(), data_or_null<C>(weight), data_or_null<C>(bias), C(eps), y.data<T>(),
            mean.data<C>(), rstd.data<C>(), rows, cols);
  });
}

void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& weight, Tensor& grad_x,
                         Tensor& grad_weight, Tensor& grad_bias) {
  visit_floating("layer_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const int64_t rows = mean.numel();
    const int64_t cols = rows == 0 ? 0 : x.numel() / rows;
    C* dw = data_or_null<C>(grad_weight);
    C* db = data_or_null<C>(grad_bias);
    if (dw) std::fill(dw, dw + cols, C(0));
    if (db) std::fill(db, db + cols, C(0));
    backward(grad_y.data<T>(), x.data<T>(), mean.data<C>(), rstd.data<C>(), data_or_null<C>(weight),
             data_or_null<T>(grad_x), dw, db, rows, cols);
  });
}

}  // namespace optimi::kernels::cpu
