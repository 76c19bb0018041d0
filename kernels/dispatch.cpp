#include <stdexcept>

#include "kernels/cpu/elementwise.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/index.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/index.hpp"
#ifdef OPTIMI_WITH_CUDA
#include "kernels/cuda/backend.hpp"
#endif

// Routes each kernel to the backend of its tensors' device.
namespace optimi::kernels {
namespace {

// Every operand of a kernel lives on one device (copy() is the one kernel that crosses devices).
Device common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Device device = (*tensors.begin())->device();
  for (const Tensor* t : tensors) {
    if (t->defined() && t->device() != device)
      throw std::invalid_argument(std::string(op) + ": tensors on different devices, " +
                                  device.str() + " and " + t->device().str());
  }
#ifndef OPTIMI_WITH_CUDA
  if (!device.is_cpu())
    throw std::invalid_argument(std::string(op) + ": no kernel for device " + device.str() +
                                " in this build");
#endif
  return device;
}

}  // namespace

#ifdef OPTIMI_WITH_CUDA
#define OPTIMI_ROUTE(device, call) return (device).is_cpu() ? cpu::call : cuda::call
#else
#define OPTIMI_ROUTE(device, call) return (void)(device), cpu::call
#endif

void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  OPTIMI_ROUTE(common_device("unary", {&out, &x}), unary(op, x, out, scalar));
}
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  OPTIMI_ROUTE(common_device("binary", {&out, &a, &b}), binary(op, a, b, out));
}
void copy(const Tensor& src, Tensor& dst) {
  // The one kernel that crosses devices: host to host stays on the CPU, a copy that touches a GPU
  // is the CUDA backend's.
  if (src.device().is_cpu() && dst.device().is_cpu()) return cpu::copy(src, dst);
#ifdef OPTIMI_WITH_CUDA
  cuda::copy(src, dst);
#else
  throw std::invalid_argument("copy: no kernel from " + src.device().str() + " to " +
                              dst.device().str() + " in this build");
#endif
}
void fill(Tensor& dst, double value) {
  OPTIMI_ROUTE(common_device("fill", {&dst}), fill(dst, value));
}
void reduce_sum(const Tensor& x, int64_t dim, Tensor& out) {
  OPTIMI_ROUTE(common_device("sum", {&x, &out}), reduce_sum(x, dim, out));
}
void reduce_max(const Tensor& x, int64_t dim, Tensor& out) {
  OPTIMI_ROUTE(common_device("max", {&x, &out}), reduce_max(x, dim, out));
}
void reduce_sum_all(const Tensor& x, Tensor& out) {
  OPTIMI_ROUTE(common_device("sum", {&x, &out}), reduce_sum_all(x, out));
}

void gemm(const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias) {
  const Device device = common_device("matmul", {&c, &a, &b, &bias});
  if (a.shape().back() == 0) {  // an empty product: c is the bias, or zero, on every backend
    return bias.defined() ? copy(bias.expand(c.shape()), c) : fill(c, 0.0);
  }
  OPTIMI_ROUTE(device, gemm(a, b, c, bias));
}
void gemm_concurrent(const std::vector<GemmProduct>& products) {
  // The CPU runs them side by side; an empty depth is gemm's own case (the bias, or zeros).
  bool cpu_with_depth = true;
  for (const GemmProduct& p : products) {
    const bool on_cpu = common_device("matmul", {&p.c, &p.a, &p.b, &p.bias}).is_cpu();
    cpu_with_depth = cpu_with_depth && on_cpu && p.a.shape().back() > 0;
  }
  if (cpu_with_depth) return cpu::gemm_concurrent(products);
  for (GemmProduct p : products) gemm(p.a, p.b, p.c, p.bias);
}

void index_select(const Tensor& src, int64_t dim, const Tensor& index, Tensor& out) {
  OPTIMI_ROUTE(common_device("index_select", {&out, &src, &index}),
               index_select(src, dim, index, out));
}
void index_add(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src) {
  OPTIMI_ROUTE(common_device("index_add", {&dst, &index, &src}), index_add(dst, dim, index, src));
}

#undef OPTIMI_ROUTE

}  // namespace optimi::kernels

#include "optimi/ops.hpp"

namespace optimi::kernels {

Tensor unary(UnaryOp op, const Tensor& x, double scalar) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) unary(op, x, out, scalar);
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out =
      Tensor::empty(broadcast_shapes("binary", a.shape(), b.shape()), a.dtype(), a.device());
  if (out.numel() > 0) binary(op, a, b, out);
  return out;
}

}  // namespace optimi::kernels
