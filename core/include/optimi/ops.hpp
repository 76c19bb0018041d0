#pragma once

#include <vector>

#include "optimi/tensor.hpp"

// Differentiable tensor operations beyond the Tensor members. Layer-level operations (softmax,
// layer_norm, activations, losses, attention) live in optimi::nn::functional.
namespace optimi {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient goes to the larger (a on ties)

Tensor exp(const Tensor&);
Tensor log(const Tensor&);
Tensor sqrt(const Tensor&);
Tensor rsqrt(const Tensor&);
Tensor tanh(const Tensor&);
Tensor abs(const Tensor&);
Tensor neg(const Tensor&);
Tensor pow(const Tensor&, double exponent);

// Batched matrix product with PyTorch's rules (1-D operands, broadcast batch dims).
Tensor matmul(const Tensor& a, const Tensor& b);

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim);
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);  // Int64 index

// Reduces a broadcast gradient back to `shape` (sums over broadcast dimensions).
Tensor sum_to(const Tensor& t, const Shape& shape);
// The broadcast of two shapes; throws std::invalid_argument naming `op` and both shapes.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

Tensor zeros_like(const Tensor&);
Tensor ones_like(const Tensor&);
Tensor empty_like(const Tensor&);

}  // namespace optimi
