#include "optimi/memory.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>

#include "core/src/block_cache.hpp"

#ifdef OPTIMI_WITH_CUDA
#include "kernels/cuda/backend.hpp"
#endif

namespace optimi {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
constexpr bool kAddressSanitizer = __has_feature(address_sanitizer);
#else
constexpr bool kAddressSanitizer = false;
#endif

constexpr int kMaxDevices = 16;
struct Counters {
  std::atomic<int64_t> live{0};
  std::atomic<int64_t> peak{0};
};
std::array<Counters, kMaxDevices + 1> counters;  // slot 0: cpu, 1 + i: cuda:i

Counters& counters_for(Device d) {
  if (d.is_cpu()) return counters[0];
  if (d.index < 0 || d.index >= kMaxDevices)
    throw std::invalid_argument("memory_stats: device index out of range: " + d.str());
  return counters[1 + d.index];
}

// 64-byte alignment keeps vector loads aligned and avoids false sharing between threads. Freed
// blocks are cached for the next request of their size: glibc maps large blocks afresh and trims
// its heap on free (both return pages to the kernel), so each step of a training loop would
// page-fault through all of its activations again; and its aligned allocation of small blocks
// splits a chunk and frees the remainder every time (5% of a MiniLM seed step).
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    const size_t size = block_size(bytes);
    if (kCaching) {
      if (void* p = cache_.take(size)) return p;
    }
    void* p = std::aligned_alloc(64, size);
    if (!p && kCaching) {
      release_cached();
      p = std::aligned_alloc(64, size);
    }
    if (!p) throw std::bad_alloc();
    return p;
  }
  void deallocate(void* ptr, size_t bytes, Device) override {
    if (!kCaching || !cache_.put(ptr, block_size(bytes), kCacheLimit)) std::free(ptr);
  }

 private:
  // Under AddressSanitizer nothing is cached, so that it sees every use after free.
  static constexpr bool kCaching = !kAddressSanitizer;
  static constexpr size_t kBinnedFrom = size_t(4) << 10;  // below: sizes round to 64 bytes
  static constexpr int64_t kCacheLimit = int64_t(4) << 30;

  static size_t block_size(size_t bytes) {
    const size_t size =
        bytes < kBinnedFrom ? (bytes + 63) / 64 * 64 : detail::BlockCache::bin_size(bytes);
    return size == 0 ? 64 : size;
  }
  void release_cached() {
    cache_.release_all([](void* p, size_t) { std::free(p); });
  }

  detail::BlockCache cache_;
};

std::array<Allocator*, 2>& allocators() {
  // Never destroyed, so that storage freed by other static destructors still finds it.
  static CpuAllocator& cpu = *new CpuAllocator();
#ifdef OPTIMI_WITH_CUDA
  // Referenced here rather than registered by a static initialiser, which the linker drops from
  // a static library when nothing else in its object file is used.
  static std::array<Allocator*, 2> a{&cpu, &kernels::cuda::device_allocator()};
#else
  static std::array<Allocator*, 2> a{&cpu, nullptr};
#endif
  return a;
}

}  // namespace

void record_allocation(Device d, int64_t bytes) {
  Counters& c = counters_for(d);
  int64_t live = c.live.fetch_add(bytes) + bytes;
  int64_t peak = c.peak.load();
  while (live > peak && !c.peak.compare_exchange_weak(peak, live)) {
  }
}

void record_deallocation(Device d, int64_t bytes) {
  counters_for(d).live.fetch_sub(bytes);
}

MemoryStats memory_stats(Device d) {
  Counters& c = counters_for(d);
  return {c.live.load(), c.peak.load()};
}

void reset_peak_memory_stats(Device d) {
  Counters& c = counters_for(d);
  c.peak.store(c.live.load());
}

void register_allocator(DeviceType type, Allocator* allocator) {
  allocators()[type == DeviceType::CPU ? 0 : 1] = allocator;
}

Allocator& allocator_for(Device d) {
  Allocator* a = allocators()[d.is_cpu() ? 0 : 1];
  if (!a)
    throw std::invalid_argument("no allocator for device " + d.str() +
                                " (this build has no CUDA backend)");
  return *a;
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = allocator_for(device).allocate(bytes, device);
  record_allocation(device, int64_t(bytes));
}

Storage::~Storage() {
  allocator_for(device_).deallocate(data_, bytes_, device_);
  record_deallocation(device_, int64_t(bytes_));
}

}  // namespace optimi
