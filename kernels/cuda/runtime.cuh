#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/dtype_dispatch.hpp"
#include "optimi/device.hpp"
#include "optimi/dtype.hpp"
#include "optimi/tensor.hpp"

// Shared by the .cu files of the CUDA backend: error checks, device selection, the per-device
// stream, launch sizes, dtype dispatch and block reductions.
namespace optimi::kernels::cuda {

// Throws std::runtime_error naming the CUDA call that failed and where.
[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line);

#define OPTIMI_CUDA_CHECK(call)                                                            \
  do {                                                                                     \
    const cudaError_t optimi_error_ = (call);                                              \
    if (optimi_error_ != cudaSuccess)                                                      \
      ::optimi::kernels::cuda::throw_cuda_error(optimi_error_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration surfaces here, naming the kernel. (Faults inside a
// kernel surface at the next synchronising call, which is checked too.)
#define OPTIMI_CUDA_CHECK_LAUNCH(kernel)                                                      \
  do {                                                                                        \
    const cudaError_t optimi_error_ = cudaGetLastError();                                     \
    if (optimi_error_ != cudaSuccess)                                                         \
      ::optimi::kernels::cuda::throw_cuda_error(optimi_error_, "launch of " kernel, __FILE__, \
                                                __LINE__);                                    \
  } while (0)

// Checks that `device` names an existing CUDA device, else throws std::invalid_argument naming
// `op` and the device (and, when there is no usable device at all, why).
void check_device(const char* op, Device device);

// Makes `device` current for the guard's lifetime (kernels, streams and cuBLAS handles belong to
// the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// The stream all of a device's work goes to. One stream per device keeps every kernel, copy and
// cached-memory reuse in one order, so freed blocks can be reused without events.
cudaStream_t stream(Device device);
// Waits for the device's stream.
void sync(Device device);

// Threads per block for element-wise kernels, and a grid that covers n elements (kernels loop
// with a grid stride past the cap).
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535));
}

// Typed device pointers of (possibly undefined) tensors.
template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ----

template <class C>
__device__ __forceinline__ C warp_sum(C v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <class C>
__device__ __forceinline__ C warp_max(C v) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const C o = __shfl_xor_sync(0xffffffffu, v, offset);
    v = (o > v || o != o) ? o : v;  // NaN wins, as in PyTorch
  }
  return v;
}

// Every thread of the block gets the block's total. Starts with a barrier so the shared slots can
// be reused by consecutive calls.
template <class C>
__device__ C block_sum(C v) {
  __shared__ C slots[32];
  v = warp_sum(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) slots[threadIdx.x / 32] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = threadIdx.x < warps ? slots[threadIdx.x] : C(0);
  if (threadIdx.x < 32) v = warp_sum(v);
  if (threadIdx.x == 0) slots[0] = v;
  __syncthreads();
  return slots[0];
}

template <class C>
__device__ C block_max(C v) {
  __shared__ C slots[32];
  v = warp_max(v);
  __syncthreads();
  if (threadIdx.x % 32 == 0) slots[threadIdx.x / 32] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = threadIdx.x < warps ? slots[threadIdx.x] : slots[0];
  if (threadIdx.x < 32) v = warp_max(v);
  if (threadIdx.x == 0) slots[0] = v;
  __syncthreads();
  return slots[0];
}

// ---- atomic accumulation (scatter-adds whose indices may repeat) ----

__device__ __forceinline__ void atomic_add(float* p, float v) {
  atomicAdd(p, v);
}
__device__ __forceinline__ void atomic_add(double* p, double v) {
  atomicAdd(p, v);
}
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  // Two's complement: unsigned wrap-around is signed addition.
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}
// 16-bit floats round after every addition, as the same sequential loop on the CPU does.
__device__ __forceinline__ void atomic_add(bfloat16* p, float v) {
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16_rn(v));
}
__device__ __forceinline__ void atomic_add(float16* p, float v) {
  atomicAdd(reinterpret_cast<__half*>(p), __float2half_rn(v));
}

}  // namespace optimi::kernels::cuda
