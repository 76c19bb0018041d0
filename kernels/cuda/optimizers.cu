// Compiled with --fmad=false (cmake/OptimiCuda.cmake): every float32 operation rounds on its own,
// as in kernels/cpu/optimizers.cpp, so both backends produce the same bits.

#include <algorithm>
#include <memory>
#include <type_traits>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

// Multi-tensor apply: one launch runs a functor of kernels/optimizers.hpp over every parameter of
// a group. The tensors are cut into chunks of kChunk elements; the kernel argument block carries
// the tensor list (pointers, functor, first chunk), and each block takes chunks with a grid
// stride, finding its tensor by binary search. Lists longer than a kernel argument block holds
// take more than one launch.
namespace optimi::kernels::cuda {
namespace {

constexpr int kOptimizerThreads = 512;
constexpr int64_t kChunk = 16 * kOptimizerThreads;  // elements per chunk, 16 per thread
// Kernel arguments may take 32764 bytes since CUDA 12.1 on Volta and newer.
constexpr size_t kArgumentBytes = 32000;

template <class Op>
struct Entry {
  KernelArgs args;
  Op op;
  int64_t first_chunk;  // chunks of tensor k: [first_chunk, next entry's first_chunk)
};

template <class Op>
struct Batch {
  static constexpr int kCapacity = int((kArgumentBytes - 64) / sizeof(Entry<Op>));

