#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

// Free blocks binned by rounded size, for allocators whose own allocate and free are slow:
// cudaMalloc synchronises the device, and a large malloc maps fresh pages that fault on first
// touch. A training loop allocates the same sizes every step, so after its first step every request
// finds a block of its bin. Shared by the CPU allocator (core/src/memory.cpp) and the CUDA one.
namespace optimi::detail {

class BlockCache {
 public:
  static constexpr size_t kSmallGranule = 512;    // also cudaMalloc's alignment guarantee and more
  static constexpr size_t kSmallLimit = 1 << 20;  // below this, bins are multiples of 512 bytes
  static constexpr int kLargeStepsPerOctave = 8;  // above, 8 bins per power of two: <= 12.5% slack

  static size_t bin_size(size_t bytes) {
    if (bytes <= kSmallLimit) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
    size_t octave = size_t(1) << (63 - __builtin_clzll(bytes - 1));  // largest power of 2 < bytes
    size_t step = octave / kLargeStepsPerOctave;
    return (bytes + step - 1) / step * step;
  }

  // A cached block of exactly `bin` bytes, or nullptr.
  void* take(size_t bin) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(bin);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_bytes_ -= int64_t(bin);
    return p;
  }

  // Keeps a block of `bin` bytes for reuse; false (nothing kept) when that would hold more than
  // `limit` bytes in all.
  bool put(void* p, size_t bin, int64_t limit) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + int64_t(bin) > limit) return false;
    free_[bin].push_back(p);
    cached_bytes_ += int64_t(bin);
    return true;
  }

  // Empties the cache, handing each block and its bin size to `release`.
  template <class Release>
  void release_all(Release&& release) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [bin, blocks] : free_) {
      for (void* p : blocks) release(p, bin);
      cached_bytes_ -= int64_t(bin * blocks.size());
      blocks.clear();
    }
  }

  int64_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // bin size -> free blocks
  int64_t cached_bytes_ = 0;
};

}  // namespace optimi::detail
