#include "kernels/cpu/index.hpp"

#include <cstring>

#include "kernels/cpu/loops.hpp"

namespace optimi::kernels::cpu {
namespace {

struct Extents {
  int64_t outer = 1;
  int64_t inner = 1;
};

Extents extents(const Shape& shape, int64_t dim) {
  Extents e;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    if (d < dim) e.outer *= shape[size_t(d)];
    if (d > dim) e.inner *= shape[size_t(d)];
  }
  return e;
}

}  // namespace

void index_select(const Tensor& src, int64_t dim, const Tensor& index, Tensor& out) {
  Extents e = extents(src.shape(), dim);
  const int64_t size = src.shape()[size_t(dim)];
  const int64_t n = index.numel();
  const int64_t* idx = index.data<int64_t>();
  // A row of `inner` elements moves as bytes, whatever the dtype.
  const int64_t row_bytes = e.inner * element_size(src.dtype());
  const char* from = static_cast<const char*>(src.data_ptr());
  char* to = static_cast<char*>(out.data_ptr());
  parallel_for(e.outer * n, worth_sharing(e.outer * n * e.inner), [&](int64_t r) {
    int64_t o = r / n;
    int64_t j = r % n;
    std::memcpy(to + r * row_bytes, from + (o * size + idx[j]) * row_bytes, size_t(row_bytes));
  });
}

void index_add(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  Extents e = extents(dst.shape(), dim);
  const int64_t size = dst.shape()[size_t(dim)];
  const int64_t n = index.numel();
  const int64_t* idx = index.data<int64_t>();
  // Repeated indices collide on a destination row, so threads split the columns instead:
  // column blocks of different threads never overlap.
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (e.inner + kBlock - 1) / kBlock;
  visit_dtype("index_add", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = dst.data<T>();
    const T* in = src.data<T>();
    parallel_for(e.outer * blocks, worth_sharing(e.outer * n * e.inner), [&](int64_t task) {
      int64_t o = task / blocks;
      int64_t begin = (task % blocks) * kBlock;
      int64_t end = std::min(e.inner, begin + kBlock);
      for (int64_t j = 0; j < n; ++j) {
        T* d = out + (o * size + idx[j]) * e.inner;
        const T* s = in + (o * n + j) * e.inner;
        for (int64_t c = begin; c < end; ++c) d[c] = store<T>(load(d[c]) + load(s[c]));
      }
    });
  });
}

}  // namespace optimi::kernels::cpu