  int count = 0;
  int64_t total_chunks = 0;
  double* partials = nullptr;      // per chunk, the sum of a reducing op's values
  const Op* device_ops = nullptr;  // set: tensor k's functor is device_ops[k], made on the device
  bool reverse = false;            // blocks take the chunks from the last to the first
  Entry<Op> entries[kCapacity];
};

template <class T>
__device__ __forceinline__ ParamTensors<T> typed_on_device(const KernelArgs& a) {
  return {static_cast<T*>(a.param),
          static_cast<const T*>(a.grad),
          {static_cast<T*>(a.state[0]), static_cast<T*>(a.state[1]), static_cast<T*>(a.state[2]),
           static_cast<T*>(a.state[3])},
          static_cast<T*>(a.kahan)};
}

// Elements a thread takes at once: 8 contiguous bytes of each buffer, one vector load.
template <class T>
constexpr int kElementsPerThread = int(8 / sizeof(T));

template <class T>
struct Group {
  T v[kElementsPerThread<T>];
};

// This thread's elements of [begin, end), with the loop compiled for one variant. The functors
// read and write through pointers, so run on the tensors themselves every element's loads would
// wait for the previous element's stores (the compiler cannot rule out aliasing): one memory
// round trip per element, and a 2-byte load per buffer and thread for 16-bit buffers. So a thread
// loads kElementsPerThread contiguous elements of the buffers the op touches (its Footprint) into
// registers first, one 8-byte load each when they are aligned, runs the functor on those copies,
// and stores back the ones it writes.
template <bool kKahan, bool kUpdate, Decay kDecay, class Op, class T>
__device__ double run_range(const Op& op, const ParamTensors<T>& t, int64_t begin, int64_t end) {
  constexpr Variant kV{kKahan, kUpdate, kDecay};
  constexpr Footprint kF = Op::kFootprint;
  constexpr int kN = kElementsPerThread<T>;
  constexpr int kBuffers = 7;                   // param, grad, state[0..3], kahan
  constexpr bool kParam = kF.param && kUpdate;  // the update's parameter and Kahan buffer
  constexpr bool kWritten[kBuffers] = {
      kParam,           false,           kF.writes_states, kF.writes_states, kF.writes_states,
      kF.writes_states, kParam && kKahan};
  using Result = decltype(op.template apply<kV>(t, 0));
  T* const buffers[kBuffers] = {
      kF.param ? t.param : nullptr,         kF.grad ? const_cast<T*>(t.grad) : nullptr,
      kF.states > 0 ? t.state[0] : nullptr, kF.states > 1 ? t.state[1] : nullptr,
      kF.states > 2 ? t.state[2] : nullptr, kF.states > 3 ? t.state[3] : nullptr,
      kParam && kKahan ? t.kahan : nullptr};
  bool aligned = true;
  for (T* b : buffers) aligned = aligned && reinterpret_cast<uintptr_t>(b) % sizeof(Group<T>) == 0;
  double sum = 0.0;
  for (int64_t first = begin + int64_t(threadIdx.x) * kN; first < end;
       first += int64_t(kN) * blockDim.x) {
    const bool whole = aligned && first + kN <= end;
    const int count = whole ? kN : int(end - first);
    Group<T> value[kBuffers] = {};
#pragma unroll
    for (int b = 0; b < kBuffers; ++b) {
      if (buffers[b] == nullptr) continue;
      if (whole) {
        value[b] = *reinterpret_cast<const Group<T>*>(buffers[b] + first);
      } else {
#pragma unroll  // constant indices keep the groups in registers
        for (int j = 0; j < kN; ++j) {
          if (j < count) value[b].v[j] = buffers[b][first + j];
        }
      }
    }
    // Every slot points at registers; the functor touches only those of its buffers.
    const ParamTensors<T> staged{
        value[0].v, value[1].v, {value[2].v, value[3].v, value[4].v, value[5].v}, value[6].v};
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      if (j >= count) break;
      if constexpr (std::is_void_v<Result>) {
        op.template apply<kV>(staged, j);
      } else {
        sum += op.template apply<kV>(staged, j);
      }
    }
#pragma unroll
    for (int b = 0; b < kBuffers; ++b) {
      if (!kWritten[b] || buffers[b] == nullptr) continue;
      if (whole) {
        *reinterpret_cast<Group<T>*>(buffers[b] + first) = value[b];
      } else {
#pragma unroll
        for (int j = 0; j < kN; ++j) {
          if (j < count) buffers[b][first + j] = value[b].v[j];
        }
      }
    }
  }
  return sum;
}

// The variant choice of the CPU loops (kernels/cpu/optimizers.cpp), made once per chunk.
template <bool kKahan, class Op, class T>
__device__ double run_update(const Op& op, const ParamTensors<T>& t, int64_t begin, int64_t end) {
  if constexpr (requires { op.decay; }) {
    switch (op.decay.kind()) {
      case Decay::kFactor:
        return run_range<kKahan, true, Decay::kFactor>(op, t, begin, end);
      case Decay::kL2:
        return run_range<kKahan, true, Decay::kL2>(op, t, begin, end);
      case Decay::kNone:
        break;
    }
  }
  return run_range<kKahan, true, Decay::kNone>(op, t, begin, end);
}

template <class Op, class T>
__device__ double run_typed(const Op& op, const KernelArgs& a, int64_t begin, int64_t end) {
  const ParamTensors<T> t = typed_on_device<T>(a);
  if (!a.update) return run_range<false, false, Decay::kNone>(op, t, begin, end);
  if constexpr (!std::is_same_v<T, float>) {  // Kahan summation exists only for 16-bit params
    if (a.kahan != nullptr) return run_update<true>(op, t, begin, end);
  }
  return run_update<false>(op, t, begin, end);
}

template <class Op>
__global__ void __launch_bounds__(kOptimizerThreads, 2)
    multi_tensor_kernel(const __grid_constant__ Batch<Op> batch) {
  for (int64_t step = blockIdx.x; step < batch.total_chunks; step += gridDim.x) {
    const int64_t chunk = batch.reverse ? batch.total_chunks - 1 - step : step;
    int lo = 0;
    int hi = batch.count - 1;
    while (lo < hi) {  // the last tensor whose first chunk is <= chunk
      const int mid = (lo + hi + 1) / 2;
      if (batch.entries[mid].first_chunk <= chunk) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const Entry<Op>& e = batch.entries[lo];
    const Op op = batch.device_ops != nullptr ? batch.device_ops[lo] : e.op;
    const int64_t begin = (chunk - e.first_chunk) * kChunk;
    const int64_t end = begin + kChunk < e.args.numel ? begin + kChunk : e.args.numel;
    double sum;
    switch (e.args.dtype) {
      case DType::BFloat16:
        sum = run_typed<Op, bfloat16>(op, e.args, begin, end);
        break;
      case DType::Float16:
        sum = run_typed<Op, float16>(op, e.args, begin, end);
        break;
      default:
        sum = run_typed<Op, float>(op, e.args, begin, end);
        break;
    }
    if (batch.partials != nullptr) {
      sum = block_sum(sum);
      if (threadIdx.x == 0) batch.partials[chunk] = sum;
    }
  }
}

// StableAdamW between its passes: one thread per tensor adds its chunks' partial sums in order and
// builds that tensor's update functor.
__global__ void stable_adamw_clip_kernel(const __grid_constant__ Batch<StableAdamWMoments> batch,
                                         StableAdamWClip clip, const double* partials,
                                         StableAdamWUpdate* updates) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= batch.count) return;
  const int64_t end = k + 1 < batch.count ? batch.entries[k + 1].first_chunk : batch.total_chunks;
  double sum = 0.0;
  for (int64_t c = batch.entries[k].first_chunk; c < end; ++c) sum += partials[c];
  updates[k] = clip.update(sum, batch.entries[k].args.numel);
}

