#include <stdexcept>

#include "kernels/cpu/elementwise.hpp"
#include "kernels/elementwise.hpp"

// Routes each kernel to the backend of its tensors' device.
namespace optimi::kernels {
namespace {
void require_cpu(const char* op, const Tensor& t) {
  if (!t.device().is_cpu())
    throw std::invalid_argument(std::string(op) + ": no kernel for device " + t.device().str() +
                                " in this build");
}
}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  require_cpu("unary", out);
  cpu::unary(op, x, out, scalar);
}
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  require_cpu("binary", out);
  cpu::binary(op, a, b, out);
}
void copy(const Tensor& src, Tensor& dst) {
  require_cpu("copy", dst);
  require_cpu("copy", src);
  cpu::copy(src, dst);
}
void fill(Tensor& dst, double value) {
  require_cpu("fill", dst);
  cpu::fill(dst, value);
}
void reduce_sum(const Tensor& x, int64_t dim, Tensor& out) {
  require_cpu("sum", x);
  cpu::reduce_sum(x, dim, out);
}
void reduce_max(const Tensor& x, int64_t dim, Tensor& out) {
  require_cpu("max", x);
  cpu::reduce_max(x, dim, out);
}
void reduce_sum_all(const Tensor& x, Tensor& out) {
  require_cpu("sum", x);
  cpu::reduce_sum_all(x, out);
}

}  // namespace optimi::kernels

#include "optimi/ops.hpp"

namespace optimi::kernels {

Tensor unary(UnaryOp op, const Tensor& x, double scalar) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) unary(op, x, out, scalar);
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(broadcast_shapes("binary", a.shape(), b.shape()), a.dtype(), a.device());
  if (out.numel() > 0) binary(op, a, b, out);
  return out;
}

}  // namespace optimi::kernels
