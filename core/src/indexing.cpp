#include <stdexcept>
#include <string>

#include "kernels/index.hpp"
#include "optimi/autograd.hpp"
#include "optimi/ops.hpp"

namespace optimi {
namespace {

DType accumulate_dtype(DType dtype) {
  // Scatter-adding many rows in 16-bit floats would round after every addition.
  return dtype == DType::BFloat16 || dtype == DType::Float16 ? DType::Float32 : dtype;
}

}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  if (index.dtype() != DType::Int64) {
    throw std::invalid_argument("index_select: index must be int64, got " +
                                std::string(dtype_name(index.dtype())));
  }
  if (index.dim() > 1) {
    throw std::invalid_argument("index_select: index must be 0-D or 1-D, got shape " +
                                shape_str(index.shape()));
  }
  if (t.device() != index.device()) {
    throw std::invalid_argument("index_select: tensor on " + t.device().str() + " and index on " +
                                index.device().str());
  }
  if (t.dim() == 0) {
    throw std::invalid_argument("index_select: expected a tensor with at least one dimension");
  }
  dim = normalize_dim("index_select", dim, t.dim());
  Tensor idx = index.contiguous();
  int64_t size = t.shape()[size_t(dim)];
  const Tensor host_idx = idx.to(Device::cpu());  // the bounds are checked on the host
  const int64_t* values = host_idx.data<int64_t>();
  for (int64_t j = 0; j < idx.numel(); ++j) {
    if (values[j] < 0 || values[j] >= size) {
      throw std::invalid_argument("index_select: index " + std::to_string(values[j]) +
                                  " is out of range for dim " + std::to_string(dim) + " of size " +
                                  std::to_string(size) + " (shape " + shape_str(t.shape()) + ")");
    }
  }
  Shape shape = t.shape();
  shape[size_t(dim)] = idx.numel();
  Tensor out = Tensor::empty(shape, t.dtype(), t.device());
  {
    NoGradGuard no_grad;
    kernels::index_select(t.contiguous(), dim, idx, out);
  }
  autograd::record(
      "index_select", {t}, out,
      [input_shape = t.shape(), dim, idx](const Tensor& grad, const std::vector<bool>&) {
        Tensor g = Tensor::zeros(input_shape, accumulate_dtype(grad.dtype()), grad.device());
        kernels::index_add(g, dim, idx, grad.to(g.dtype()).contiguous());
        return std::vector<Tensor>{g};
      });
  return out;
}

}  // namespace optimi
