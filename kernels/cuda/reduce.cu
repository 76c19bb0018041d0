#include <algorithm>
#include <memory>
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

// The identity of a reduction: 0 for sums, the lowest value for max.
template <bool kMax, class A>
__device__ __forceinline__ A identity() {
  if constexpr (!kMax) {
    return A(0);
  } else if constexpr (std::is_same_v<A, double>) {
    return -INFINITY;
  } else {
    return INT64_MIN;
  }
}

// Reduced dim with inner > 1. A block covers 32 adjacent output columns (reads coalesced along
// `inner`), its kColumnRowGroups rows of threads take every kColumnRowGroups-th reduced row, and
// the first row adds up the others in order. When the columns alone leave the device idle (a bias
// gradient: thousands of rows, a few hundred columns), blockIdx.z splits the reduced rows too, and
// the splits' results go to `partials` for reduce_splits_kernel.
constexpr int kColumnRowGroups = 8;

template <bool kMax, class T>
__global__ void reduce_columns_kernel(const T* x, T* out, acc_t<T>* partials, int64_t outer,
                                      int64_t n, int64_t inner, int64_t rows_per_split) {
  using A = acc_t<T>;
  __shared__ A slots[kColumnRowGroups][33];
  const int64_t column = blockIdx.x * int64_t(32) + threadIdx.x;
  const int64_t begin = blockIdx.z * rows_per_split;
  const int64_t end = begin + rows_per_split < n ? begin + rows_per_split : n;
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    A acc = identity<kMax, A>();
    if (column < inner) {
      const T* base = x + o * n * inner + column;
      for (int64_t k = begin + threadIdx.y; k < end; k += kColumnRowGroups)
        acc = combine<kMax>(acc, A(load(base[k * inner])));
    }
    slots[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && column < inner) {
      for (int r = 1; r < kColumnRowGroups; ++r) acc = combine<kMax>(acc, slots[r][threadIdx.x]);
      if (gridDim.z == 1) {
        out[o * inner + column] = store<T>(compute_t<T>(acc));
      } else {
        partials[(blockIdx.z * outer + o) * inner + column] = acc;
      }
    }
    __syncthreads();
  }
}

// Combines the splits of reduce_columns_kernel, in order.
template <bool kMax, class T>
__global__ void reduce_splits_kernel(const acc_t<T>* partials, T* out, int64_t count, int splits) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    A acc = partials[i];
    for (int s = 1; s < splits; ++s) acc = combine<kMax>(acc, partials[s * count + i]);
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

// Blocks that keep every multiprocessor busy, for the column reduction's split.
constexpr int64_t kBusyBlocks = 1024;
// The fewest reduced rows a split of the column reduction takes.
constexpr int64_t kMinRowsPerSplit = 64;

template <bool kMax, class T>
void reduce_columns(const Tensor& x, const Extents& e, Tensor& out, cudaStream_t s) {
  const int64_t column_blocks = (e.inner + 31) / 32;
  const int64_t outer_blocks = std::min<int64_t>(e.outer, 65535);
  const int64_t wanted =
      (kBusyBlocks + column_blocks * outer_blocks - 1) / (column_blocks * outer_blocks);
  const int64_t most = std::max<int64_t>(1, e.reduced / kMinRowsPerSplit);
  const int64_t splits_wanted = std::clamp<int64_t>(std::min(wanted, most), 1, 65535);
  const int64_t rows_per_split = (e.reduced + splits_wanted - 1) / splits_wanted;
  const int64_t splits = std::max<int64_t>(1, (e.reduced + rows_per_split - 1) / rows_per_split);
  std::unique_ptr<Storage> partials;
  if (splits > 1) {
    partials = std::make_unique<Storage>(size_t(splits * e.outer * e.inner) * sizeof(acc_t<T>),
                                         x.device());
  }
  auto* p = partials ? static_cast<acc_t<T>*>(partials->data()) : nullptr;
  const dim3 grid{unsigned(column_blocks), unsigned(outer_blocks), unsigned(splits)};
  reduce_columns_kernel<kMax><<<grid, dim3(32, kColumnRowGroups), 0, s>>>(
      ptr<const T>(x), ptr<T>(out), p, e.outer, e.reduced, e.inner,
      std::max<int64_t>(rows_per_split, 1));
  OPTIMI_CUDA_CHECK_LAUNCH("reduce_columns_kernel");
  if (splits > 1) {
    reduce_splits_kernel<kMax><<<grid_for(e.outer * e.inner), kThreads, 0, s>>>(
        p, ptr<T>(out), e.outer * e.inner, int(splits));
    OPTIMI_CUDA_CHECK_LAUNCH("reduce_splits_kernel");
  }
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
        reduce_columns<kMax, T>(x, e, out, s);
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
