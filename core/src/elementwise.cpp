#include <cmath>
#include <stdexcept>

#include "kernels/elementwise.hpp"
#include "optimi/autograd.hpp"
#include "optimi/ops.hpp"

// Element-wise arithmetic and math with broadcasting, dtype promotion and autograd.
namespace optimi {

using kernels::BinaryOp;
using kernels::UnaryOp;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t x = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t y = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (x != y && x != 1 && y != 1)
      throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " +
                                  shape_str(b) + " cannot be broadcast together");
    out[out.size() - 1 - i] = x == 1 ? y : x;
  }
  return out;
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Tensor r = t;
  while (r.dim() > int64_t(shape.size())) r = r.sum(0);
  for (int64_t i = 0; i < r.dim(); ++i)
    if (shape[size_t(i)] == 1 && r.shape()[size_t(i)] != 1) r = r.sum(i, true);
  if (r.shape() != shape)
    throw std::invalid_argument("sum_to: shape " + shape_str(t.shape()) + " does not reduce to " +
                                shape_str(shape));
  return r;
}

Tensor zeros_like(const Tensor& t) {
  return Tensor::zeros(t.shape(), t.dtype(), t.device());
}
Tensor ones_like(const Tensor& t) {
  return Tensor::ones(t.shape(), t.dtype(), t.device());
}
Tensor empty_like(const Tensor& t) {
  return Tensor::empty(t.shape(), t.dtype(), t.device());
}

namespace {

void require_defined(const char* op, const Tensor& t) {
  if (!t.defined()) throw std::invalid_argument(std::string(op) + ": the tensor is undefined");
}

// Inputs of an element-wise op in their common dtype; `floating` forces a floating result the
// way PyTorch's true division and transcendental functions do.
Tensor as_dtype(const Tensor& t, DType dtype) {
  return t.dtype() == dtype ? t : t.detach().to(dtype);
}

DType result_dtype(const Tensor& a, const Tensor& b, bool floating) {
  DType t = promote_types(a.dtype(), b.dtype());
  if (t == DType::Bool && !floating) t = DType::Int64;
  return floating && !is_floating_point(t) ? DType::Float32 : t;
}

Tensor binary_forward(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b,
                      bool floating = false) {
  require_defined(op, a);
  require_defined(op, b);
  if (a.device() != b.device())
    throw std::invalid_argument(std::string(op) + ": tensors on different devices: " +
                                a.device().str() + " and " + b.device().str());
  DType t = result_dtype(a, b, floating);
  Tensor out = Tensor::empty(broadcast_shapes(op, a.shape(), b.shape()), t, a.device());
  if (out.numel() > 0) kernels::binary(kind, as_dtype(a, t), as_dtype(b, t), out);
  return out;
}

Tensor unary_forward(const char* op, UnaryOp kind, const Tensor& x, double scalar = 0.0,
                     bool floating = true) {
  require_defined(op, x);
  DType t = x.dtype();
  if (t == DType::Bool || (floating && !is_floating_point(t))) t = DType::Float32;
  return kernels::unary(kind, as_dtype(x, t), scalar);
}

// Scalar operands keep the tensor's dtype, as in PyTorch, unless an integer tensor meets a
// fractional scalar.
bool needs_float(const Tensor& x, double s) {
  return !x.is_floating_point() && s != std::floor(s);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("add", BinaryOp::Add, a, b);
  autograd::record("add", {a, b}, out,
                   [sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
                     return Grads{n[0] ? sum_to(g, sa) : Tensor(), n[1] ? sum_to(g, sb) : Tensor()};
                   });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("sub", BinaryOp::Sub, a, b);
  autograd::record(
      "sub", {a, b}, out, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
        return Grads{n[0] ? sum_to(g, sa) : Tensor(), n[1] ? sum_to(-g, sb) : Tensor()};
      });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("mul", BinaryOp::Mul, a, b);
  autograd::record("mul", {a, b}, out,
                   [a = a.detach(), b = b.detach()](const Tensor& g, const Needs& n) {
                     return Grads{n[0] ? sum_to(g * b, a.shape()) : Tensor(),
                                  n[1] ? sum_to(g * a, b.shape()) : Tensor()};
                   });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("div", BinaryOp::Div, a, b, true);
  autograd::record("div", {a, b}, out,
                   [a = a.detach(), b = b.detach()](const Tensor& g, const Needs& n) {
                     Tensor ga = g / b;
                     return Grads{n[0] ? sum_to(ga, a.shape()) : Tensor(),
                                  n[1] ? sum_to(-ga * a / b, b.shape()) : Tensor()};
                   });
  return out;
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("maximum", BinaryOp::Maximum, a, b);
  autograd::record(
      "maximum", {a, b}, out, [a = a.detach(), b = b.detach()](const Tensor& g, const Needs& n) {
        DType t = promote_types(a.dtype(), b.dtype());
        Tensor mask = kernels::binary(BinaryOp::GreaterEqualMask, as_dtype(a, t), as_dtype(b, t));
        return Grads{n[0] ? sum_to(g * mask, a.shape()) : Tensor(),
                     n[1] ? sum_to(g * (1.0 - mask), b.shape()) : Tensor()};
      });
  return out;
}

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator-(const Tensor& a) {
  return neg(a);
}

