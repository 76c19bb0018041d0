#include <type_traits>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

// Sum and max over one dimension or all elements. Floating types accumulate in double and
// integers in int64, as on the CPU; every reduction combines its partial results in a fixed order,
// so results do not change from run to run.
namespace optimi::kernels::cuda {
namespace {

template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, int64_t>, int64_t, double>;

template <bool kMax, class A>
__device__ __forceinline__ A combine(A acc, A v) {
  if constexpr (kMax) {
    return (v > acc || v != v) ? v : acc;  // NaN propagates, as in PyTorch
  } else {
    return acc + v;
  }
}

// Reduced dim innermost (inner == 1): a block per row.
template <bool kMax, class T>
__global__ void reduce_rows_kernel(const T* x, T* out, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * n;
    A acc = kMax ? A(load(row[0])) : A(0);
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) acc = combine<kMax>(acc, A(load(row[k])));
    acc = kMax ? block_max(acc) : block_sum(acc);
    if (threadIdx.x == 0) out[r] = store<T>(compute_t<T>(acc));
  }
}

// Reduced dim with inner > 1: a thread per output element, reads coalesced along `inner`.
template <bool kMax, class T>
__global__ void reduce_columns_kernel(const T* x, T* out, int64_t outer, int64_t n, int64_t inner) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < outer * inner;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T* base = x + (i / inner) * n * inner + i % inner;
    A acc = kMax ? A(load(base[0])) : A(0);
    for (int64_t k = kMax ? 1 : 0; k < n; ++k) acc = combine<kMax>(acc, A(load(base[k * inner])));
    out[i] = store<T>(compute_t<T>(acc));
  }
}

// Sum of everything: each block sums a grid-stride share into partials[block]; then one block
// adds the partials in order.
template <class T>
__global__ void sum_partials_kernel(const T* x, int64_t n, acc_t<T>* partials) {
  using A = acc_t<T>;
  A acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    acc += A(load(x[i]));
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <class T>
__global__ void sum_final_kernel(const acc_t<T>* partials, int count, T* out) {
  using A = acc_t<T>;
  A acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = store<T>(compute_t<T>(acc));
}

struct Extents {
  int64_t outer = 1, reduced = 1, inner = 1;
};

Extents extents(const Tensor& x, int64_t dim) {
  Extents e;
  for (int64_t i = 0; i < x.dim(); ++i) {
    const int64_t s = x.shape()[size_t(i)];
    if (i < dim) e.outer *= s;
    if (i == dim) e.reduced = s;
    if (i > dim) e.inner *= s;
  }
  return e;
}

template <bool kMax>
void reduce_dim(const char* op, const Tensor& x, int64_t dim, Tensor& out) {
  if (x.dtype() == DType::Bool)
    throw std::invalid_argument(std::string(op) + ": not supported for bool tensors");
  DeviceGuard guard(x.device());
  const Extents e = extents(x, dim);
  visit_dtype(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      cudaStream_t s = stream(x.device());
      if (e.inner == 1) {
        reduce_rows_kernel<kMax><<<grid_for(e.outer, 1), kThreads, 0, s>>>(
            ptr<const T>(x), ptr<T>(out), e.outer, e.reduced);
        OPTIMI_CUDA_CHECK_LAUNCH("reduce_rows_kernel");
      } else {
        reduce_columns_kernel<kMax><<<grid_for(e.outer * e.inner), kThreads, 0, s>>>(
            ptr<const T>(x), ptr<T>(out), e.outer, e.reduced, e.inner);
        OPTIMI_CUDA_CHECK_LAUNCH("reduce_columns_kernel");
      }
    }
  });
}

}  // namespace

void reduce_sum(const Tensor& x, int64_t dim, Tensor& out) {
  reduce_dim<false>("sum", x, dim, out);
}

void reduce_max(const Tensor& x, int64_t dim, Tensor& out) {
  reduce_dim<true>("max", x, dim, out);
}

void reduce_sum_all(const Tensor& x, Tensor& out) {
  if (x.dtype() == DType::Bool) throw std::invalid_argument("sum: not supported for bool tensors");
  const Device device = x.device();
  DeviceGuard guard(device);
  visit_dtype("sum", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      const unsigned blocks = std::min(grid_for(x.numel()), 1024u);
      Storage partials(blocks * sizeof(acc_t<T>), device);
      auto* p = static_cast<acc_t<T>*>(partials.data());
      cudaStream_t s = stream(device);
      sum_partials_kernel<<<blocks, kThreads, 0, s>>>(ptr<const T>(x), x.numel(), p);
      OPTIMI_CUDA_CHECK_LAUNCH("sum_partials_kernel");
      sum_final_kernel<<<1, 1024, 0, s>>>(p, int(blocks), ptr<T>(out));
      OPTIMI_CUDA_CHECK_LAUNCH("sum_final_kernel");
    }
  });
}

}  // namespace optimi::kernels::cuda
