#include "optimi/nn/functional.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/nn.hpp"
#include "optimi/autograd.hpp"
#include "optimi/ops.hpp"
#include "optimi/random.hpp"

namespace optimi::nn::functional {
namespace {

using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

void require_defined(const char* op, const Tensor& t, const char* name) {
  if (!t.defined()) fail(op, std::string(name) + " is undefined");
}

void require_floating(const char* op, const Tensor& t, const char* name) {
  require_defined(op, t, name);
  if (!t.is_floating_point())
    fail(op,
         std::string(name) + " must be floating point, got " + std::string(dtype_name(t.dtype())));
}

void require_int64(const char* op, const Tensor& t, const char* name) {
  require_defined(op, t, name);
  if (t.dtype() != DType::Int64)
    fail(op, std::string(name) + " must be int64, got " + std::string(dtype_name(t.dtype())));
}

// The fused kernels run on the device of their operands, which must all be on one.
void require_same_device(const char* op, const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    if (t.defined() && t.device() != tensors.front().device())
      fail(op, "expected all tensors on " + tensors.front().device().str() + ", got one on " +
                   t.device().str());
  }
}

// A kernel operand: no autograd history, contiguous, in `dtype`.
Tensor operand(const Tensor& t, DType dtype) {
  return t.detach().to(dtype).contiguous();
}
Tensor operand(const Tensor& t) {
  return operand(t, t.dtype());
}

Tensor empty_like_shape(const Tensor& t) {
  return Tensor::empty(t.shape(), t.dtype(), t.device());
}

Tensor activation(const char* op, const Tensor& x, kernels::UnaryOp forward,
                  kernels::BinaryOp backward) {
  require_floating(op, x, "input");
  Tensor out = empty_like_shape(x);
  kernels::unary(forward, x, out);
  autograd::record(op, {x}, out, [x = x.detach(), backward](const Tensor& g, const Needs&) {
    Tensor dx = empty_like_shape(x);
    kernels::binary(backward, g, x, dx);
    return Grads{dx};
  });
  return out;
}

void check_targets(const char* op, const Tensor& targets, int64_t classes) {
  const Tensor host = targets.to(Device::cpu());  // checked on the host
  const int64_t* t = host.data<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) {
    if (t[i] < 0 || t[i] >= classes)
      fail(op, "target " + std::to_string(t[i]) + " at position " + std::to_string(i) +
                   " is out of range for " + std::to_string(classes) + " classes");
  }
}

Tensor softmax_impl(const char* op, const Tensor& x, int64_t dim, bool log) {
  require_floating(op, x, "input");
  require_same_device(op, {x});
  const int64_t d = normalize_dim(op, dim, x.dim());
  const Shape& shape = x.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= shape[i];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= shape[i];
  const int64_t size = x.dim() == 0 ? 1 : shape[d];
  Tensor y = empty_like_shape(x);
  kernels::softmax_forward(operand(x), y, outer, size, inner, log);
  autograd::record(
      op, {x}, y, [y = y.detach(), outer, size, inner, log](const Tensor& g, const Needs&) {
        Tensor dx = empty_like_shape(y);
        kernels::softmax_backward(operand(g, y.dtype()), y, dx, outer, size, inner, log);
        return Grads{dx};
      });
  return y;
}

// Attention operands need unit stride only in their last dim.
Tensor rows_operand(const Tensor& t, DType dtype) {
  Tensor d = t.detach().to(dtype);
  return d.dim() > 0 && d.strides().back() == 1 ? d : d.contiguous();
}

