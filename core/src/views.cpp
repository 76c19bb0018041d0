#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/elementwise.hpp"
#include "optimi/autograd.hpp"
#include "optimi/ops.hpp"
#include "optimi/tensor.hpp"

// Tensor members that return views: new shape, strides and offset over the same storage. Each
// records a backward that maps the view's gradient back onto the input's shape. cat and split,
// which are slices of one tensor seen from either side, live here too.
namespace optimi {
namespace {

Tensor make_view(const Tensor& base, int64_t offset, Shape shape, Shape strides) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->offset = offset;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor recorded_view(const char* op, const Tensor& self, int64_t offset, Shape shape, Shape strides,
                     autograd::BackwardFn backward) {
  Tensor out = make_view(self, offset, std::move(shape), std::move(strides));
  autograd::record(op, {self}, out, std::move(backward));
  return out;
}

// A view of part of `self` (slice, select), which `part` picks out of a tensor shaped like self.
// Backward adds the view's gradient into that part of self's pending gradient: the parts of a
// split (a fused q/k/v projection) fill one buffer instead of each making a zero tensor of the
// whole that the engine then sums.
template <class Part>
Tensor recorded_part(const char* op, const Tensor& self, int64_t offset, Shape shape, Shape strides,
                     Part part) {
  Tensor out = make_view(self, offset, std::move(shape), std::move(strides));
  autograd::record_accumulating(
      op, self, out, [input_shape = self.shape(), part](const Tensor& grad, Tensor& slot) {
        if (!slot.defined()) {
          slot = Tensor::zeros(input_shape, grad.dtype(), grad.device());
          part(slot).copy_(grad);
        } else {
          Tensor region = part(slot);
          kernels::binary(kernels::BinaryOp::Add, region, grad, region);  // in place
        }
      });
  return out;
}

// Resolves one -1 entry and checks that `shape` holds exactly `numel` elements.
Shape infer_shape(const char* op, const Shape& input, Shape shape) {
  int64_t numel = shape_numel(input);
  int64_t known = 1;
  std::optional<size_t> infer;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer) {
        throw std::invalid_argument(std::string(op) + ": only one dimension can be -1, got " +
                                    shape_str(shape));
      }
      infer = i;
    } else if (shape[i] < 0) {
      throw std::invalid_argument(std::string(op) + ": invalid size " + std::to_string(shape[i]) +
                                  " at dim " + std::to_string(i) + " of " + shape_str(shape));
    } else {
      known *= shape[i];
    }
  }
  if (infer) {
    if (known == 0 || numel % known != 0) {
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) +
                                  " is invalid for input of shape " + shape_str(input));
    }
    shape[*infer] = numel / known;
  } else if (known != numel) {
    throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) +
                                " is invalid for input of shape " + shape_str(input) + " (" +
                                std::to_string(numel) + " elements)");
  }
  return shape;
}