Tensor operator+(const Tensor& x, double s) {
  Tensor out = unary_forward("add", UnaryOp::AddScalar, x, s, needs_float(x, s));
  autograd::record("add", {x}, out, [](const Tensor& g, const Needs&) { return Grads{g}; });
  return out;
}
Tensor operator-(const Tensor& x, double s) {
  return x + (-s);
}
Tensor operator*(const Tensor& x, double s) {
  Tensor out = unary_forward("mul", UnaryOp::MulScalar, x, s, needs_float(x, s));
  autograd::record("mul", {x}, out, [s](const Tensor& g, const Needs&) { return Grads{g * s}; });
  return out;
}
Tensor operator/(const Tensor& x, double s) {
  Tensor out = unary_forward("div", UnaryOp::MulScalar, x, 1.0 / s, true);
  autograd::record("div", {x}, out, [s](const Tensor& g, const Needs&) { return Grads{g / s}; });
  return out;
}
Tensor operator+(double s, const Tensor& x) {
  return x + s;
}
Tensor operator*(double s, const Tensor& x) {
  return x * s;
}
Tensor operator-(double s, const Tensor& x) {
  Tensor out = unary_forward("rsub", UnaryOp::RSubScalar, x, s, needs_float(x, s));
  autograd::record("rsub", {x}, out, [](const Tensor& g, const Needs&) { return Grads{-g}; });
  return out;
}
Tensor operator/(double s, const Tensor& x) {
  Tensor out = unary_forward("rdiv", UnaryOp::RDivScalar, x, s, true);
  autograd::record("rdiv", {x}, out,
                   [x = x.detach(), out = out.detach()](const Tensor& g, const Needs&) {
                     return Grads{-g * out / x};
                   });
  return out;
}

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward("neg", UnaryOp::Neg, x, 0.0, false);
  autograd::record("neg", {x}, out, [](const Tensor& g, const Needs&) { return Grads{-g}; });
  return out;
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_forward("exp", UnaryOp::Exp, x);
  autograd::record("exp", {x}, out,
                   [out = out.detach()](const Tensor& g, const Needs&) { return Grads{g * out}; });
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = unary_forward("log", UnaryOp::Log, x);
  autograd::record("log", {x}, out,
                   [x = x.detach()](const Tensor& g, const Needs&) { return Grads{g / x}; });
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_forward("sqrt", UnaryOp::Sqrt, x);
  autograd::record("sqrt", {x}, out, [out = out.detach()](const Tensor& g, const Needs&) {
    return Grads{g * 0.5 / out};
  });
  return out;
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = unary_forward("rsqrt", UnaryOp::Rsqrt, x);
  autograd::record("rsqrt", {x}, out, [out = out.detach()](const Tensor& g, const Needs&) {
    return Grads{g * -0.5 * out * out * out};
  });
  return out;
}

Tensor tanh(const Tensor& x) {
  Tensor out = unary_forward("tanh", UnaryOp::Tanh, x);
  autograd::record("tanh", {x}, out, [out = out.detach()](const Tensor& g, const Needs&) {
    return Grads{kernels::binary(BinaryOp::TanhBackward, as_dtype(g, out.dtype()), out)};
  });
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_forward("abs", UnaryOp::Abs, x, 0.0, false);
  autograd::record("abs", {x}, out, [x = x.detach()](const Tensor& g, const Needs&) {
    return Grads{g * kernels::unary(UnaryOp::Sign, x)};
  });
  return out;
}

Tensor pow(const Tensor& x, double e) {
  if (!std::isfinite(e))
    throw std::invalid_argument("pow: exponent must be finite, got " + std::to_string(e));
  Tensor out = unary_forward("pow", UnaryOp::PowScalar, x, e, needs_float(x, e) || e < 0);
  autograd::record("pow", {x}, out, [x = x.detach(), e](const Tensor& g, const Needs&) {
    return Grads{g * e * pow(x, e - 1.0)};
  });
  return out;
}

Tensor Tensor::exp() const {
  return optimi::exp(*this);
}
Tensor Tensor::log() const {
  return optimi::log(*this);
}
Tensor Tensor::sqrt() const {
  return optimi::sqrt(*this);
}
Tensor Tensor::rsqrt() const {
  return optimi::rsqrt(*this);
}
Tensor Tensor::tanh() const {
  return optimi::tanh(*this);
}
Tensor Tensor::abs() const {
  return optimi::abs(*this);
}
Tensor Tensor::neg() const {
  return optimi::neg(*this);
}
Tensor Tensor::pow(double e) const {
  return optimi::pow(*this, e);
}

}  // namespace optimi