// A dense tensor of `shape` (t's rank) whose dims lie in memory in the order of t's strides, the
// last one innermost, like PyTorch's preserve_format. Attention inputs are usually heads split
// from one projection and transposed ([B, T, H, D] in memory, seen as [B, H, T, D]); outputs and
// gradients laid out the same way turn back into [B, T, H * D] without a copy.
Tensor empty_in_layout_of(const Tensor& t, const Shape& shape, DType dtype) {
  const int64_t nd = t.dim();
  std::vector<int64_t> order(static_cast<size_t>(nd));  // dims, outermost first
  for (int64_t d = 0; d < nd; ++d) order[size_t(d)] = d;
  std::stable_sort(order.begin(), order.end() - 1, [&](int64_t a, int64_t b) {
    return t.strides()[size_t(a)] > t.strides()[size_t(b)];
  });
  Shape physical(order.size()), back(order.size());
  for (int64_t i = 0; i < nd; ++i) {
    physical[size_t(i)] = shape[size_t(order[size_t(i)])];
    back[size_t(order[size_t(i)])] = i;
  }
  return Tensor::empty(physical, dtype, t.device()).permute(back);
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  require_defined("linear", x, "input");
  require_defined("linear", weight, "weight");
  if (weight.dim() != 2)
    fail("linear", "weight must be 2-D, got shape " + shape_str(weight.shape()));
  if (x.dim() < 1 || x.shape().back() != weight.shape()[1])
    fail("linear", "input of shape " + shape_str(x.shape()) + " does not match weight of shape " +
                       shape_str(weight.shape()));
  if (bias.defined() && bias.shape() != Shape{weight.shape()[0]})
    fail("linear", "bias of shape " + shape_str(bias.shape()) + " does not match weight of shape " +
                       shape_str(weight.shape()));
  require_floating("linear", x, "input");
  for (const auto& [t, name] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (t->defined() && t->dtype() != x.dtype())
      fail("linear", std::string(name) + " is " + std::string(dtype_name(t->dtype())) +
                         " but the input is " + std::string(dtype_name(x.dtype())));
  }
  require_same_device("linear", {x, weight, bias});
  // One GEMM over all leading dims with the bias added in its epilogue; backward writes the
  // weight's gradient in the weight's own layout, so nothing is transposed or copied.
  const int64_t in = weight.shape()[1], out = weight.shape()[0];
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape y_shape = x.shape();
  y_shape.back() = out;
  const Tensor x2 = x.detach().reshape({rows, in});
  const Tensor w = weight.detach();
  Tensor y = Tensor::empty({rows, out}, x.dtype(), x.device());
  kernels::gemm(x2, w.transpose(0, 1), y, bias.defined() ? bias.detach().contiguous() : Tensor());
  y = y.reshape(y_shape);
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  // Each gradient needs only the other operand.
  autograd::record(
      "linear", inputs, y,
      [x2 = weight.requires_grad() ? x2 : Tensor(), w = x.requires_grad() ? w : Tensor(),
       x_shape = x.shape(), dtype = x.dtype(), rows, in, out](const Tensor& g, const Needs& needs) {
        const Tensor g2 = g.to(dtype).reshape({rows, out});
        Grads grads(needs.size());
        std::vector<kernels::GemmProduct> products;
        if (needs[0]) {
          Tensor gx = Tensor::empty({rows, in}, dtype, g.device());
          products.push_back({g2, w, gx, Tensor()});
          grads[0] = gx.reshape(x_shape);
        }
        if (needs[1]) {
          grads[1] = Tensor::empty({out, in}, dtype, g.device());
          products.push_back({g2.transpose(0, 1), x2, grads[1], Tensor()});
        }
        // The bias gradient, the column sums of g, as one more product (ones [1, rows] @ g): it
        // runs beside the other two on whichever thread is free first.
        if (needs.size() > 2 && needs[2]) {
          grads[2] = Tensor::empty({out}, dtype, g.device());
          products.push_back({Tensor::ones({1, rows}, dtype, g.device()), g2,
                              grads[2].reshape({1, out}), Tensor()});
        }
        kernels::gemm_concurrent(products);
        return grads;
      });
  return y;
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  const char* op = "embedding";
  require_int64(op, indices, "indices");
  require_floating(op, weight, "weight");
  require_same_device(op, {indices, weight});
  if (weight.dim() != 2) fail(op, "weight must be 2-D, got shape " + shape_str(weight.shape()));
  const int64_t num = weight.shape()[0];
  const int64_t dim = weight.shape()[1];
  Tensor idx = operand(indices);
  const Tensor host_idx = idx.to(Device::cpu());  // checked on the host
  const int64_t* ip = host_idx.data<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    if (ip[i] < 0 || ip[i] >= num)
      fail(op, "index " + std::to_string(ip[i]) + " is out of range for a weight with " +
                   std::to_string(num) + " rows");
  }
  Shape out_shape = indices.shape();
  out_shape.push_back(dim);
  Tensor out = Tensor::empty(out_shape, weight.dtype(), weight.device());
  kernels::embedding_forward(idx, operand(weight), out);
  autograd::record(
      op, {weight}, out,
      [idx, wshape = weight.shape(), wdtype = weight.dtype()](const Tensor& g, const Needs&) {
        Tensor gw = Tensor::zeros(wshape, kernels::compute_dtype(wdtype), idx.device());
        kernels::embedding_backward(operand(g, wdtype), idx, gw);
        return Grads{gw};
      });
  return out;
}

