#pragma once

#include "optimi/tensor.hpp"

// Device-dispatched element-wise kernels. Outputs are preallocated by the caller; inputs may be
// strided views and broadcast to the output's shape. Each op names a functor of functors.hpp.
namespace optimi::kernels {

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Tanh,
  Abs,
  Sign,
  Relu,
  Sigmoid,
  Silu,
  Mish,
  GeluTanh,
  GeluErf,
  AddScalar,
  MulScalar,
  RSubScalar,
  RDivScalar,
  PowScalar,  // use `scalar`
};
enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  Maximum,
  GreaterEqualMask,
  ReluBackward,
  SigmoidBackward,
  SiluBackward,
  MishBackward,
  GeluTanhBackward,
  GeluErfBackward,
  TanhBackward,
};

// out = op(x[, scalar]); x has out's shape or broadcasts to it.
void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar = 0.0);
// out = op(a, b); a and b broadcast to out's shape. Inputs are read in out's dtype's compute type.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// dst = src converted to dst's dtype; src broadcasts to dst's shape. Handles any strides.
void copy(const Tensor& src, Tensor& dst);
void fill(Tensor& dst, double value);

// Sum (or max) over dimension `dim` of x into out, whose shape is x's with that dim removed (or
// kept as 1; only the element count matters). Accumulates in double for float64, float otherwise.
void reduce_sum(const Tensor& x, int64_t dim, Tensor& out);
void reduce_max(const Tensor& x, int64_t dim, Tensor& out);
// Sum of all elements into a one-element out.
void reduce_sum_all(const Tensor& x, Tensor& out);

}  // namespace optimi::kernels

// Allocating forms: a new contiguous tensor of x's (or the broadcast of a and b's) shape, dtype
// and device. The caller has already promoted the operands to one dtype.
namespace optimi::kernels {
Tensor unary(UnaryOp op, const Tensor& x, double scalar = 0.0);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
}  // namespace optimi::kernels
