#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/dtype_dispatch.hpp"
#include "optimi/dtype.hpp"
#include "optimi/random.hpp"
#include "optimi/tensor.hpp"

// Fused CPU kernels behind optimi::nn::functional. Callers validate arguments and allocate the
// outputs; unless said otherwise every tensor is contiguous. 16-bit floats compute in float32 and
// round on store, float64 computes in double. "Compute-typed" tensors (saved statistics, weights
// handed to a kernel) are Float64 for float64 inputs and Float32 otherwise.
namespace optimi::kernels::cpu {

// The dtype kernels compute in for inputs of `dtype`.
inline DType compute_dtype(DType dtype) {
  return dtype == DType::Float64 ? DType::Float64 : DType::Float32;
}

// softmax (or log_softmax) of x viewed as [outer, size, inner] along the middle axis.
void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t size, int64_t inner,
                     bool log);
// Gradient from the saved output y.
void softmax_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x, int64_t outer,
                      int64_t size, int64_t inner, bool log);

// x viewed as [rows, cols]. weight and bias are compute-typed [cols] or undefined; mean and rstd
// are compute-typed [rows] and saved for backward.
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        Tensor& y, Tensor& mean, Tensor& rstd);
// Fills whichever of grad_x (x's dtype), grad_weight and grad_bias (compute-typed) are defined.
void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& weight, Tensor& grad_x,
                         Tensor& grad_weight, Tensor& grad_bias);

// out[i, :] = weight[indices[i], :]; indices are already bounds-checked.
void embedding_forward(const Tensor& indices, const Tensor& weight, Tensor& out);
// grad_weight (compute-typed, zeroed) [num, dim] += scatter of grad_out [n, dim] by indices.
void embedding_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_weight);

// logits [rows, classes], Int64 targets [rows] (bounds-checked). Writes softmax(logits) into
// probs (compute-typed, [rows, classes]) and returns the sum of the per-row losses.
double cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& probs);
// grad_logits = (probs - onehot(targets)) * scale.
void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double scale,
                            Tensor& grad_logits);

// Sum of (input - target)^2 over same-shaped tensors.
double mse_forward(const Tensor& input, const Tensor& target);
// grad_input = scale * (input - target), grad_target = -grad_input; undefined ones are skipped.
void mse_backward(const Tensor& input, const Tensor& target, double scale, Tensor& grad_input,
                  Tensor& grad_target);

// Draws a Bool keep-mask (keep with probability 1 - p) from `gen`, in element order.
void dropout_mask(Tensor& mask, double p, Generator& gen);
// out = x * mask * scale: the forward with x, the backward with the output gradient.
void dropout_apply(const Tensor& x, const Tensor& mask, double scale, Tensor& out);

// Attention over matrices batched in every dim but the last two: q [B.., sq, d], k [B.., sk, d],
// v [B.., sk, dv] with unit stride in their last dim and any strides elsewhere (views of a fused
// qkv projection need no copy). out [B.., sq, dv] and the compute-typed probabilities
// probs [B.., sq, sk] (saved for backward) are contiguous. Causal masking keeps key j <= query i.
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                       Tensor& out, Tensor& probs);
// grad_out may be strided like q; grad_q, grad_k, grad_v are contiguous in the inputs' dtype.
void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& probs, double scale, bool causal, Tensor& grad_q,
                        Tensor& grad_k, Tensor& grad_v);

}  // namespace optimi::kernels::cpu