Tensor relu(const Tensor& x) {
  return activation("relu", x, kernels::UnaryOp::Relu, kernels::BinaryOp::ReluBackward);
}
Tensor silu(const Tensor& x) {
  return activation("silu", x, kernels::UnaryOp::Silu, kernels::BinaryOp::SiluBackward);
}
Tensor sigmoid(const Tensor& x) {
  return activation("sigmoid", x, kernels::UnaryOp::Sigmoid, kernels::BinaryOp::SigmoidBackward);
}
Tensor mish(const Tensor& x) {
  return activation("mish", x, kernels::UnaryOp::Mish, kernels::BinaryOp::MishBackward);
}
Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Tanh)
    return activation("gelu", x, kernels::UnaryOp::GeluTanh, kernels::BinaryOp::GeluTanhBackward);
  return activation("gelu", x, kernels::UnaryOp::GeluErf, kernels::BinaryOp::GeluErfBackward);
}

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("softmax", x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  require_floating(op, x, "input");
  if (weight.defined()) require_floating(op, weight, "weight");
  if (bias.defined()) require_floating(op, bias, "bias");
  require_same_device(op, {x, weight, bias});
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  const Shape& xs = x.shape();
  if (k == 0 || x.dim() < k ||
      !std::equal(normalized_shape.begin(), normalized_shape.end(), xs.end() - k))
    fail(op, "normalized_shape " + shape_str(normalized_shape) +
                 " is not a non-empty trailing part of the input shape " + shape_str(xs));
  if (weight.defined() && weight.shape() != normalized_shape)
    fail(op, "weight of shape " + shape_str(weight.shape()) + " does not match normalized_shape " +
                 shape_str(normalized_shape));
  if (bias.defined() && bias.shape() != normalized_shape)
    fail(op, "bias of shape " + shape_str(bias.shape()) + " does not match normalized_shape " +
                 shape_str(normalized_shape));
  if (!(eps >= 0)) fail(op, "eps must be non-negative, got " + std::to_string(eps));

  const DType ct = kernels::compute_dtype(x.dtype());
  const int64_t cols = shape_numel(normalized_shape);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor xc = operand(x);
  Tensor wc = weight.defined() ? operand(weight, ct) : Tensor();
  Tensor bc = bias.defined() ? operand(bias, ct) : Tensor();
  Tensor y = empty_like_shape(x);
  Tensor mean = Tensor::empty({rows}, ct, x.device());
  Tensor rstd = Tensor::empty({rows}, ct, x.device());
  kernels::layer_norm_forward(xc, wc, bc, eps, y, mean, rstd);
  autograd::record(op, {x, weight, bias}, y,
                   [xc, wc, mean, rstd, normalized_shape](const Tensor& g, const Needs& needs) {
                     const DType ct = mean.dtype();
                     Tensor dx = needs[0] ? empty_like_shape(xc) : Tensor();
                     const Device device = xc.device();
                     Tensor dw = needs[1] ? Tensor::empty(normalized_shape, ct, device) : Tensor();
                     Tensor db = needs[2] ? Tensor::empty(normalized_shape, ct, device) : Tensor();
                     kernels::layer_norm_backward(operand(g, xc.dtype()), xc, mean, rstd, wc, dx,
                                                  dw, db);
                     return Grads{dx, dw, db};
                   });
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training) {
  const char* op = "dropout";
  require_floating(op, x, "input");
  if (!(p >= 0 && p < 1)) fail(op, "p must be in [0, 1), got " + std::to_string(p));
  if (!training || p == 0) return x;
  require_same_device(op, {x});
  Tensor mask = Tensor::empty(x.shape(), DType::Bool, x.device());
  kernels::dropout_mask(mask, p, default_generator());
  const double scale = 1.0 / (1.0 - p);
  Tensor out = empty_like_shape(x);
  kernels::dropout_apply(operand(x), mask, scale, out);
  autograd::record(op, {x}, out, [mask, scale, dtype = x.dtype()](const Tensor& g, const Needs&) {
    Tensor dx = Tensor::empty(mask.shape(), dtype, mask.device());
    kernels::dropout_apply(operand(g, dtype), mask, scale, dx);
    return Grads{dx};
  });
  return out;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  const char* op = "cross_entropy";
  require_floating(op, logits, "logits");
  require_int64(op, targets, "targets");
  require_same_device(op, {logits, targets});
  if (logits.dim() < 1 ||
      Shape(logits.shape().begin(), logits.shape().end() - 1) != targets.shape())
    fail(op, "logits of shape " + shape_str(logits.shape()) +
                 " need targets of their shape without the last dim, got targets of shape " +
                 shape_str(targets.shape()));
  const int64_t classes = logits.shape().back();
  const int64_t rows = targets.numel();
  Tensor tc = operand(targets);
  check_targets(op, tc, classes);
  Tensor lc = operand(logits);
  Tensor probs = Tensor::empty(lc.shape(), kernels::compute_dtype(lc.dtype()), lc.device());
  const double total = kernels::cross_entropy_forward(lc, tc, probs);
  Tensor loss = Tensor::full({}, total / double(rows), logits.dtype(), logits.device());
  autograd::record(op, {logits}, loss,
                   [probs, tc, rows, dtype = lc.dtype()](const Tensor& g, const Needs&) {
                     Tensor grad = Tensor::empty(probs.shape(), dtype, probs.device());
                     kernels::cross_entropy_backward(probs, tc, g.item() / double(rows), grad);
                     return Grads{grad};
                   });
  return loss;
}

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  const char* op = "mse_loss";
  require_floating(op, input, "input");
  require_floating(op, target, "target");
  require_same_device(op, {input, target});
  if (input.shape() != target.shape())
    fail(op, "input of shape " + shape_str(input.shape()) + " and target of shape " +
                 shape_str(target.shape()) + " differ");
  if (input.numel() == 0) fail(op, "empty input of shape " + shape_str(input.shape()));
  // Mixed dtypes meet in the promoted one, through differentiable casts.
  const DType dtype = promote_types(input.dtype(), target.dtype());
  const Tensor a = input.to(dtype);
  const Tensor b = target.to(dtype);
  Tensor ac = operand(a);
  Tensor bc = operand(b);
  const double n = double(a.numel());
  Tensor loss = Tensor::full({}, kernels::mse_forward(ac, bc) / n, dtype, input.device());
  autograd::record(op, {a, b}, loss, [ac, bc, n](const Tensor& g, const Needs& needs) {
    Tensor ga = needs[0] ? empty_like_shape(ac) : Tensor();
    Tensor gb = needs[1] ? empty_like_shape(bc) : Tensor();
    kernels::mse_backward(ac, bc, 2.0 * g.item() / n, ga, gb);
    return Grads{ga, gb};
  });
  return loss;
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    bool is_causal, std::optional<double> scale) {
  const char* op = "scaled_dot_product_attention";
  require_floating(op, q, "query");
  require_floating(op, k, "key");
  require_floating(op, v, "value");
  require_same_device(op, {q, k, v});
  if (q.dtype() != k.dtype() || q.dtype() != v.dtype())
    fail(op, "query, key and value must share a dtype, got " + std::string(dtype_name(q.dtype())) +
                 ", " + std::string(dtype_name(k.dtype())) + " and " +
                 std::string(dtype_name(v.dtype())));
  auto shapes = [&] {  // for messages only: formatting costs more than the checks
    return "query " + shape_str(q.shape()) + ", key " + shape_str(k.shape()) + ", value " +
           shape_str(v.shape());
  };
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim())
    fail(op, "query, key and value need the same number (at least 2) of dims, got " + shapes());
  const int64_t nd = q.dim();
  const Shape& qs = q.shape();
  const Shape& ks = k.shape();
  const Shape& vs = v.shape();
  if (!std::equal(qs.begin(), qs.end() - 2, ks.begin()) ||
      !std::equal(qs.begin(), qs.end() - 2, vs.begin()) || qs[nd - 1] != ks[nd - 1] ||
      ks[nd - 2] != vs[nd - 2])
    fail(op, "incompatible shapes: " + shapes());
  const double s = scale.value_or(1.0 / std::sqrt(double(qs[nd - 1])));
  if (!std::isfinite(s)) fail(op, "scale must be finite, got " + std::to_string(s));

  const DType dtype = q.dtype();
  Tensor qc = rows_operand(q, dtype);
  Tensor kc = rows_operand(k, dtype);
  Tensor vc = rows_operand(v, dtype);
  Shape out_shape = qs;
  out_shape[nd - 1] = vs[nd - 1];
  Shape probs_shape = qs;
  probs_shape[nd - 1] = ks[nd - 2];
  Tensor out = empty_in_layout_of(qc, out_shape, dtype);
  Tensor probs = Tensor::empty(probs_shape, kernels::compute_dtype(dtype), q.device());
  kernels::attention_forward(qc, kc, vc, s, is_causal, out, probs);
  autograd::record(op, {q, k, v}, out,
                   [qc, kc, vc, probs, s, is_causal](const Tensor& g, const Needs&) {
                     Tensor gq = empty_in_layout_of(qc, qc.shape(), qc.dtype());
                     Tensor gk = empty_in_layout_of(kc, kc.shape(), kc.dtype());
                     Tensor gv = empty_in_layout_of(vc, vc.shape(), vc.dtype());
                     kernels::attention_backward(rows_operand(g, qc.dtype()), qc, kc, vc, probs, s,
                                                 is_causal, gq, gk, gv);
                     return Grads{gq, gk, gv};
                   });
  return out;
}

}  // namespace optimi::nn::functional
