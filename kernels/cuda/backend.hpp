#pragma once

#include <span>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/optimizer_launch.hpp"
#include "kernels/optimizers.hpp"
#include "optimi/memory.hpp"
#include "optimi/random.hpp"
#include "optimi/tensor.hpp"

// The CUDA backend as the device-neutral dispatchers (kernels/*.cpp) and memory.cpp see it: plain
// C++ declarations, defined in kernels/cuda/*.cu. Contracts are those of the device-neutral
// headers (kernels/elementwise.hpp, gemm.hpp, index.hpp, nn.hpp, optimizer_launch.hpp); every
// kernel is queued on its device's stream and returns without waiting unless it returns a host
// value. Only a build with OPTIMI_WITH_CUDA defines these.
namespace optimi::kernels::cuda {

// The caching allocator behind Device::cuda(i) storage.
Allocator& device_allocator();

// Element-wise, copies and reductions. copy() also moves between host and device and between
// devices, converting dtypes and strides on the way.
void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void copy(const Tensor& src, Tensor& dst);
void fill(Tensor& dst, double value);
void reduce_sum(const Tensor& x, int64_t dim, Tensor& out);
void reduce_max(const Tensor& x, int64_t dim, Tensor& out);
void reduce_sum_all(const Tensor& x, Tensor& out);

// cuBLAS.
void gemm(const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias);

void index_select(const Tensor& src, int64_t dim, const Tensor& index, Tensor& out);
void index_add(Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);

// The fused kernels of nn::functional.
void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t size, int64_t inner,
                     bool log);
void softmax_backward(const Tensor& grad_y, const Tensor& y, Tensor& grad_x, int64_t outer,
                      int64_t size, int64_t inner, bool log);
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        Tensor& y, Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd, const Tensor& weight, Tensor& grad_x,
                         Tensor& grad_weight, Tensor& grad_bias);
void embedding_forward(const Tensor& indices, const Tensor& weight, Tensor& out);
void embedding_backward(const Tensor& grad_out, const Tensor& indices, Tensor& grad_weight);
double cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& probs);
void cross_entropy_backward(const Tensor& probs, const Tensor& targets, double scale,
                            Tensor& grad_logits);
double mse_forward(const Tensor& input, const Tensor& target);
void mse_backward(const Tensor& input, const Tensor& target, double scale, Tensor& grad_input,
                  Tensor& grad_target);
void dropout_mask(Tensor& mask, double p, Generator& gen);
void dropout_apply(const Tensor& x, const Tensor& mask, double scale, Tensor& out);
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                       Tensor& out, Tensor& probs);
void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& probs, double scale, bool causal, Tensor& grad_q,
                        Tensor& grad_k, Tensor& grad_v);

// Multi-tensor optimizer launches over tensors on `device`. Instantiated for every functor of
// kernels/optimizers.hpp.
template <class Op>
std::vector<double> launch(Device device, std::span<const Op> ops,
                           std::span<const KernelArgs> tensors);
void stable_adamw_step(Device device, const StableAdamWMoments& moments,
                       const StableAdamWClip& clip, std::span<const KernelArgs> tensors,
                       bool update);

}  // namespace optimi::kernels::cuda
