#include <stdexcept>

#include "kernels/elementwise.hpp"
#include "optimi/autograd.hpp"
#include "optimi/ops.hpp"

// Reductions over all elements or one dimension, with autograd.
namespace optimi {
namespace {

using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

Shape reduced_shape(const Shape& s, int64_t dim, bool keepdim) {
  Shape out = s;
  if (keepdim) {
    out[size_t(dim)] = 1;
  } else {
    out.erase(out.begin() + dim);
  }
  return out;
}

// Integer and bool sums accumulate as int64, like PyTorch.
DType sum_dtype(DType t) {
  return is_floating_point(t) ? t : DType::Int64;
}

Tensor reduce_input(const Tensor& x, DType dtype) {
  Tensor c = x.dtype() == dtype ? x : x.detach().to(dtype);
  return c.is_contiguous() ? c : c.detach().contiguous();
}

void require_defined(const char* op, const Tensor& t) {
  if (!t.defined()) throw std::invalid_argument(std::string(op) + ": the tensor is undefined");
}

// The gradient of a max-reduction: shared equally by the elements that attain the maximum.
Tensor max_backward(const Tensor& g_kept, const Tensor& x, const Tensor& max_kept, int64_t dim) {
  Tensor mask = kernels::binary(kernels::BinaryOp::GreaterEqualMask, x, max_kept.expand(x.shape()));
  Tensor count = dim < 0 ? mask.sum() : mask.sum(dim, true);
  return g_kept * mask / count;
}

}  // namespace

Tensor Tensor::sum() const {
  require_defined("sum", *this);
  Tensor out = Tensor::empty({}, sum_dtype(dtype()), device());
  if (numel() == 0) {
    out.fill_(0.0);
  } else {
    kernels::reduce_sum_all(reduce_input(*this, out.dtype()), out);
  }
  autograd::record("sum", {*this}, out, [shape = shape()](const Tensor& g, const Needs&) {
    return Grads{g.expand(shape)};
  });
  return out;
}

Tensor Tensor::sum(int64_t d, bool keepdim) const {
  require_defined("sum", *this);
  if (dim() == 0) return (normalize_dim("sum", d, 0), sum());
  d = normalize_dim("sum", d, dim());
  Tensor out = Tensor::empty(reduced_shape(shape(), d, keepdim), sum_dtype(dtype()), device());
  if (out.numel() > 0) {
    if (numel() == 0) {
      out.fill_(0.0);
    } else {
      kernels::reduce_sum(reduce_input(*this, out.dtype()), d, out);
    }
  }
  autograd::record("sum", {*this}, out, [shape = shape(), d](const Tensor& g, const Needs&) {
    return Grads{g.reshape(reduced_shape(shape, d, true)).expand(shape)};
  });
  return out;
}

Tensor Tensor::mean() const {
  if (numel() == 0)
    throw std::invalid_argument("mean: empty tensor of shape " + shape_str(shape()));
  if (!is_floating_point())
    throw std::invalid_argument("mean: needs a floating-point tensor, got " +
                                std::string(dtype_name(dtype())));
  return sum() / double(numel());
}

Tensor Tensor::mean(int64_t d, bool keepdim) const {
  require_defined("mean", *this);
  if (!is_floating_point())
    throw std::invalid_argument("mean: needs a floating-point tensor, got " +
                                std::string(dtype_name(dtype())));
  if (dim() == 0) return (normalize_dim("mean", d, 0), mean());
  int64_t n = shape()[size_t(normalize_dim("mean", d, dim()))];
  if (n == 0)
    throw std::invalid_argument("mean: reducing an empty dimension of shape " + shape_str(shape()));
  return sum(d, keepdim) / double(n);
}

Tensor Tensor::max() const {
  require_defined("max", *this);
  if (numel() == 0) throw std::invalid_argument("max: empty tensor of shape " + shape_str(shape()));
  Tensor flat = reduce_input(*this, dtype()).reshape({numel()});
  Tensor out = Tensor::empty({}, dtype(), device());
  kernels::reduce_max(flat, 0, out);
  autograd::record("max", {*this}, out,
                   [x = detach(), out = out.detach()](const Tensor& g, const Needs&) {
                     return Grads{max_backward(g, x, out, -1)};
                   });
  return out;
}

Tensor Tensor::max(int64_t d, bool keepdim) const {
  require_defined("max", *this);
  if (dim() == 0) return (normalize_dim("max", d, 0), max());
  d = normalize_dim("max", d, dim());
  if (shape()[size_t(d)] == 0)
    throw std::invalid_argument("max: reducing an empty dimension of shape " + shape_str(shape()));
  Tensor out = Tensor::empty(reduced_shape(shape(), d, keepdim), dtype(), device());
  if (out.numel() > 0) kernels::reduce_max(reduce_input(*this, dtype()), d, out);
  autograd::record("max", {*this}, out,
                   [x = detach(), out = out.detach(), d](const Tensor& g, const Needs&) {
                     Shape kept = reduced_shape(x.shape(), d, true);
                     return Grads{max_backward(g.reshape(kept), x, out.reshape(kept), d)};
                   });
  return out;
}

}  // namespace optimi
