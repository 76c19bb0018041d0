#pragma once

#include <cstdint>

#include "optimi/device.hpp"

// CUDA device utilities, in the spirit of torch.cuda. Plain C++: using them needs no CUDA headers.
// In a CPU-only build device_count() is 0 and the others throw std::invalid_argument for CUDA
// devices.
namespace optimi::cuda {

// Number of visible CUDA devices; 0 without a GPU or driver.
int device_count();

// Blocks until the work queued on the device finishes. Kernels run asynchronously on one stream
// per device: time GPU work between two calls. Returns at once for the CPU.
void synchronize(Device device = Device::cuda());

// The caching allocator of a CUDA device. Freed tensor memory stays cached for reuse, so a
// training loop reaches a steady state without device allocations.
struct CachingAllocatorStats {
  int64_t reserved_bytes = 0;      // held from the driver: in use plus cached
  int64_t cached_bytes = 0;        // free blocks ready for reuse
  int64_t device_allocations = 0;  // cudaMalloc calls so far
  int64_t device_frees = 0;        // cudaFree calls so far
};
CachingAllocatorStats caching_allocator_stats(Device device = Device::cuda());
// Returns the cached free blocks to the driver (after the device's queued work finishes).
void empty_cache(Device device = Device::cuda());

}  // namespace optimi::cuda