void check_dtypes(std::span<const KernelArgs> tensors) {
  for (const KernelArgs& a : tensors) {
    if (a.dtype != DType::Float32 && a.dtype != DType::BFloat16 && a.dtype != DType::Float16) {
      throw std::invalid_argument(
          "optimizer step: parameters must be float32, bfloat16 or float16, got " +
          std::string(dtype_name(a.dtype)));
    }
  }
}

int64_t chunks_of(int64_t numel) {
  return (numel + kChunk - 1) / kChunk;
}

// Fills `batch` from tensors[from, ...) (skipping empty ones) until it is full; returns where the
// next batch starts. `index[j]` is the position in `tensors` of entry j.
template <class Op>
size_t fill_batch(Batch<Op>& batch, std::span<const Op> ops, std::span<const KernelArgs> tensors,
                  size_t from, std::vector<size_t>& index, int capacity) {
  batch.count = 0;
  batch.total_chunks = 0;
  index.clear();
  size_t k = from;
  for (; k < tensors.size() && batch.count < capacity; ++k) {
    if (tensors[k].numel == 0) continue;
    Entry<Op>& e = batch.entries[batch.count++];
    e.args = tensors[k];
    e.op = ops.empty() ? Op{} : ops[k];
    e.first_chunk = batch.total_chunks;
    batch.total_chunks += chunks_of(tensors[k].numel);
    index.push_back(k);
  }
  return k;
}

unsigned grid_of(int64_t chunks) {
  return unsigned(std::min<int64_t>(chunks, 65535));
}

}  // namespace

