#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"

namespace optimi::kernels::cpu {

// One generator stream, drawn in element order, so a seed gives the same mask on any number of
// threads.
void dropout_mask(Tensor& mask, double p, Generator& gen) {
  uint8_t* m = mask.data<uint8_t>();
  const int64_t n = mask.numel();
  for (int64_t i = 0; i < n; ++i) m[i] = gen.uniform() >= p ? 1 : 0;
}

void dropout_apply(const Tensor& x, const Tensor& mask, double scale, Tensor& out) {
  visit_floating("dropout", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* xs = x.data<T>();
    const uint8_t* m = mask.data<uint8_t>();
    T* o = out.data<T>();
    const C sc = C(scale);
    const int64_t n = x.numel();
    parallel_ranges(n, worth_sharing(n), [&](int64_t begin, int64_t end) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) o[i] = store<T>(load(xs[i]) * (m[i] ? sc : C(0)));
    });
  });
}

}  // namespace optimi::kernels::cpu
