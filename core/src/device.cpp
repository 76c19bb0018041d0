#include "optimi/device.hpp"

namespace optimi {

std::string Device::str() const {
  return is_cuda() ? "cuda:" + std::to_string(index) : std::string("cpu");
}

#ifndef OPTIMI_WITH_CUDA
bool cuda_is_available() { return false; }
#endif

}  // namespace optimi
