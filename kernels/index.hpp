#pragma once

#include <cstdint>

#include "optimi/tensor.hpp"

// Device-neutral gather and scatter-add along one dimension, the kernels of index_select. Every
// tensor is contiguous and on one device, viewed as [outer, size, inner] around that dimension;
// indices are Int64 and already bounds-checked by the caller.
namespace optimi::kernels {

// out[o, j, :] = src[o, index[j], :]; out has src's dtype and index.numel() rows.
void index_select(const Tensor& src, int64_t dim, const Tensor& index, Tensor& out);
// dst[o, index[j], :] += src[o, j, :]; repeated indices accumulate.
void index_add(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace optimi::kernels
