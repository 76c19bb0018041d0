#include <cmath>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "kernels/fast_math.hpp"

// softmax and log_softmax over the middle axis of x viewed as [outer, size, inner], with the
// CPU kernels' arithmetic (fast_exp included), so both devices agree to rounding.
namespace optimi::kernels::cuda {
namespace {

// inner == 1: a block per contiguous row, reductions across the block.
template <class T>
__global__ void forward_rows_kernel(const T* x, T* y, int64_t rows, int64_t n, bool log) {
  using C = compute_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    C m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const C v = load(xr[j]);
      m = v > m ? v : m;
    }
    m = block_max(m);
    C s = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += fast_exp(C(load(xr[j])) - m);
    s = block_sum(s);
    if (log) {
      const C shift = m + std::log(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = store<T>(load(xr[j]) - shift);
    } else {
      const C inv = C(1) / s;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        yr[j] = store<T>(fast_exp(C(load(xr[j])) - m) * inv);
    }
  }
}

// inner > 1: a thread per (outer, inner) column, reads coalesced along inner.
template <class T>
__global__ void forward_columns_kernel(const T* x, T* y, int64_t outer, int64_t n, int64_t inner,
                                       bool log) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < outer * inner;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (i / inner) * n * inner + i % inner;
    C m = -INFINITY;
    for (int64_t k = 0; k < n; ++k) {
      const C v = load(x[base + k * inner]);
      m = v > m ? v : m;
    }
    C s = 0;
    for (int64_t k = 0; k < n; ++k) s += fast_exp(C(load(x[base + k * inner])) - m);
    const C shift = m + std::log(s);
    const C inv = C(1) / s;
    for (int64_t k = 0; k < n; ++k) {
      const C v = load(x[base + k * inner]);
      y[base + k * inner] = store<T>(log ? v - shift : fast_exp(v - m) * inv);
    }
  }
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <class T>
__global__ void backward_rows_kernel(const T* g, const T* y, T* dx, int64_t rows, int64_t n,
                                     bool log) {
  using C = compute_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = g + r * n;
    const T* yr = y + r * n;
    T* dr = dx + r * n;
    C acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      acc += log ? C(load(gr[j])) : C(load(gr[j])) * C(load(yr[j]));
    acc = block_sum(acc);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const C gv = load(gr[j]);
      const C yv = load(yr[j]);
      dr[j] = store<T>(log ? gv - fast_exp(yv) * acc : yv * (gv - acc));
    }
  }
}

template <class T>
__global__ void backward_columns_kernel(const T* g, const T* y, T* dx, int64_t outer, int64_t n,
                                        int64_t inner, bool log) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < outer * inner;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (i / inner) * n * inner + i % inner;
    C acc = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t at = base + k * inner;
      acc += log ? C(load(g[at])) : C(load(g[at])) * C(load(y[at]));
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t at = base + k * inner;
      const C gv = load(g[at]);
      const C yv = load(y[at]);
      dx[at] = store<T>(log ? gv - fast_exp(yv) * acc : yv * (gv - acc));
    }
  }
}

}  // namespace

void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t size, int64_t inner,
                     bool log) {
  if (outer * size * inner == 0) return;
  DeviceGuard guard(y.device());
  cudaStream_t s = stream(y.device());
  visit_floating(log ? "log_softmax" : "softmax", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (inner == 1) {
      forward_rows_kernel<<<grid_for(outer, 1), kThreads, 0, s>>>(ptr<const T>(x), ptr<T>(y), outer,
                                                                  size, log);
      OPTIMI_CUDA_CHECK_LAUNCH("softmax forward_rows_kernel");
    } else {
      forward_columns_kernel<<<grid_for(outer * inner), kThreads, 0, s>>>(
          ptr<const T>(x), ptr<T>(y), outer, size, inner, log);
      OPTIMI_CUDA_CHECK_LAUNCH("softmax forward_columns_kernel");
    }
  });
}

void softmax_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x, int64_t outer,
                      int64_t size, int64_t inner, bool log) {
  if (outer * size * inner == 0) return;
  DeviceGuard guard(y.device());
  cudaStream_t s = stream(y.device());
  visit_floating(log ? "log_softmax" : "softmax", y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (inner == 1) {
      backward_rows_kernel<<<grid_for(outer, 1), kThreads, 0, s>>>(
          ptr<const T>(grad_y), ptr<const T>(y), ptr<T>(grad_x), outer, size, log);
      OPTIMI_CUDA_CHECK_LAUNCH("softmax backward_rows_kernel");
    } else {
      backward_columns_kernel<<<grid_for(outer * inner), kThreads, 0, s>>>(
          ptr<const T>(grad_y), ptr<const T>(y), ptr<T>(grad_x), outer, size, inner, log);
      OPTIMI_CUDA_CHECK_LAUNCH("softmax backward_columns_kernel");
    }
  });
}

}  // namespace optimi::kernels::cuda
