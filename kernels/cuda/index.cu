#include <type_traits>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

// Gather and scatter-add along one dimension of contiguous tensors viewed as [outer, size, inner].
namespace optimi::kernels::cuda {
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

// A thread per output element: out[o, j, c] = src[o, index[j], c].
template <class T>
__global__ void index_select_kernel(const T* src, const int64_t* index, T* out, int64_t outer,
                                    int64_t size, int64_t n, int64_t inner) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < outer * n * inner;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % inner;
    const int64_t j = (e / inner) % n;
    const int64_t o = e / (inner * n);
    out[e] = src[(o * size + index[j]) * inner + c];
  }
}

// A thread per source element; repeated indices meet in atomic additions.
template <class T>
__global__ void index_add_kernel(T* dst, const int64_t* index, const T* src, int64_t outer,
                                 int64_t size, int64_t n, int64_t inner) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < outer * n * inner;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % inner;
    const int64_t j = (e / inner) % n;
    const int64_t o = e / (inner * n);
    atomic_add(dst + (o * size + index[j]) * inner + c, load(src[e]));
  }
}

}  // namespace

void index_select(const Tensor& src, int64_t dim, const Tensor& index, Tensor& out) {
  const Extents e = extents(src.shape(), dim);
  const int64_t n = index.numel();
  if (e.outer * n * e.inner == 0) return;
  DeviceGuard guard(out.device());
  visit_dtype("index_select", src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<<<grid_for(e.outer * n * e.inner), kThreads, 0, stream(out.device())>>>(
        ptr<const T>(src), ptr<const int64_t>(index), ptr<T>(out), e.outer,
        src.shape()[size_t(dim)], n, e.inner);
    OPTIMI_CUDA_CHECK_LAUNCH("index_select_kernel");
  });
}

void index_add(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  const Extents e = extents(dst.shape(), dim);
  const int64_t n = index.numel();
  if (e.outer * n * e.inner == 0) return;
  if (dst.dtype() == DType::Bool)
    throw std::invalid_argument("index_add: not supported for bool tensors");
  DeviceGuard guard(dst.device());
  visit_dtype("index_add", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      index_add_kernel<<<grid_for(e.outer * n * e.inner), kThreads, 0, stream(dst.device())>>>(
          ptr<T>(dst), ptr<const int64_t>(index), ptr<const T>(src), e.outer,
          dst.shape()[size_t(dim)], n, e.inner);
      OPTIMI_CUDA_CHECK_LAUNCH("index_add_kernel");
    }
  });
}

}  // namespace optimi::kernels::cuda
