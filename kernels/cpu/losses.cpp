#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"
#include "kernels/cpu/row_reduce.hpp"

namespace optimi::kernels::cpu {
// Losses are summed in double (chunked_sum: independent of the thread count).

double cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& probs) {
  double total = 0;
  visit_floating("cross_entropy", logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const int64_t rows = targets.numel();
    const int64_t classes = rows == 0 ? 0 : logits.numel() / rows;
    const T* x = logits.data<T>();
    const int64_t* t = targets.data<int64_t>();
    C* p = probs.data<C>();
    std::vector<double> row_loss(rows);
    parallel_for(rows, worth_sharing(rows * classes), [&](int64_t r) {
      const T* xr = x + r * classes;
      const SoftmaxRow<C> s = softmax_row(classes, p + r * classes, xr, C(1));
      row_loss[r] = double(s.max + std::log(s.sum)) - double(load(xr[t[r]]));
    });
    total = chunked_sum<double>(rows, [&](int64_t begin, int64_t end) {
      double s = 0;
      for (int64_t r = begin; r < end; ++r) s += row_loss[r];
      return s;
    });
  });
  return total;
}

void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double scale,
                            Tensor& grad_logits) {
  visit_floating("cross_entropy", grad_logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const int64_t rows = targets.numel();
    const int64_t classes = rows == 0 ? 0 : probs.numel() / rows;
    const C* p = probs.data<C>();
    const int64_t* t = targets.data<int64_t>();
    T* g = grad_logits.data<T>();
    const C sc = C(scale);
    parallel_for(rows, worth_sharing(rows * classes), [&](int64_t r) {
      const C* pr = p + r * classes;
      T* gr = g + r * classes;
      row_map(
          classes, gr, [sc](auto pj) { return pj * sc; }, pr);
      const int64_t target = t[r];
      gr[target] = store<T>((pr[target] - C(1)) * sc);
    });
  });
}

double mse_forward(const Tensor& input, const Tensor& target) {
  double total = 0;
  visit_floating("mse_loss", input.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* a = input.data<T>();
    const T* b = target.data<T>();
    total = chunked_sum<double>(input.numel(), [&](int64_t begin, int64_t end) {
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = begin; i < end; ++i) {
        const double d = double(load(a[i])) - double(load(b[i]));
        s += d * d;
      }
      return s;
    });
  });
  return total;
}

void mse_backward(const Tensor& input, const Tensor& target, double scale, Tensor& grad_input,
                  Tensor& grad_target) {
  visit_floating("mse_loss", input.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* a = input.data<T>();
    const T* b = target.data<T>();
    T* ga = grad_input.defined() ? grad_input.data<T>() : nullptr;
    T* gb = grad_target.defined() ? grad_target.data<T>() : nullptr;
    const C sc = C(scale);
    const int64_t n = input.numel();
    parallel_ranges(n, worth_sharing(n), [&](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const C g = (load(a[i]) - load(b[i])) * sc;
        if (ga) ga[i] = store<T>(g);
        if (gb) gb[i] = store<T>(-g);
      }
    });
  });
}

}  // namespace optimi::kernels::cpu