template <class Op>
std::vector<double> launch(Device device, std::span<const Op> ops,
                           std::span<const KernelArgs> tensors) {
  check_dtypes(tensors);
  std::vector<double> sums(tensors.size(), 0.0);
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  constexpr bool kReducing =
      !std::is_void_v<decltype(std::declval<const Op&>().template apply<Variant{}>(
          std::declval<const ParamTensors<float>&>(), 0))>;
  auto batch = std::make_unique<Batch<Op>>();
  std::vector<size_t> index;
  for (size_t next = 0; next < tensors.size();) {
    next = fill_batch<Op>(*batch, ops, tensors, next, index, Batch<Op>::kCapacity);
    if (batch->count == 0) continue;
    std::unique_ptr<Storage> partials;
    if constexpr (kReducing) {
      partials = std::make_unique<Storage>(size_t(batch->total_chunks) * sizeof(double), device);
      batch->partials = static_cast<double*>(partials->data());
    }
    multi_tensor_kernel<Op><<<grid_of(batch->total_chunks), kOptimizerThreads, 0, s>>>(*batch);
    OPTIMI_CUDA_CHECK_LAUNCH("multi_tensor_kernel");
    if constexpr (kReducing) {
      // The sums are host values: this waits for the device.
      std::vector<double> host(size_t(batch->total_chunks));
      OPTIMI_CUDA_CHECK(cudaMemcpyAsync(host.data(), partials->data(), host.size() * sizeof(double),
                                        cudaMemcpyDeviceToHost, s));
      sync(device);
      for (int j = 0; j < batch->count; ++j) {
        const Entry<Op>& e = batch->entries[j];
        const int64_t end =
            j + 1 < batch->count ? batch->entries[j + 1].first_chunk : batch->total_chunks;
        for (int64_t c = e.first_chunk; c < end; ++c) sums[index[size_t(j)]] += host[size_t(c)];
      }
    }
  }
  return sums;
}

void stable_adamw_step(Device device, const StableAdamWMoments& moments,
                       const StableAdamWClip& clip, std::span<const KernelArgs> tensors,
                       bool update) {
  check_dtypes(tensors);
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  // Both passes see the same tensor lists, so batches hold what the smaller argument block fits.
  const int capacity =
      std::min(Batch<StableAdamWMoments>::kCapacity, Batch<StableAdamWUpdate>::kCapacity);
  const std::vector<StableAdamWMoments> moment_ops(tensors.size(), moments);
  auto first = std::make_unique<Batch<StableAdamWMoments>>();
  auto second = std::make_unique<Batch<StableAdamWUpdate>>();
  std::vector<size_t> index;
  for (size_t next = 0; next < tensors.size();) {
    const size_t from = next;
    next = fill_batch<StableAdamWMoments>(*first, moment_ops, tensors, from, index, capacity);
    if (first->count == 0) continue;
    Storage partials(size_t(first->total_chunks) * sizeof(double), device);
    first->partials = static_cast<double*>(partials.data());
    multi_tensor_kernel<<<grid_of(first->total_chunks), kOptimizerThreads, 0, s>>>(*first);
    OPTIMI_CUDA_CHECK_LAUNCH("multi_tensor_kernel (StableAdamW moments)");
    if (!update) continue;
    Storage updates(size_t(first->count) * sizeof(StableAdamWUpdate), device);
    auto* device_updates = static_cast<StableAdamWUpdate*>(updates.data());
    stable_adamw_clip_kernel<<<unsigned((first->count + 127) / 128), 128, 0, s>>>(
        *first, clip, first->partials, device_updates);
    OPTIMI_CUDA_CHECK_LAUNCH("stable_adamw_clip_kernel");
    fill_batch<StableAdamWUpdate>(*second, {}, tensors, from, index, capacity);
    second->device_ops = device_updates;
    // Backwards through the chunks: the moments the first pass wrote last are still in L2.
    second->reverse = true;
    multi_tensor_kernel<<<grid_of(second->total_chunks), kOptimizerThreads, 0, s>>>(*second);
    OPTIMI_CUDA_CHECK_LAUNCH("multi_tensor_kernel (StableAdamW update)");
  }
}

#define OPTIMI_INSTANTIATE(Op)                        \
  static_assert(sizeof(Batch<Op>) <= kArgumentBytes); \
  template std::vector<double> launch(Device, std::span<const Op>, std::span<const KernelArgs>);
OPTIMI_FOR_EACH_OPTIMIZER_OP(OPTIMI_INSTANTIATE)
#undef OPTIMI_INSTANTIATE

}  // namespace optimi::kernels::cuda
