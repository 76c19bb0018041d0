#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/gemm.hpp"
#include "optimi/autograd.hpp"
#include "optimi/ops.hpp"

// matmul with PyTorch's rules: 1-D operands become a row (left) or column (right) matrix whose
// extra dim is dropped from the result, and batch dims broadcast.
namespace optimi {
namespace {

[[noreturn]] void fail(const Tensor& a, const Tensor& b, const std::string& why) {
  throw std::invalid_argument("matmul: " + why + " (shapes " + shape_str(a.shape()) + " and " +
                              shape_str(b.shape()) + ")");
}

void check_operands(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) {
    throw std::invalid_argument("matmul: expected defined tensors");
  }
  if (a.dim() == 0 || b.dim() == 0) fail(a, b, "both arguments need at least 1 dimension");
  if (a.dtype() != b.dtype()) {
    fail(a, b,
         "expected one dtype, got " + std::string(dtype_name(a.dtype())) + " and " +
             std::string(dtype_name(b.dtype())));
  }
  if (!a.is_floating_point()) {
    fail(a, b, "expected floating-point tensors, got " + std::string(dtype_name(a.dtype())));
  }
  if (a.device() != b.device()) {
    fail(a, b, "expected one device, got " + a.device().str() + " and " + b.device().str());
  }
  int64_t k_a = a.shape().back();
  int64_t k_b = b.dim() == 1 ? b.shape()[0] : b.shape()[size_t(b.dim() - 2)];
  if (k_a != k_b) {
    fail(a, b,
         "cannot multiply, inner dims differ (" + std::to_string(k_a) + " vs " +
             std::to_string(k_b) + ")");
  }
}

Shape batch_of(const Tensor& t) {
  return Shape(t.shape().begin(), t.shape().end() - 2);
}

// [..., R, C] -> [rows, C]: stacked matrices as one tall matrix.
Tensor stack_rows(const Tensor& t) {
  Shape leading(t.shape().begin(), t.shape().end() - 1);
  return t.reshape({shape_numel(leading), t.shape().back()});
}

// Broadcast of the batch dims of a [..., M, K] and b [..., K, N], named after the user's operands.
Shape broadcast_batch(const Tensor& a, const Tensor& b, const Tensor& user_a,
                      const Tensor& user_b) {
  Shape x = batch_of(a);
  Shape y = batch_of(b);
  Shape out(std::max(x.size(), y.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t dx = i + x.size() >= out.size() ? x[i + x.size() - out.size()] : 1;
    int64_t dy = i + y.size() >= out.size() ? y[i + y.size() - out.size()] : 1;
    if (dx != dy && dx != 1 && dy != 1) {
      fail(user_a, user_b,
           "batch dims " + shape_str(x) + " and " + shape_str(y) + " do not broadcast");
    }
    out[i] = dx == 1 ? dy : dx;
  }
  return out;
}

// a [..., M, K] @ b [..., K, N] -> [batch..., M, N], unrecorded.
Tensor product(const Tensor& a, const Tensor& b, const Shape& batch) {
  int64_t m = a.shape()[size_t(a.dim() - 2)];
  int64_t k = a.shape().back();
  int64_t n = b.shape().back();
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  if (b.dim() == 2) {
    // A stack of matrices times one matrix is one tall GEMM.
    Tensor c = Tensor::empty({shape_numel(batch) * m, n}, a.dtype(), a.device());
    kernels::gemm(stack_rows(a), b, c);
    return c.view(shape);
  }
  Shape a_shape = batch, b_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  Tensor c = Tensor::empty(shape, a.dtype(), a.device());
  kernels::gemm(a.expand(a_shape), b.expand(b_shape), c);
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands(a, b);
  Tensor a2, b2, out;
  Shape full;
  {
    NoGradGuard no_grad;
    a2 = (a.dim() == 1 ? a.unsqueeze(0) : a).detach();
    b2 = (b.dim() == 1 ? b.unsqueeze(1) : b).detach();
    Shape batch = broadcast_batch(a2, b2, a, b);
    Tensor c = product(a2, b2, batch);
    full = c.shape();
    Shape shape = batch;
    if (a.dim() > 1) shape.push_back(full[full.size() - 2]);
    if (b.dim() > 1) shape.push_back(full.back());
    out = c.reshape(shape);
  }
  // Each gradient needs only the other operand.
  Tensor saved_a = b.requires_grad() ? a2 : Tensor();
  Tensor saved_b = a.requires_grad() ? b2 : Tensor();
  autograd::record("matmul", {a, b}, out,
                   [saved_a, saved_b, full, a_shape = a.shape(), b_shape = b.shape()](
                       const Tensor& grad, const std::vector<bool>& needs) {
                     DType dtype = (saved_a.defined() ? saved_a : saved_b).dtype();
                     Tensor g = grad.to(dtype).reshape(full);
                     std::vector<Tensor> grads(2);
                     if (needs[0]) {
                       Tensor ga = matmul(g, saved_b.transpose(-1, -2));
                       Shape a2_shape = a_shape.size() == 1 ? Shape{1, a_shape[0]} : a_shape;
                       grads[0] = sum_to(ga, a2_shape).reshape(a_shape);
                     }
                     if (needs[1]) {
                       Shape b2_shape = b_shape.size() == 1 ? Shape{b_shape[0], 1} : b_shape;
                       Tensor gb =
                           b2_shape.size() == 2
                               // Batch dims of a fold into one GEMM rather than a stack to sum.
                               ? matmul(stack_rows(saved_a).transpose(0, 1), stack_rows(g))
                               : sum_to(matmul(saved_a.transpose(-1, -2), g), b2_shape);
                       grads[1] = gb.reshape(b_shape);
                     }
                     return grads;
                   });
  return out;
}

}  // namespace optimi
