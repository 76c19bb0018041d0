#include <array>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "optimi/cuda.hpp"

// The caching allocator of CUDA storage. cudaMalloc and cudaFree synchronise the device and cost
// tens of microseconds, so freed blocks go to per-device free lists binned by rounded size and the
// next request of that bin reuses one: a training loop, which allocates the same sizes every
// step, stops calling the driver after its first step. All of a device's work runs on one
// stream, so a block freed while kernels that use it are still queued can be handed out at once:
// whatever uses it next is queued behind them.
namespace optimi::kernels::cuda {
namespace {

constexpr int kMaxDevices = 16;
constexpr size_t kSmallGranule = 512;    // also cudaMalloc's alignment guarantee and more
constexpr size_t kSmallLimit = 1 << 20;  // below this, bins are multiples of 512 bytes
constexpr int kLargeStepsPerOctave = 8;  // above, 8 bins per power of two: <= 12.5% slack

size_t bin_size(size_t bytes) {
  if (bytes <= kSmallLimit) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  size_t octave = size_t(1) << (63 - __builtin_clzll(bytes - 1));  // largest power of 2 < bytes
  size_t step = octave / kLargeStepsPerOctave;
  return (bytes + step - 1) / step * step;
}

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device device) override {
    check_device("CUDA allocation", device);
    if (bytes == 0) return nullptr;
    const size_t bin = bin_size(bytes);
    Cache& c = cache(device);
    {
      std::lock_guard<std::mutex> lock(c.mutex);
      auto it = c.free.find(bin);
      if (it != c.free.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        c.cached_bytes -= int64_t(bin);
        return p;
      }
    }
    DeviceGuard guard(device);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bin);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it, give the cached blocks back and try once more
      release_cached(device);
      e = cudaMalloc(&p, bin);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("CUDA error in cudaMalloc of " + std::to_string(bin) + " bytes on " +
                               device.str() + ": " + cudaGetErrorString(e) + " (" +
                               std::to_string(memory_stats(device).live_bytes) +
                               " bytes in use by tensors)");
    }
    std::lock_guard<std::mutex> lock(c.mutex);
    c.reserved_bytes += int64_t(bin);
    ++c.device_allocations;
    return p;
  }

  // Never calls CUDA: tensors destroyed during static destruction, after the runtime has shut
  // down, only return their blocks to the lists.
  void deallocate(void* ptr, size_t bytes, Device device) override {
    if (ptr == nullptr) return;
    const size_t bin = bin_size(bytes);
    Cache& c = caches_[size_t(device.index)];  // checked when the block was allocated
    std::lock_guard<std::mutex> lock(c.mutex);
    c.free[bin].push_back(ptr);
    c.cached_bytes += int64_t(bin);
  }

  void release_cached(Device device) {
    Cache& c = cache(device);
    DeviceGuard guard(device);
    sync(device);  // queued kernels may still use the blocks
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto& [bin, blocks] : c.free) {
      for (void* p : blocks) {
        OPTIMI_CUDA_CHECK(cudaFree(p));
        c.reserved_bytes -= int64_t(bin);
        c.cached_bytes -= int64_t(bin);
        ++c.device_frees;
      }
      blocks.clear();
    }
  }

  optimi::cuda::CachingAllocatorStats stats(Device device) {
    Cache& c = cache(device);
    std::lock_guard<std::mutex> lock(c.mutex);
    return {c.reserved_bytes, c.cached_bytes, c.device_allocations, c.device_frees};
  }

 private:
  struct Cache {
    std::mutex mutex;
    std::unordered_map<size_t, std::vector<void*>> free;  // bin size -> free blocks
    int64_t reserved_bytes = 0;
    int64_t cached_bytes = 0;
    int64_t device_allocations = 0;
    int64_t device_frees = 0;
  };

  Cache& cache(Device device) {
    check_device("CUDA allocator", device);
    return caches_[size_t(device.index)];
  }

  std::array<Cache, kMaxDevices> caches_;
};

CachingAllocator& caching_allocator() {
  // Never destroyed, so that storage freed by other static destructors still finds it.
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

Allocator& device_allocator() {
  return caching_allocator();
}

}  // namespace optimi::kernels::cuda

namespace optimi::cuda {

CachingAllocatorStats caching_allocator_stats(Device device) {
  return kernels::cuda::caching_allocator().stats(device);
}

void empty_cache(Device device) {
  if (device.is_cpu()) return;
  kernels::cuda::caching_allocator().release_cached(device);
}

}  // namespace optimi::cuda