// Strides that let `shape` view the same elements in the same order, if any (PyTorch's
// computeStride): each run of input dims that is contiguous within itself can be re-split freely.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides,
                                  const Shape& shape) {
  if (old_shape.empty() || shape_numel(old_shape) == 0) return contiguous_strides(shape);
  Shape strides(shape.size(), 1);
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_stride = old_strides.back();
  int64_t tensor_numel = 1;
  int64_t view_numel = 1;
  for (int64_t d = int64_t(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[size_t(d)];
    bool chunk_ends = d == 0 || (old_shape[size_t(d - 1)] != 1 &&
                                 old_strides[size_t(d - 1)] != tensor_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || shape[size_t(view_d)] == 1)) {
      strides[size_t(view_d)] = view_numel * chunk_stride;
      view_numel *= shape[size_t(view_d)];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = old_strides[size_t(d - 1)];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

autograd::BackwardFn reshape_backward(Shape input_shape) {
  return [input_shape = std::move(input_shape)](const Tensor& grad, const std::vector<bool>&) {
    return std::vector<Tensor>{grad.reshape(input_shape)};
  };
}

}  // namespace

Tensor Tensor::view(Shape shape) const {
  shape = infer_shape("view", this->shape(), std::move(shape));
  std::optional<Shape> strides = view_strides(this->shape(), this->strides(), shape);
  if (!strides) {
    throw std::invalid_argument("view: shape " + shape_str(shape) +
                                " is not compatible with input shape " + shape_str(this->shape()) +
                                " and strides " + shape_str(this->strides()) +
                                "; use reshape instead");
  }
  return recorded_view("view", *this, offset(), shape, std::move(*strides),
                       reshape_backward(this->shape()));
}

Tensor Tensor::reshape(Shape shape) const {
  shape = infer_shape("reshape", this->shape(), std::move(shape));
  if (std::optional<Shape> strides = view_strides(this->shape(), this->strides(), shape)) {
    return recorded_view("reshape", *this, offset(), shape, std::move(*strides),
                         reshape_backward(this->shape()));
  }
  Tensor copy;
  {
    NoGradGuard no_grad;
    copy = contiguous();
  }
  Tensor out = make_view(copy, copy.offset(), shape, contiguous_strides(shape));
  autograd::record("reshape", {*this}, out, reshape_backward(this->shape()));
  return out;
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  dim0 = normalize_dim("transpose", dim0, dim());
  dim1 = normalize_dim("transpose", dim1, dim());
  if (dim() == 0) return recorded_view("transpose", *this, offset(), {}, {}, reshape_backward({}));
  Shape shape = this->shape();
  Shape strides = this->strides();
  std::swap(shape[size_t(dim0)], shape[size_t(dim1)]);
  std::swap(strides[size_t(dim0)], strides[size_t(dim1)]);
  return recorded_view("transpose", *this, offset(), std::move(shape), std::move(strides),
                       [dim0, dim1](const Tensor& grad, const std::vector<bool>&) {
                         return std::vector<Tensor>{grad.transpose(dim0, dim1)};
                       });
}

Tensor Tensor::permute(Shape dims) const {
  if (int64_t(dims.size()) != dim()) {
    throw std::invalid_argument("permute: got " + std::to_string(dims.size()) + " dims " +
                                shape_str(dims) + " for a tensor of shape " + shape_str(shape()) +
                                " with " + std::to_string(dim()) + " dimensions");
  }
  Shape shape(dims.size());
  Shape strides(dims.size());
  Shape inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = normalize_dim("permute", dims[i], dim());
    if (inverse[size_t(d)] != -1) {
      throw std::invalid_argument("permute: dim " + std::to_string(d) + " repeats in " +
                                  shape_str(dims));
    }
    inverse[size_t(d)] = int64_t(i);
    shape[i] = this->shape()[size_t(d)];
    strides[i] = this->strides()[size_t(d)];
  }
  return recorded_view("permute", *this, offset(), std::move(shape), std::move(strides),
                       [inverse](const Tensor& grad, const std::vector<bool>&) {
                         return std::vector<Tensor>{grad.permute(inverse)};
                       });
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  if (this->dim() == 0) throw std::invalid_argument("slice: cannot slice a 0-d tensor");
  dim = normalize_dim("slice", dim, this->dim());
  if (step <= 0) {
    throw std::invalid_argument("slice: step must be positive, got " + std::to_string(step));
  }
  // PyTorch clamps rather than rejects out-of-range bounds.
  int64_t size = this->shape()[size_t(dim)];
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = this->shape();
  Shape strides = this->strides();
  shape[size_t(dim)] = (end - start + step - 1) / step;
  strides[size_t(dim)] *= step;
  return recorded_part(
      "slice", *this, offset() + start * this->strides()[size_t(dim)], std::move(shape),
      std::move(strides),
      [dim, start, end, step](const Tensor& g) { return g.slice(dim, start, end, step); });
}

Tensor Tensor::select(int64_t dim, int64_t index) const {
  if (this->dim() == 0) throw std::invalid_argument("select: cannot select from a 0-d tensor");
  dim = normalize_dim("select", dim, this->dim());
  int64_t size = this->shape()[size_t(dim)];
  if (index < -size || index >= size) {
    throw std::invalid_argument("select: index " + std::to_string(index) +
                                " is out of range for dim " + std::to_string(dim) + " of size " +
                                std::to_string(size) + " (shape " + shape_str(this->shape()) + ")");
  }
  if (index < 0) index += size;
  Shape shape = this->shape();
  Shape strides = this->strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return recorded_part("select", *this, offset() + index * this->strides()[size_t(dim)],
                       std::move(shape), std::move(strides),
                       [dim, index](const Tensor& g) { return g.select(dim, index); });
}

Tensor Tensor::unsqueeze(int64_t dim) const {
  dim = normalize_dim("unsqueeze", dim, this->dim() + 1);
  Shape shape = this->shape();
  Shape strides = this->strides();
  // Any stride works for a size-1 dim; this one keeps contiguous tensors contiguous.
  int64_t stride = dim < this->dim() ? shape[size_t(dim)] * strides[size_t(dim)] : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, stride);
  return recorded_view("unsqueeze", *this, offset(), std::move(shape), std::move(strides),
                       reshape_backward(this->shape()));
}

