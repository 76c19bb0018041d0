#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

namespace optimi::kernels::cuda {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;  // splitmix64's increment

// Draw i of Generator's splitmix64 stream from state s is a function of s + (i + 1) * kGolden
// alone, so every thread draws its own element and the mask equals the CPU's for the same seed.
__device__ __forceinline__ double uniform_at(uint64_t state, int64_t i) {
  uint64_t z = state + uint64_t(i + 1) * kGolden;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1.0p-53;
}

__global__ void mask_kernel(uint8_t* mask, int64_t n, double p, uint64_t state) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    mask[i] = uniform_at(state, i) >= p ? 1 : 0;
}

template <class T>
__global__ void apply_kernel(const T* x, const uint8_t* mask, compute_t<T> scale, T* out,
                             int64_t n) {
  using C = compute_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = store<T>(load(x[i]) * (mask[i] ? scale : C(0)));
}

}  // namespace

void dropout_mask(Tensor& mask, double p, Generator& gen) {
  const int64_t n = mask.numel();
  const uint64_t state = gen.state();
  gen.set_state(state + uint64_t(n) * kGolden);  // as if n values had been drawn
  if (n == 0) return;
  DeviceGuard guard(mask.device());
  mask_kernel<<<grid_for(n), kThreads, 0, stream(mask.device())>>>(ptr<uint8_t>(mask), n, p, state);
  OPTIMI_CUDA_CHECK_LAUNCH("dropout mask_kernel");
}

void dropout_apply(const Tensor& x, const Tensor& mask, double scale, Tensor& out) {
  const int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device());
  visit_floating("dropout", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    apply_kernel<<<grid_for(n), kThreads, 0, stream(out.device())>>>(
        ptr<const T>(x), ptr<const uint8_t>(mask), C(scale), ptr<T>(out), n);
    OPTIMI_CUDA_CHECK_LAUNCH("dropout apply_kernel");
  });
}

}  // namespace optimi::kernels::cuda
