#include <algorithm>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"

namespace optimi::kernels::cpu {

void embedding_forward(const Tensor& indices, const Tensor& weight, Tensor& out) {
  visit_floating("embedding", weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = indices.numel();
    const int64_t dim = weight.numel() == 0 ? 0 : weight.numel() / weight.shape()[0];
    const int64_t* idx = indices.data<int64_t>();
    const T* w = weight.data<T>();
    T* o = out.data<T>();
    parallel_for(n, worth_sharing(n * dim), [&](int64_t i) {
      std::copy(w + idx[i] * dim, w + (idx[i] + 1) * dim, o + i * dim);
    });
  });
}

// Sequential over indices (repeated indices would race), vectorised along each row; the
// gradient accumulates in the compute type so bfloat16 rows do not lose small contributions.
void embedding_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_weight) {
  visit_floating("embedding", grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const int64_t n = indices.numel();
    const int64_t dim = n == 0 ? 0 : grad_out.numel() / n;
    const int64_t* idx = indices.data<int64_t>();
    const T* g = grad_out.data<T>();
    C* gw = grad_weight.data<C>();
    for (int64_t i = 0; i < n; ++i) {
      C* row = gw + idx[i] * dim;
      const T* gi = g + i * dim;
#pragma omp simd
      for (int64_t j = 0; j < dim; ++j) row[j] += load(gi[j]);
    }
  });
}

}  // namespace optimi::kernels::cpu
