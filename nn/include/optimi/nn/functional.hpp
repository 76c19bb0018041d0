#pragma once

#include <optional>

#include "optimi/tensor.hpp"

// Layer-level differentiable operations, each with a fused CPU kernel in kernels/.
namespace optimi::nn::functional {

// x [..., in] @ weight[out, in]^T + bias[out]: one GEMM over all leading dims with the bias added
// in its epilogue. x, weight and bias share one dtype and one device.
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
// Normalises over the trailing dims given by `normalized_shape`. weight/bias may be undefined or
// of another floating dtype than x (a float32 LayerNorm on bfloat16 activations); y has x's dtype.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Inverted dropout with the global generator; identity when !training or p == 0.
Tensor dropout(const Tensor&, double p, bool training);

// Mean cross-entropy of logits [N, C] (or [..., C]) against Int64 targets [N] (or [...]), each in
// [0, C). The loss is a 0-dim tensor of the logits' dtype.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);
// Mean reduction over same-shaped operands; mixed dtypes compute in the promoted one.
Tensor mse_loss(const Tensor& input, const Tensor& target);

// q [..., sq, d], k [..., sk, d], v [..., sk, dv] with equal leading dims, one dtype;
// softmax(q k^T * scale + mask) v -> [..., sq, dv]. The causal mask lets query i see keys j <= i
// (PyTorch's top-left alignment). scale defaults to 1/sqrt(d). Views with a unit-stride last dim
// (heads split out of a fused qkv projection) are read in place, and the output and gradients are
// laid out in memory like their inputs (PyTorch's preserve_format): heads split from [B, T, H, d]
// give a [B, H, T, dv] view of a [B, T, H, dv] tensor, which transpose(1, 2) merges for free.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool is_causal = true, std::optional<double> scale = {});

}  // namespace optimi::nn::functional