Tensor Tensor::squeeze(int64_t dim) const {
  dim = normalize_dim("squeeze", dim, this->dim());
  Shape shape = this->shape();
  Shape strides = this->strides();
  if (!shape.empty() && shape[size_t(dim)] == 1) {  // like PyTorch, other sizes are left alone
    shape.erase(shape.begin() + dim);
    strides.erase(strides.begin() + dim);
  }
  return recorded_view("squeeze", *this, offset(), std::move(shape), std::move(strides),
                       reshape_backward(this->shape()));
}

Tensor Tensor::expand(Shape sizes) const {
  const Shape& in = shape();
  if (sizes.size() < in.size()) {
    throw std::invalid_argument("expand: cannot expand shape " + shape_str(in) + " to " +
                                shape_str(sizes) + " (fewer dimensions)");
  }
  size_t lead = sizes.size() - in.size();
  Shape strides(sizes.size(), 0);
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i < lead) {
      if (sizes[i] < 0) {
        throw std::invalid_argument("expand: size " + std::to_string(sizes[i]) +
                                    " is invalid for new leading dim " + std::to_string(i) +
                                    " when expanding " + shape_str(in) + " to " + shape_str(sizes));
      }
      continue;
    }
    int64_t old = in[i - lead];
    if (sizes[i] == -1) sizes[i] = old;
    if (sizes[i] == old) {
      strides[i] = this->strides()[i - lead];
    } else if (old != 1 || sizes[i] < 0) {
      throw std::invalid_argument("expand: cannot expand shape " + shape_str(in) + " to " +
                                  shape_str(sizes) + " (dim " + std::to_string(i) + ": " +
                                  std::to_string(old) + " vs " + std::to_string(sizes[i]) + ")");
    }
  }
  return recorded_view("expand", *this, offset(), sizes, std::move(strides),
                       [input_shape = in](const Tensor& grad, const std::vector<bool>&) {
                         return std::vector<Tensor>{sum_to(grad, input_shape)};
                       });
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw std::invalid_argument("cat: expected a non-empty list of tensors");
  const Tensor& first = tensors.front();
  if (first.dim() == 0) {
    throw std::invalid_argument("cat: zero-dimensional tensor (at index 0) cannot be concatenated");
  }
  dim = normalize_dim("cat", dim, first.dim());
  Shape shape = first.shape();
  shape[size_t(dim)] = 0;
  DType dtype = first.dtype();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    bool same = t.dim() == first.dim();
    for (int64_t d = 0; same && d < t.dim(); ++d) {
      same = d == dim || t.shape()[size_t(d)] == first.shape()[size_t(d)];
    }
    if (!same) {
      throw std::invalid_argument("cat: sizes must match except in dim " + std::to_string(dim) +
                                  ", got " + shape_str(first.shape()) + " at index 0 and " +
                                  shape_str(t.shape()) + " at index " + std::to_string(i));
    }
    if (t.device() != first.device()) {
      throw std::invalid_argument("cat: expected all tensors on " + first.device().str() +
                                  ", got " + t.device().str() + " at index " + std::to_string(i));
    }
    shape[size_t(dim)] += t.shape()[size_t(dim)];
    dtype = promote_types(dtype, t.dtype());
  }
  Tensor out = Tensor::empty(shape, dtype, first.device());
  std::vector<int64_t> offsets;
  {
    NoGradGuard no_grad;
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      offsets.push_back(offset);
      int64_t size = t.shape()[size_t(dim)];
      out.slice(dim, offset, offset + size).copy_(t);
      offset += size;
    }
    offsets.push_back(offset);
  }
  autograd::record("cat", tensors, out,
                   [dim, offsets](const Tensor& grad, const std::vector<bool>& needs) {
                     std::vector<Tensor> grads(needs.size());
                     for (size_t i = 0; i < needs.size(); ++i) {
                       if (needs[i]) grads[i] = grad.slice(dim, offsets[i], offsets[i + 1]);
                     }
                     return grads;
                   });
  return out;
}

std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim) {
  if (t.dim() == 0) throw std::invalid_argument("split: cannot split a 0-d tensor");
  dim = normalize_dim("split", dim, t.dim());
  if (split_size <= 0) {
    throw std::invalid_argument("split: split_size must be positive, got " +
                                std::to_string(split_size));
  }
  int64_t size = t.shape()[size_t(dim)];
  std::vector<Tensor> parts;
  int64_t start = 0;
  do {
    parts.push_back(t.slice(dim, start, start + split_size));
    start += split_size;
  } while (start < size);
  return parts;
}

}  // namespace optimi
