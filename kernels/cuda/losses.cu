#include <cmath>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "kernels/fast_math.hpp"

// cross_entropy and mse_loss. The losses are summed in double, per row or per block, then those
// partial sums in order by one block, and the total is read back by the host: the functional API
// returns it as a host value.
namespace optimi::kernels::cuda {
namespace {

constexpr int kSumThreads = 1024;

__global__ void sum_kernel(const double* values, int64_t n, double* out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += values[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

// Sum of n device doubles, on the host.
double sum_to_host(Device device, const double* values, int64_t n) {
  cudaStream_t s = stream(device);
  Storage total(sizeof(double), device);
  sum_kernel<<<1, kSumThreads, 0, s>>>(values, n, static_cast<double*>(total.data()));
  OPTIMI_CUDA_CHECK_LAUNCH("sum_kernel");
  double result = 0;
  OPTIMI_CUDA_CHECK(
      cudaMemcpyAsync(&result, total.data(), sizeof(double), cudaMemcpyDeviceToHost, s));
  sync(device);
  return result;
}

// A block per row: probs = exp(x - max) / sum(exp(x - max)), loss = max + log(sum) - x[target].
template <class T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int64_t* targets,
                                             compute_t<T>* probs, double* row_loss, int64_t rows,
                                             int64_t classes) {
  using C = compute_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = logits + r * classes;
    C* pr = probs + r * classes;
    C m = -INFINITY;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) {
      const C v = load(xr[j]);
      m = v > m ? v : m;
    }
    m = block_max(m);
    C s = 0;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) {
      const C e = fast_exp(C(load(xr[j])) - m);
      pr[j] = e;
      s += e;
    }
    s = block_sum(s);  // each thread scales the entries it wrote itself
    const C inv = C(1) / s;
    for (int64_t j = threadIdx.x; j < classes; j += blockDim.x) pr[j] *= inv;
    if (threadIdx.x == 0) row_loss[r] = double(m + std::log(s)) - double(load(xr[targets[r]]));
  }
}

template <class T>
__global__ void cross_entropy_backward_kernel(const compute_t<T>* probs, const int64_t* targets,
                                              compute_t<T> scale, T* grad, int64_t rows,
                                              int64_t classes) {
  using C = compute_t<T>;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < rows * classes;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / classes;
    const int64_t j = e % classes;
    const C onehot = j == targets[r] ? C(1) : C(0);
    grad[e] = store<T>((probs[e] - onehot) * scale);
  }
}

template <class T>
__global__ void mse_partials_kernel(const T* a, const T* b, int64_t n, double* partials) {
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const double d = double(load(a[i])) - double(load(b[i]));
    acc += d * d;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <class T>
__global__ void mse_backward_kernel(const T* a, const T* b, compute_t<T> scale, T* ga, T* gb,
                                    int64_t n) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const C g = (C(load(a[i])) - C(load(b[i]))) * scale;
    if (ga) ga[i] = store<T>(g);
    if (gb) gb[i] = store<T>(-g);
  }
}

}  // namespace

double cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& probs) {
  const int64_t rows = targets.numel();
  const int64_t classes = rows == 0 ? 0 : logits.numel() / rows;
  if (rows == 0) return 0.0;
  const Device device = logits.device();
  DeviceGuard guard(device);
  Storage row_loss(size_t(rows) * sizeof(double), device);
  auto* losses = static_cast<double*>(row_loss.data());
  visit_floating("cross_entropy", logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    cross_entropy_forward_kernel<<<grid_for(rows, 1), kThreads, 0, stream(device)>>>(
        ptr<const T>(logits), ptr<const int64_t>(targets), ptr<C>(probs), losses, rows, classes);
    OPTIMI_CUDA_CHECK_LAUNCH("cross_entropy_forward_kernel");
  });
  return sum_to_host(device, losses, rows);
}

void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double scale,
                            Tensor& grad_logits) {
  const int64_t rows = targets.numel();
  const int64_t classes = rows == 0 ? 0 : probs.numel() / rows;
  if (rows * classes == 0) return;
  DeviceGuard guard(probs.device());
  visit_floating("cross_entropy", grad_logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    cross_entropy_backward_kernel<<<grid_for(rows * classes), kThreads, 0,
                                    stream(probs.device())>>>(ptr<const C>(probs),
                                                              ptr<const int64_t>(targets), C(scale),
                                                              ptr<T>(grad_logits), rows, classes);
    OPTIMI_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
  });
}

double mse_forward(const Tensor& input, const Tensor& target) {
  const int64_t n = input.numel();
  if (n == 0) return 0.0;
  const Device device = input.device();
  DeviceGuard guard(device);
  const unsigned blocks = std::min(grid_for(n), 1024u);
  Storage partials(blocks * sizeof(double), device);
  auto* p = static_cast<double*>(partials.data());
  visit_floating("mse_loss", input.dtype(), [&](auto tag) {
    using T = decltype(tag);
    mse_partials_kernel<<<blocks, kThreads, 0, stream(device)>>>(ptr<const T>(input),
                                                                 ptr<const T>(target), n, p);
    OPTIMI_CUDA_CHECK_LAUNCH("mse_partials_kernel");
  });
  return sum_to_host(device, p, blocks);
}

void mse_backward(const Tensor& input, const Tensor& target, double scale, Tensor& grad_input,
                  Tensor& grad_target) {
  const int64_t n = input.numel();
  if (n == 0) return;
  DeviceGuard guard(input.device());
  visit_floating("mse_loss", input.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    mse_backward_kernel<<<grid_for(n), kThreads, 0, stream(input.device())>>>(
        ptr<const T>(input), ptr<const T>(target), C(scale), ptr<T>(grad_input),
        ptr<T>(grad_target), n);
    OPTIMI_CUDA_CHECK_LAUNCH("mse_backward_kernel");
  });
}

}  // namespace optimi::kernels::cuda
