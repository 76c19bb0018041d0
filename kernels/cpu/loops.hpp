#pragma once

#include <algorithm>
#include <array>
#include <vector>

#include "kernels/cpu/thread_pool.hpp"
#include "kernels/dtype_dispatch.hpp"
#include "optimi/tensor.hpp"

// Strided N-d iteration shared by the CPU element-wise and copy kernels: operands are broadcast
// to one shape, dimensions that are contiguous for every operand are merged, and the innermost
// dimension becomes a flat loop the compiler vectorises.
namespace optimi::kernels::cpu {

// Σ partial(begin, end) over fixed chunks of [0, n), the chunks shared out on the team and added
// in order: the result does not depend on the number of threads.
template <class Acc, class F>
Acc chunked_sum(int64_t n, F&& partial) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Acc> sums(size_t(chunks), Acc(0));
  parallel_for(chunks, worth_sharing(n), [&](int64_t c) {
    sums[size_t(c)] = partial(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
  Acc total = 0;
  for (Acc s : sums) total += s;
  return total;
}

// The element offset of every matrix of a [B.., rows, cols] tensor, batch index row-major (batch
// dims may have stride 0).
inline std::vector<int64_t> matrix_offsets(const Tensor& t) {
  const int64_t batch_dims = t.dim() - 2;
  int64_t count = 1;
  for (int64_t d = 0; d < batch_dims; ++d) count *= t.shape()[size_t(d)];
  std::vector<int64_t> offsets(size_t(count), 0);
  for (int64_t i = 0; i < count; ++i) {
    int64_t rest = i;
    for (int64_t d = batch_dims - 1; d >= 0; --d) {
      offsets[size_t(i)] += (rest % t.shape()[size_t(d)]) * t.strides()[size_t(d)];
      rest /= t.shape()[size_t(d)];
    }
  }
  return offsets;
}

template <int N>
struct StridedLayout {
  Shape shape;                   // merged, outermost first; at least one dim
  std::array<Shape, N> strides;  // per operand, in elements; 0 on broadcast dims
  std::array<char*, N> base;     // first element of each operand
  std::array<int64_t, N> itemsize;
};

// Operand 0 is the output; the others broadcast to its shape.
template <int N>
StridedLayout<N> make_layout(const std::array<const Tensor*, N>& ops) {
  StridedLayout<N> l;
  const Shape& out = ops[0]->shape();
  int64_t nd = int64_t(out.size());
  Shape shape = out;
  std::array<Shape, N> strides;
  for (int k = 0; k < N; ++k) {
    const Shape& s = ops[k]->shape();
    const Shape& st = ops[k]->strides();
    int64_t off = nd - int64_t(s.size());
    strides[k].assign(size_t(nd), 0);
    for (int64_t i = 0; i < int64_t(s.size()); ++i) {
      if (s[size_t(i)] != 1) strides[k][size_t(off + i)] = st[size_t(i)];
    }
    l.base[k] = static_cast<char*>(ops[k]->data_ptr());
    l.itemsize[k] = element_size(ops[k]->dtype());
  }
  // Drop size-1 dims, then merge neighbours that are contiguous for every operand.
  Shape ms;
  std::array<Shape, N> mst;
  for (int64_t i = 0; i < nd; ++i) {
    if (shape[size_t(i)] == 1) continue;
    bool merge = !ms.empty();
    for (int k = 0; k < N && merge; ++k)
      merge = mst[k].back() == strides[k][size_t(i)] * shape[size_t(i)];
    if (merge) {
      ms.back() *= shape[size_t(i)];
      for (int k = 0; k < N; ++k) mst[k].back() = strides[k][size_t(i)];
    } else {
      ms.push_back(shape[size_t(i)]);
      for (int k = 0; k < N; ++k) mst[k].push_back(strides[k][size_t(i)]);
    }
  }
  if (ms.empty()) {
    ms.push_back(1);
    for (int k = 0; k < N; ++k) mst[k].push_back(0);
  }
  l.shape = std::move(ms);
  l.strides = std::move(mst);
  return l;
}

// Calls row(ptrs, inner_strides, n) for every innermost row, rows spread over threads.
template <int N, class Row>
void for_each_row(const StridedLayout<N>& l, Row&& row) {
  const int64_t nd = int64_t(l.shape.size());
  const int64_t inner = l.shape.back();
  int64_t rows = 1;
  for (int64_t i = 0; i + 1 < nd; ++i) rows *= l.shape[size_t(i)];
  std::array<int64_t, N> inner_stride;
  for (int k = 0; k < N; ++k) inner_stride[k] = l.strides[k].back();
  if (rows == 1) {
    // One long row: one contiguous share per thread.
    parallel_ranges(inner, worth_sharing(inner), [&](int64_t begin, int64_t end) {
      if (end == begin) return;
      std::array<char*, N> p;
      for (int k = 0; k < N; ++k) p[k] = l.base[k] + begin * inner_stride[k] * l.itemsize[k];
      row(p, inner_stride, end - begin);
    });
    return;
  }
  parallel_for(rows, worth_sharing(rows * inner), [&](int64_t r) {
    std::array<char*, N> p = l.base;
    int64_t rem = r;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t idx = rem % l.shape[size_t(d)];
      rem /= l.shape[size_t(d)];
      for (int k = 0; k < N; ++k) p[k] += idx * l.strides[k][size_t(d)] * l.itemsize[k];
    }
    row(p, inner_stride, inner);
  });
}

}  // namespace optimi::kernels::cpu
