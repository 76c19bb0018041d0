#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "optimi/device.hpp"
#include "optimi/dtype.hpp"
#include "optimi/memory.hpp"

namespace optimi {

using Shape = std::vector<int64_t>;
class Tensor;
namespace autograd {
struct Node;
}

using PostAccumulateGradHook = std::function<void(Tensor&)>;

// Everything a tensor handle refers to. Handles share one impl, so replacing the data of an impl
// (Module::to, to_low_precision) is seen through every copy of the handle.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::Float32;

  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;         // null for leaves
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves only, created on demand
  std::vector<std::pair<uint64_t, PostAccumulateGradHook>> post_accumulate_grad_hooks;
  uint64_t next_hook_id = 0;
};

class RemovableHandle {
 public:
  RemovableHandle() = default;
  RemovableHandle(std::weak_ptr<TensorImpl> tensor, uint64_t id)
      : tensor_(std::move(tensor)), id_(id) {}
  void remove();  // idempotent; safe after the tensor is gone

 private:
  std::weak_ptr<TensorImpl> tensor_;
  uint64_t id_ = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories
  static Tensor empty(Shape, DType = DType::Float32, Device = Device::cpu());
  static Tensor zeros(Shape, DType = DType::Float32, Device = Device::cpu());
  static Tensor ones(Shape, DType = DType::Float32, Device = Device::cpu());
  static Tensor full(Shape, double value, DType = DType::Float32, Device = Device::cpu());
  static Tensor randn(Shape, DType = DType::Float32, Device = Device::cpu());  // manual_seed
  static Tensor rand(Shape, DType = DType::Float32, Device = Device::cpu());   // U[0, 1)
  static Tensor uniform(Shape, double low, double high, DType = DType::Float32,
                        Device = Device::cpu());
  static Tensor arange(int64_t end, DType = DType::Int64, Device = Device::cpu());
  static Tensor from_vector(const std::vector<float>& values, Shape, DType = DType::Float32,
                            Device = Device::cpu());
  // Float64 values (gradient checks). A template so that a braced list of floats picks the
  // float overload above instead of being ambiguous.
  template <class V>
  requires std::same_as<V, std::vector<double>>
  static Tensor from_vector(const V& values, Shape shape, DType dtype = DType::Float64,
                            Device device = Device::cpu()) {
    return from_doubles(values, std::move(shape), dtype, device);
  }
  static Tensor from_doubles(const std::vector<double>& values, Shape, DType = DType::Float64,
                             Device = Device::cpu());
  // Int64 values. Also a template: `from_vector({1.5f, 2.0f}, {2})` must not be ambiguous.
  template <class V>
  requires std::same_as<V, std::vector<int64_t>>
  static Tensor from_vector(const V& values, Shape shape, Device device = Device::cpu()) {
    return from_int64s(values, std::move(shape), device);
  }
  static Tensor from_int64s(const std::vector<int64_t>& values, Shape, Device = Device::cpu());
  template <class T>
  std::vector<T> to_vector() const;  // T in {float, double, int64_t}; copies to host
  // Writes the elements, row-major, converted to `as` (Float32, Float64 or Int64), to host memory.
  void copy_to_host(void* dst, DType as) const;
  double item() const;

  // Metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t size(int64_t dim) const;  // negative dims count from the end
  const Shape& strides() const;
  int64_t offset() const;
  int64_t dim() const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_floating_point() const;
  bool is_contiguous() const;
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  int64_t nbytes() const { return numel() * element_size(dtype()); }
  std::string str() const;  // "Tensor[2, 3] float32 cpu"

  // Raw access (kernels): a pointer to the first element of this view.
  void* data_ptr() const;
  template <class T>
  T* data() const {
    return static_cast<T*>(data_ptr());
  }
  const std::shared_ptr<Storage>& storage() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // Autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool = true);
  Tensor grad() const;
  void set_grad(const Tensor& g);  // undefined g clears the gradient
  void backward() const;           // on a one-element tensor
  Tensor detach() const;           // shares storage, no history
  bool is_leaf() const;
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  RemovableHandle register_post_accumulate_grad_hook(PostAccumulateGradHook hook);
  bool has_post_accumulate_grad_hooks() const;

  // Conversion and copies
  Tensor to(DType) const;  // new tensor (returns *this when nothing changes); differentiable
  Tensor to(Device) const;
  Tensor to(DType, Device) const;
  Tensor clone() const;
  Tensor contiguous() const;
  Tensor& copy_(const Tensor& src);  // converts dtype/device, broadcasts src; not recorded
  Tensor& fill_(double value);       // not recorded
  Tensor& zero_() { return fill_(0.0); }
  // Replaces what this handle (and every copy of it) refers to, keeping identity and autograd
  // flags: how modules cast parameters in place.
  void set_data(const Tensor& other);

  // Views (share storage)
  Tensor reshape(Shape) const;
  Tensor view(Shape) const;  // contiguous-compatible only
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor permute(Shape dims) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(Shape) const;
  Tensor flatten() const { return reshape({numel()}); }

  // Reductions
  Tensor sum() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor max() const;
  Tensor max(int64_t dim, bool keepdim = false) const;

  // Element-wise
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor tanh() const;
  Tensor abs() const;
  Tensor neg() const;
  Tensor pow(double exponent) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

template <class T>
std::vector<T> Tensor::to_vector() const {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> ||
                std::is_same_v<T, int64_t>) {
    std::vector<T> out(static_cast<size_t>(numel()));
    copy_to_host(out.data(), std::is_same_v<T, float>    ? DType::Float32
                             : std::is_same_v<T, double> ? DType::Float64
                                                         : DType::Int64);
    return out;
  } else {
    throw std::invalid_argument(
        "Tensor::to_vector: unsupported element type (use float, double or int64_t)");
  }
}

// Element-wise with broadcasting (PyTorch rules), all differentiable.
Tensor operator+(const Tensor&, const Tensor&);
Tensor operator-(const Tensor&, const Tensor&);
Tensor operator*(const Tensor&, const Tensor&);
Tensor operator/(const Tensor&, const Tensor&);
Tensor operator+(const Tensor&, double);
Tensor operator-(const Tensor&, double);
Tensor operator*(const Tensor&, double);
Tensor operator/(const Tensor&, double);
Tensor operator+(double, const Tensor&);
Tensor operator-(double, const Tensor&);
Tensor operator*(double, const Tensor&);
Tensor operator/(double, const Tensor&);
Tensor operator-(const Tensor&);

// Normalises a possibly negative dimension against `ndim`, naming `op` in the error.
int64_t normalize_dim(const char* op, int64_t dim, int64_t ndim);
std::string shape_str(const Shape&);
int64_t shape_numel(const Shape&);
Shape contiguous_strides(const Shape&);

}  // namespace optimi
