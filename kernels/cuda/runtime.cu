#include <cuda_runtime.h>

#include "optimi/device.hpp"

namespace optimi {

bool cuda_is_available() {
  int count = 0;
  // No driver or no device both mean "not available"; neither is an error for the caller.
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace optimi
