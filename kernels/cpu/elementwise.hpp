#pragma once

#include "kernels/elementwise.hpp"

// CPU implementations behind kernels/elementwise.hpp (see there for the contracts).
namespace optimi::kernels::cpu {
void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void copy(const Tensor& src, Tensor& dst);
void fill(Tensor& dst, double value);
void reduce_sum(const Tensor& x, int64_t dim, Tensor& out);
void reduce_max(const Tensor& x, int64_t dim, Tensor& out);
void reduce_sum_all(const Tensor& x, Tensor& out);
}  // namespace optimi::kernels::cpu
