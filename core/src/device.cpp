#include "optimi/device.hpp"

#include <stdexcept>

#include "optimi/cuda.hpp"

namespace optimi {

std::string Device::str() const {
  return is_cuda() ? "cuda:" + std::to_string(index) : std::string("cpu");
}

// A CUDA build defines these in kernels/cuda/runtime.cu.
#ifndef OPTIMI_WITH_CUDA
bool cuda_is_available() {
  return false;
}

namespace cuda {
namespace {
void require_cpu(const char* op, Device device) {
  if (device.is_cuda())
    throw std::invalid_argument(std::string("cuda::") + op + ": no device " + device.str() +
                                " (this build has no CUDA backend)");
}
}  // namespace

int device_count() {
  return 0;
}
void synchronize(Device device) {
  require_cpu("synchronize", device);
}
CachingAllocatorStats caching_allocator_stats(Device device) {
  require_cpu("caching_allocator_stats", device);
  throw std::invalid_argument("cuda::caching_allocator_stats: cpu has no caching allocator");
}
void empty_cache(Device device) {
  require_cpu("empty_cache", device);
}
}  // namespace cuda
#endif

}  // namespace optimi
