#include <stdexcept>
#include <string>

#include "kernels/cpu/nn_kernels.hpp"
#include "kernels/nn.hpp"
#ifdef OPTIMI_WITH_CUDA
#include "kernels/cuda/backend.hpp"
#endif

// Routes the fused kernels of nn::functional to the backend of their tensors' device. The callers
// (nn/src/functional.cpp) have already put every operand on one device.
namespace optimi::kernels {
namespace {

Device device_of(const char* op, const Tensor& t) {
  const Device device = t.device();
#ifndef OPTIMI_WITH_CUDA
  if (!device.is_cpu())
    throw std::invalid_argument(std::string(op) + ": no kernel for device " + device.str() +
                                " in this build");
#endif
  return device;
}

}  // namespace

#ifdef OPTIMI_WITH_CUDA
#define OPTIMI_ROUTE(op, tensor, call) \
  return device_of(op, tensor).is_cpu() ? cpu::call : cuda::call
#else
#define OPTIMI_ROUTE(op, tensor, call) return (void)device_of(op, tensor), cpu::call
#endif

void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t size, int64_t inner,
                     bool log) {
  OPTIMI_ROUTE("softmax", x, softmax_forward(x, y, outer, size, inner, log));
}
void softmax_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x, int64_t outer,
                      int64_t size, int64_t inner, bool log) {
  OPTIMI_ROUTE("softmax", y, softmax_backward(grad_y, y, grad_x, outer, size, inner, log));
}
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        Tensor& y, Tensor& mean, Tensor& rstd) {
  OPTIMI_ROUTE("layer_norm", x, layer_norm_forward(x, weight, bias, eps, y, mean, rstd));
}
void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& weight, Tensor& grad_x,
                         Tensor& grad_weight, Tensor& grad_bias) {
  OPTIMI_ROUTE("layer_norm", x,
               layer_norm_backward(grad_y, x, mean, rstd, weight, grad_x, grad_weight, grad_bias));
}
void embedding_forward(const Tensor& indices, const Tensor& weight, Tensor& out) {
  OPTIMI_ROUTE("embedding", weight, embedding_forward(indices, weight, out));
}
void embedding_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_weight) {
  OPTIMI_ROUTE("embedding", grad_weight, embedding_backward(grad_out, indices, grad_weight));
}
double cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& probs) {
  OPTIMI_ROUTE("cross_entropy", logits, cross_entropy_forward(logits, targets, probs));
}
void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double scale,
                            Tensor& grad_logits) {
  OPTIMI_ROUTE("cross_entropy", probs, cross_entropy_backward(probs, targets, scale, grad_logits));
}
double mse_forward(const Tensor& input, const Tensor& target) {
  OPTIMI_ROUTE("mse_loss", input, mse_forward(input, target));
}
void mse_backward(const Tensor& input, const Tensor& target, double scale, Tensor& grad_input,
                  Tensor& grad_target) {
  OPTIMI_ROUTE("mse_loss", input, mse_backward(input, target, scale, grad_input, grad_target));
}
void dropout_mask(Tensor& mask, double p, Generator& gen) {
  OPTIMI_ROUTE("dropout", mask, dropout_mask(mask, p, gen));
}
void dropout_apply(const Tensor& x, const Tensor& mask, double scale, Tensor& out) {
  OPTIMI_ROUTE("dropout", x, dropout_apply(x, mask, scale, out));
}
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                       Tensor& out, Tensor& probs) {
  OPTIMI_ROUTE("scaled_dot_product_attention", q,
               attention_forward(q, k, v, scale, causal, out, probs));
}
void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& probs, double scale, bool causal, Tensor& grad_q,
                        Tensor& grad_k, Tensor& grad_v) {
  OPTIMI_ROUTE("scaled_dot_product_attention", q,
               attention_backward(grad_out, q, k, v, probs, scale, causal, grad_q, grad_k, grad_v));
}

#undef OPTIMI_ROUTE

}  // namespace optimi::kernels
