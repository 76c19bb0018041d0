#include <cmath>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

// layer_norm over rows of x viewed as [rows, cols]: a block per row for the statistics, y and dx;
// the weight and bias gradients reduce over rows in fixed chunks, then the chunks in order, so
// they do not change from run to run.
namespace optimi::kernels::cuda {
namespace {

// Two passes, as on the CPU: the centred sum of squares does not cancel catastrophically.
template <class T>
__global__ void forward_kernel(const T* x, const compute_t<T>* w, const compute_t<T>* b,
                               compute_t<T> eps, T* y, compute_t<T>* mean, compute_t<T>* rstd,
                               int64_t rows, int64_t cols) {
  using C = compute_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    C sum = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += load(xr[j]);
    const C mu = block_sum(sum) / C(cols);
    C sq = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const C d = load(xr[j]) - mu;
      sq += d * d;
    }
    const C rs = C(1) / std::sqrt(block_sum(sq) / C(cols) + eps);
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const C v = (load(xr[j]) - mu) * rs;
      yr[j] = store<T>(v * (w ? w[j] : C(1)) + (b ? b[j] : C(0)));
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight.
template <class T>
__global__ void backward_input_kernel(const T* dy, const T* x, const compute_t<T>* mean,
                                      const compute_t<T>* rstd, const compute_t<T>* w, T* dx,
                                      int64_t rows, int64_t cols) {
  using C = compute_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    const C mu = mean[r];
    const C rs = rstd[r];
    C sum_g = 0;
    C sum_gx = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const C g = load(gr[j]) * (w ? w[j] : C(1));
      sum_g += g;
      sum_gx += g * (load(xr[j]) - mu) * rs;
    }
    const C a = block_sum(sum_g) / C(cols);
    const C c = block_sum(sum_gx) / C(cols);
    T* dr = dx + r * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const C g = load(gr[j]) * (w ? w[j] : C(1));
      dr[j] = store<T>(rs * (g - a - (load(xr[j]) - mu) * rs * c));
    }
  }
}

constexpr int kColumns = 32;  // columns per block, one per lane: rows are read coalesced
constexpr int kLanes = 8;     // threads down the rows of a chunk

// Partial sums of dy * xhat and dy over one chunk of rows, per column.
template <class T>
__global__ void backward_params_partial_kernel(const T* dy, const T* x, const compute_t<T>* mean,
                                               const compute_t<T>* rstd, int64_t rows, int64_t cols,
                                               int64_t rows_per_chunk, compute_t<T>* partial_w,
                                               compute_t<T>* partial_b) {
  using C = compute_t<T>;
  __shared__ C sw[kLanes][kColumns + 1];
  __shared__ C sb[kLanes][kColumns + 1];
  const int64_t col = blockIdx.x * int64_t(kColumns) + threadIdx.x;
  const int64_t begin = blockIdx.y * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < rows ? begin + rows_per_chunk : rows;
  C acc_w = 0;
  C acc_b = 0;
  if (col < cols) {
    for (int64_t r = begin + threadIdx.y; r < end; r += kLanes) {
      const C g = load(dy[r * cols + col]);
      acc_w += g * (load(x[r * cols + col]) - mean[r]) * rstd[r];
      acc_b += g;
    }
  }
  sw[threadIdx.y][threadIdx.x] = acc_w;
  sb[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int lane = 1; lane < kLanes; ++lane) {
      acc_w += sw[lane][threadIdx.x];
      acc_b += sb[lane][threadIdx.x];
    }
    partial_w[blockIdx.y * cols + col] = acc_w;
    partial_b[blockIdx.y * cols + col] = acc_b;
  }
}

template <class C>
__global__ void backward_params_final_kernel(const C* partial_w, const C* partial_b, int64_t chunks,
                                             int64_t cols, C* dw, C* db) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < cols;
       col += int64_t(gridDim.x) * blockDim.x) {
    C w = 0;
    C b = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      w += partial_w[c * cols + col];
      b += partial_b[c * cols + col];
    }
    if (dw) dw[col] = w;
    if (db) db[col] = b;
  }
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        Tensor& y, Tensor& mean, Tensor& rstd) {
  const int64_t rows = mean.numel();
  const int64_t cols = rows == 0 ? 0 : x.numel() / rows;
  if (rows == 0) return;
  DeviceGuard guard(x.device());
  visit_floating("layer_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    forward_kernel<<<grid_for(rows, 1), kThreads, 0, stream(x.device())>>>(
        ptr<const T>(x), ptr<const C>(weight), ptr<const C>(bias), C(eps), ptr<T>(y), ptr<C>(mean),
        ptr<C>(rstd), rows, cols);
    OPTIMI_CUDA_CHECK_LAUNCH("layer_norm forward_kernel");
  });
}

void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& weight, Tensor& grad_x,
                         Tensor& grad_weight, Tensor& grad_bias) {
  const int64_t rows = mean.numel();
  const int64_t cols = rows == 0 ? 0 : x.numel() / rows;
  const Device device = x.device();
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  visit_floating("layer_norm", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if (grad_x.defined() && rows > 0) {
      backward_input_kernel<<<grid_for(rows, 1), kThreads, 0, s>>>(
          ptr<const T>(grad_y), ptr<const T>(x), ptr<const C>(mean), ptr<const C>(rstd),
          ptr<const C>(weight), ptr<T>(grad_x), rows, cols);
      OPTIMI_CUDA_CHECK_LAUNCH("layer_norm backward_input_kernel");
    }
    if (!grad_weight.defined() && !grad_bias.defined()) return;
    const int64_t width = grad_weight.defined() ? grad_weight.numel() : grad_bias.numel();
    if (rows == 0) {  // no rows: the sums are zero
      if (grad_weight.defined()) cuda::fill(grad_weight, 0.0);
      if (grad_bias.defined()) cuda::fill(grad_bias, 0.0);
      return;
    }
    const int64_t rows_per_chunk = std::max<int64_t>(64, (rows + 65534) / 65535);
    const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
    Storage partial_w(size_t(chunks * width) * sizeof(C), device);
    Storage partial_b(size_t(chunks * width) * sizeof(C), device);
    auto* pw = static_cast<C*>(partial_w.data());
    auto* pb = static_cast<C*>(partial_b.data());
    const dim3 grid(unsigned((width + kColumns - 1) / kColumns), unsigned(chunks));
    backward_params_partial_kernel<<<grid, dim3(kColumns, kLanes), 0, s>>>(
        ptr<const T>(grad_y), ptr<const T>(x), ptr<const C>(mean), ptr<const C>(rstd), rows, cols,
        rows_per_chunk, pw, pb);
    OPTIMI_CUDA_CHECK_LAUNCH("layer_norm backward_params_partial_kernel");
    backward_params_final_kernel<<<grid_for(width), kThreads, 0, s>>>(
        pw, pb, chunks, width, ptr<C>(grad_weight), ptr<C>(grad_bias));
    OPTIMI_CUDA_CHECK_LAUNCH("layer_norm backward_params_final_kernel");
  });
}

}  // namespace optimi::kernels::cuda
