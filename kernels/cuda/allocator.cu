#include <array>
#include <limits>
#include <mutex>

#include "core/src/block_cache.hpp"
#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "optimi/cuda.hpp"

// The caching allocator of CUDA storage. cudaMalloc and cudaFree synchronise the device and cost
// tens of microseconds, so freed blocks go to a per-device BlockCache and the next request of
// their bin reuses one: a training loop stops calling the driver after its first step. All of a
// device's work runs on one stream, so a block freed while kernels that use it are still queued
// can be handed out at once: whatever uses it next is queued behind them.
namespace optimi::kernels::cuda {
namespace {

constexpr int kMaxDevices = 16;

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device device) override {
    check_device("CUDA allocation", device);
    if (bytes == 0) return nullptr;
    const size_t bin = detail::BlockCache::bin_size(bytes);
    PerDevice& d = state(device);
    if (void* p = d.cache.take(bin)) return p;
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
    std::lock_guard<std::mutex> lock(d.mutex);
    d.reserved_bytes += int64_t(bin);
    ++d.device_allocations;
    return p;
  }

  // Never calls CUDA: tensors destroyed during static destruction, after the runtime has shut
  // down, only return their blocks to the cache, which keeps every block.
  void deallocate(void* ptr, size_t bytes, Device device) override {
    if (ptr == nullptr) return;
    // The device was checked when the block was allocated.
    devices_[size_t(device.index)].cache.put(ptr, detail::BlockCache::bin_size(bytes),
                                             std::numeric_limits<int64_t>::max());
  }

  void release_cached(Device device) {
    PerDevice& d = state(device);
    DeviceGuard guard(device);
    sync(device);  // queued kernels may still use the blocks
    d.cache.release_all([&](void* p, size_t bin) {
      OPTIMI_CUDA_CHECK(cudaFree(p));
      std::lock_guard<std::mutex> lock(d.mutex);
      d.reserved_bytes -= int64_t(bin);
      ++d.device_frees;
    });
  }

  optimi::cuda::CachingAllocatorStats stats(Device device) {
    PerDevice& d = state(device);
    const int64_t cached = d.cache.cached_bytes();
    std::lock_guard<std::mutex> lock(d.mutex);
    return {d.reserved_bytes, cached, d.device_allocations, d.device_frees};
  }

 private:
  struct PerDevice {
    detail::BlockCache cache;
    std::mutex mutex;  // guards the counters
    int64_t reserved_bytes = 0;
    int64_t device_allocations = 0;
    int64_t device_frees = 0;
  };

  PerDevice& state(Device device) {
    check_device("CUDA allocator", device);
    return devices_[size_t(device.index)];
  }

  std::array<PerDevice, kMaxDevices> devices_;
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
