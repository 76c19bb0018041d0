#pragma once

#include <optional>

#include "optimi/tensor.hpp"

// Layer-level differentiable operations, each with a fused CPU kernel in kernels/.
namespace optimi::nn::functional {

// x [..., in] @ weight[out, in]^T + bias[out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// weight [num, dim] gathered by Int64 indices of any shape -> [..., dim]; backward scatter-adds.
Tensor embedding(const Tensor& indices, const Tensor& weight);

Tensor relu(const Tensor&);
Tensor silu(const Tensor&);
Tensor sigmoid(const Tensor&);
Tensor mish(const Tensor&);
enum class GeluApproximation { None, Tanh };
Tensor gelu(const Tensor&, GeluApproximation = GeluApproximation::None);

Tensor softmax(const Tensor&, int64_t dim);
Tensor log_softmax(const Tensor&, int64_t dim);
// Normalises over the trailing dims given by `normalized_shape`; weight/bias may be undefined.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Inverted dropout with the global generator; identity when !training or p == 0.
Tensor dropout(const Tensor&, double p, bool training);

// Mean cross-entropy of logits [N, C] (or [..., C]) against Int64 targets [N] (or [...]).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
Tensor mse_loss(const Tensor& input, const Tensor& target);  // mean reduction

// q, k, v [..., seq, head_dim]; softmax(q k^T * scale + causal mask) v. scale defaults to
// 1/sqrt(head_dim).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool is_causal = true, std::optional<double> scale = {});

}  // namespace optimi::nn::functional
