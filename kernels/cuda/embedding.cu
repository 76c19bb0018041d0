#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

// Embedding lookup and its scatter-add backward, a thread per element of the [n, dim] rows.
namespace optimi::kernels::cuda {
namespace {

template <class T>
__global__ void forward_kernel(const int64_t* indices, const T* weight, T* out, int64_t n,
                               int64_t dim) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * dim;
       e += int64_t(gridDim.x) * blockDim.x) {
    out[e] = weight[indices[e / dim] * dim + e % dim];
  }
}

// Repeated indices meet in atomic additions of the compute type, so bfloat16 rows do not lose
// small contributions (the order of the additions, unlike on the CPU, is not fixed).
template <class T>
__global__ void backward_kernel(const T* grad_out, const int64_t* indices,
                                compute_t<T>* grad_weight, int64_t n, int64_t dim) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * dim;
       e += int64_t(gridDim.x) * blockDim.x) {
    atomic_add(grad_weight + indices[e / dim] * dim + e % dim, load(grad_out[e]));
  }
}

}  // namespace

void embedding_forward(const Tensor& indices, const Tensor& weight, Tensor& out) {
  const int64_t n = indices.numel();
  const int64_t dim = weight.numel() == 0 ? 0 : weight.numel() / weight.shape()[0];
  if (n * dim == 0) return;
  DeviceGuard guard(out.device());
  visit_floating("embedding", weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    forward_kernel<<<grid_for(n * dim), kThreads, 0, stream(out.device())>>>(
        ptr<const int64_t>(indices), ptr<const T>(weight), ptr<T>(out), n, dim);
    OPTIMI_CUDA_CHECK_LAUNCH("embedding forward_kernel");
  });
}

void embedding_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_weight) {
  const int64_t n = indices.numel();
  const int64_t dim = n == 0 ? 0 : grad_out.numel() / n;
  if (n * dim == 0) return;
  DeviceGuard guard(grad_weight.device());
  visit_floating("embedding", grad_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    backward_kernel<<<grid_for(n * dim), kThreads, 0, stream(grad_weight.device())>>>(
        ptr<const T>(grad_out), ptr<const int64_t>(indices), ptr<compute_t<T>>(grad_weight), n,
        dim);
    OPTIMI_CUDA_CHECK_LAUNCH("embedding backward_kernel");
  });
}

}  // namespace optimi::kernels::cuda
