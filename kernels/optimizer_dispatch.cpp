#include <stdexcept>
#include <string>

#include "kernels/cpu/optimizers.hpp"
#include "kernels/optimizer_launch.hpp"
#ifdef OPTIMI_WITH_CUDA
#include "kernels/cuda/backend.hpp"
#endif

// Routes optimizer launches to the backend of the parameters' device.
namespace optimi::kernels {
namespace {

void require_backend(Device device) {
#ifndef OPTIMI_WITH_CUDA
  if (!device.is_cpu())
    throw std::invalid_argument("optimizer step: no optimizer kernels for " + device.str() +
                                " tensors in this build");
#endif
}

}  // namespace

template <class Op>
std::vector<double> launch(Device device, std::span<const Op> ops,
                           std::span<const KernelArgs> tensors) {
  require_backend(device);
#ifdef OPTIMI_WITH_CUDA
  if (device.is_cuda()) return cuda::launch(device, ops, tensors);
#endif
  return cpu::launch(ops, tensors);
}

void stable_adamw_step(Device device, const StableAdamWMoments& moments,
                       const StableAdamWClip& clip, std::span<const KernelArgs> tensors,
                       bool update) {
  require_backend(device);
#ifdef OPTIMI_WITH_CUDA
  if (device.is_cuda()) return cuda::stable_adamw_step(device, moments, clip, tensors, update);
#endif
  cpu::stable_adamw_step(moments, clip, tensors, update);
}

#define OPTIMI_INSTANTIATE(Op) \
  template std::vector<double> launch(Device, std::span<const Op>, std::span<const KernelArgs>);
OPTIMI_FOR_EACH_OPTIMIZER_OP(OPTIMI_INSTANTIATE)
#undef OPTIMI_INSTANTIATE

}  // namespace optimi::kernels
