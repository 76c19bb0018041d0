#include <type_traits>

#include "kernels/cpu/elementwise.hpp"
#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "kernels/cuda/strided.cuh"

// Tensor copies between any two devices, converting dtype and strides and broadcasting the source.
// Conversions and strides are handled on the device, so data crosses the bus contiguous and in one
// piece; host-bound copies wait for the device, device-bound ones only for the staging of the
// host buffer.
namespace optimi::kernels::cuda {
namespace {

template <class D, class S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<S, D>) {
    return v;
  } else if constexpr (std::is_same_v<D, bool>) {
    return load(v) != compute_t<S>(0);
  } else if constexpr (std::is_same_v<S, bool>) {
    return store<D>(compute_t<D>(v ? 1 : 0));
  } else {
    return store<D>(load(v));
  }
}

template <class D, class S>
__global__ void convert_kernel(Layout<2> l, D* dst, const S* src) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < l.numel;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    l.offsets(i, off);
    dst[off[0]] = convert<D>(src[off[1]]);
  }
}

// A copy that is one memcpy: same dtype and shape, both dense.
bool plain(const Tensor& src, const Tensor& dst) {
  return src.dtype() == dst.dtype() && src.shape() == dst.shape() && src.is_contiguous() &&
         dst.is_contiguous();
}

// src and dst on the same CUDA device.
void copy_on_device(const Tensor& src, Tensor& dst) {
  const Device device = dst.device();
  DeviceGuard guard(device);
  if (plain(src, dst)) {
    OPTIMI_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), size_t(dst.nbytes()),
                                      cudaMemcpyDeviceToDevice, stream(device)));
    return;
  }
  visit_dtype("copy", dst.dtype(), [&](auto dtag) {
    visit_dtype("copy", src.dtype(), [&](auto stag) {
      using D = decltype(dtag);
      using S = decltype(stag);
      const Layout<2> l = make_layout<2>("copy", {&dst, &src});
      convert_kernel<<<grid_for(l.numel), kThreads, 0, stream(device)>>>(l, ptr<D>(dst),
                                                                         ptr<const S>(src));
      OPTIMI_CUDA_CHECK_LAUNCH("convert_kernel");
    });
  });
}

// Host to device: the source goes up as it is (densified on the host if strided), the device
// converts and scatters it into dst.
void upload(const Tensor& src, Tensor& dst) {
  const Device device = dst.device();
  DeviceGuard guard(device);
  if (plain(src, dst)) {
    OPTIMI_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), size_t(dst.nbytes()),
                                      cudaMemcpyHostToDevice, stream(device)));
    return;
  }
  const Tensor host = src.detach().contiguous();
  Tensor staged = Tensor::empty(host.shape(), host.dtype(), device);
  OPTIMI_CUDA_CHECK(cudaMemcpyAsync(staged.data_ptr(), host.data_ptr(), size_t(host.nbytes()),
                                    cudaMemcpyHostToDevice, stream(device)));
  copy_on_device(staged, dst);
}

// Device to host: the device converts and broadcasts into a dense tensor of dst's dtype and
// shape, which comes down in one piece.
void download(const Tensor& src, Tensor& dst) {
  const Device device = src.device();
  DeviceGuard guard(device);
  Tensor dense = src;
  if (!plain(src, dst)) {
    dense = Tensor::empty(dst.shape(), dst.dtype(), device);
    copy_on_device(src, dense);
  }
  Tensor host = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype());
  OPTIMI_CUDA_CHECK(cudaMemcpyAsync(host.data_ptr(), dense.data_ptr(), size_t(host.nbytes()),
                                    cudaMemcpyDeviceToHost, stream(device)));
  sync(device);
  if (!host.is_same(dst)) cpu::copy(host, dst);
}

// Between two devices: densified in dst's dtype on the source device, one peer copy, then
// scattered on the destination device if dst is strided.
void peer(const Tensor& src, Tensor& dst) {
  Tensor dense = src;
  if (!plain(src, dst)) {
    dense = Tensor::empty(dst.shape(), dst.dtype(), src.device());
    copy_on_device(src, dense);
  }
  sync(src.device());
  Tensor landing =
      dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
  {
    DeviceGuard guard(dst.device());
    OPTIMI_CUDA_CHECK(cudaMemcpyPeerAsync(landing.data_ptr(), dst.device().index, dense.data_ptr(),
                                          src.device().index, size_t(landing.nbytes()),
                                          stream(dst.device())));
    if (!landing.is_same(dst)) copy_on_device(landing, dst);
    // `dense` returns to the source device's cache when this returns: the copy must be done.
    sync(dst.device());
  }
}

}  // namespace

void copy(const Tensor& src, Tensor& dst) {
  const Device from = src.device();
  const Device to = dst.device();
  if (from == to) {
    copy_on_device(src, dst);
  } else if (from.is_cpu()) {
    upload(src, dst);
  } else if (to.is_cpu()) {
    download(src, dst);
  } else {
    peer(src, dst);
  }
}

}  // namespace optimi::kernels::cuda
