#include <array>
#include <mutex>
#include <string>

#include "kernels/cuda/runtime.cuh"
#include "optimi/cuda.hpp"

namespace optimi::kernels::cuda {
namespace {

constexpr int kMaxDevices = 16;  // as many as memory_stats counts

// The device count is fixed for the life of the process (CUDA_VISIBLE_DEVICES is read once), so
// it is queried once; `reason` keeps why there is none.
struct Devices {
  int count = 0;
  std::string reason;
};

const Devices& devices() {
  static const Devices d = [] {
    Devices r;
    const cudaError_t e = cudaGetDeviceCount(&r.count);
    if (e != cudaSuccess) {
      r.count = 0;
      r.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
      cudaGetLastError();  // not sticky: clear it so later checks see only their own errors
    } else if (r.count == 0) {
      r.reason = "cudaGetDeviceCount reports 0 devices";
    }
    r.count = std::min(r.count, kMaxDevices);
    return r;
  }();
  return d;
}

}  // namespace

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error in ") + call + ": " + cudaGetErrorString(error) +
                           " (" + cudaGetErrorName(error) + ") at " + file + ":" +
                           std::to_string(line));
}

void check_device(const char* op, Device device) {
  if (!device.is_cuda())
    throw std::invalid_argument(std::string(op) + ": expected a CUDA device, got " + device.str());
  // No device at all is a bad device argument too (spec: wrong device -> invalid_argument).
  const Devices& d = devices();
  if (d.count == 0)
    throw std::invalid_argument(std::string(op) + ": no CUDA device is available for " +
                                device.str() + " (" + d.reason + ")");
  if (device.index < 0 || device.index >= d.count)
    throw std::invalid_argument(std::string(op) + ": no device " + device.str() + ", " +
                                std::to_string(d.count) + " CUDA device(s) visible");
}

DeviceGuard::DeviceGuard(Device device) {
  check_device("CUDA", device);
  int current = 0;
  OPTIMI_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device.index) {
    OPTIMI_CUDA_CHECK(cudaSetDevice(device.index));
    previous_ = current;
  }
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0)
    cudaSetDevice(previous_);  // destructors cannot throw; the switch back
                               // only fails if the context is already gone
}

cudaStream_t stream(Device device) {
  static std::mutex mutex;
  static std::array<cudaStream_t, kMaxDevices> streams{};
  check_device("CUDA stream", device);
  std::lock_guard<std::mutex> lock(mutex);
  cudaStream_t& s = streams[static_cast<size_t>(device.index)];
  if (s == nullptr) {
    DeviceGuard guard(device);
    // Non-blocking: no implicit ordering with the legacy default stream, which we never use.
    OPTIMI_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  }
  return s;  // never destroyed: work may still be queued while static destructors run
}

void sync(Device device) {
  OPTIMI_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

}  // namespace optimi::kernels::cuda

namespace optimi {

bool cuda_is_available() {
  return kernels::cuda::devices().count > 0;
}

namespace cuda {

int device_count() {
  return kernels::cuda::devices().count;
}

void synchronize(Device device) {
  if (device.is_cpu()) return;
  kernels::cuda::sync(device);
}

}  // namespace cuda
}  // namespace optimi
