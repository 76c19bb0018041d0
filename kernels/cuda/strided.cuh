#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "optimi/tensor.hpp"

// Strided N-d indexing for the element-wise and copy kernels: operands broadcast to the output's
// shape, size-1 dims dropped and neighbouring dims that are contiguous for every operand merged
// (so a contiguous op is one flat dim), then each thread turns its linear index into one offset
// per operand.
namespace optimi::kernels::cuda {

constexpr int kMaxDims = 12;  // dims left after merging; more throws

template <int N>
struct Layout {
  int ndim = 1;
  int64_t numel = 0;
  int64_t shape[kMaxDims] = {};       // merged, outermost first
  int64_t strides[N][kMaxDims] = {};  // per operand, in elements; 0 on broadcast dims

  // Element offsets of linear index i (row-major over `shape`) in every operand.
  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
    if (ndim == 1) {
      for (int k = 0; k < N; ++k) off[k] = i * strides[k][0];
      return;
    }
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < N; ++k) off[k] += idx * strides[k][d];
    }
  }
};

// Operand 0 is the output; the others broadcast to its shape.
template <int N>
Layout<N> make_layout(const char* op, const std::array<const Tensor*, N>& operands) {
  const Shape& out = operands[0]->shape();
  const int64_t nd = int64_t(out.size());
  Layout<N> l;
  l.numel = shape_numel(out);
  l.ndim = 0;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t size = out[size_t(i)];
    if (size == 1) continue;
    int64_t stride[N];
    for (int k = 0; k < N; ++k) {
      const Shape& s = operands[k]->shape();
      const int64_t j = i - (nd - int64_t(s.size()));  // the operand's own dim, if it has one
      stride[k] = j >= 0 && s[size_t(j)] != 1 ? operands[k]->strides()[size_t(j)] : 0;
    }
    bool merge = l.ndim > 0;
    for (int k = 0; k < N && merge; ++k) merge = l.strides[k][l.ndim - 1] == stride[k] * size;
    if (merge) {
      l.shape[l.ndim - 1] *= size;
      for (int k = 0; k < N; ++k) l.strides[k][l.ndim - 1] = stride[k];
      continue;
    }
    if (l.ndim == kMaxDims)
      throw std::invalid_argument(std::string(op) + ": more than " + std::to_string(kMaxDims) +
                                  " non-mergeable dims for CUDA, shape " + shape_str(out));
    l.shape[l.ndim] = size;
    for (int k = 0; k < N; ++k) l.strides[k][l.ndim] = stride[k];
    ++l.ndim;
  }
  if (l.ndim == 0) {
    l.ndim = 1;
    l.shape[0] = 1;
    for (int k = 0; k < N; ++k) l.strides[k][0] = 0;
  }
  return l;
}

}  // namespace optimi::kernels::cuda
