#include "optimi/tensor.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "kernels/elementwise.hpp"
#include "optimi/autograd.hpp"
#include "optimi/random.hpp"

namespace optimi {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

int64_t normalize_dim(const char* op, int64_t dim, int64_t ndim) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  if (dim < lo || dim > hi)
    throw std::invalid_argument(std::string(op) + ": dim " + std::to_string(dim) +
                                " out of range for a tensor with " + std::to_string(ndim) +
                                " dimensions");
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

namespace {

const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl, const char* what) {
  if (!impl) throw std::invalid_argument(std::string(what) + ": the tensor is undefined");
  return *impl;
}

void validate_shape(const char* op, const Shape& shape) {
  int64_t bytes = 8;  // the widest element: the byte count must fit int64 too
  for (int64_t d : shape) {
    if (d < 0)
      throw std::invalid_argument(std::string(op) + ": negative dimension in shape " +
                                  shape_str(shape));
    if (d > 0 && bytes > std::numeric_limits<int64_t>::max() / d)
      throw std::invalid_argument(std::string(op) + ": shape " + shape_str(shape) +
                                  " has more elements than can be addressed");
    bytes *= std::max<int64_t>(d, 1);
  }
}

}  // namespace

// ---- factories ----

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  validate_shape("Tensor::empty", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage =
      std::make_shared<Storage>(size_t(shape_numel(shape) * element_size(dtype)), device);
  impl->strides = contiguous_strides(shape);
  impl->shape = std::move(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(Shape shape, double value, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  return full(std::move(shape), 0.0, dtype, device);
}
Tensor Tensor::ones(Shape shape, DType dtype, Device device) {
  return full(std::move(shape), 1.0, dtype, device);
}

namespace {
// Host-generated random values, converted to the target dtype and device.
template <class Gen>
Tensor random_tensor(const char* op, Shape shape, DType dtype, Device device, Gen gen) {
  if (!is_floating_point(dtype))
    throw std::invalid_argument(std::string(op) + ": dtype must be floating point, got " +
                                std::string(dtype_name(dtype)));
  validate_shape(op, shape);
  std::vector<double> values(static_cast<size_t>(shape_numel(shape)));
  Generator& g = default_generator();
  for (double& v : values) v = gen(g);
  return Tensor::from_vector(values, std::move(shape), dtype, device);
}
}  // namespace

Tensor Tensor::randn(Shape shape, DType dtype, Device device) {
  return random_tensor("Tensor::randn", std::move(shape), dtype, device,
                       [](Generator& g) { return g.normal(); });
}
Tensor Tensor::rand(Shape shape, DType dtype, Device device) {
  return random_tensor("Tensor::rand", std::move(shape), dtype, device,
                       [](Generator& g) { return g.uniform(); });
}
Tensor Tensor::uniform(Shape shape, double low, double high, DType dtype, Device device) {
  if (!(low <= high))
    throw std::invalid_argument("Tensor::uniform: low " + std::to_string(low) + " > high " +
                                std::to_string(high));
  return random_tensor("Tensor::uniform", std::move(shape), dtype, device,
                       [=](Generator& g) { return low + (high - low) * g.uniform(); });
}

Tensor Tensor::arange(int64_t end, DType dtype, Device device) {
  if (end < 0) throw std::invalid_argument("Tensor::arange: negative end " + std::to_string(end));
  std::vector<double> v(static_cast<size_t>(end));
  for (int64_t i = 0; i < end; ++i) v[size_t(i)] = double(i);
  return from_vector(v, {end}, dtype, device);
}

namespace {
template <class T>
Tensor from_host(const char* op, const std::vector<T>& values, Shape shape, DType host_dtype,
                 DType dtype, Device device) {
  validate_shape(op, shape);
  if (int64_t(values.size()) != shape_numel(shape))
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(values.size()) +
                                " values do not fill shape " + shape_str(shape));
  Tensor host = Tensor::empty(shape, host_dtype);
  std::copy(values.begin(), values.end(), host.data<T>());
  if (host_dtype == dtype && device.is_cpu()) return host;
  Tensor out = Tensor::empty(std::move(shape), dtype, device);
  out.copy_(host);
  return out;
}
}  // namespace

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape, DType dtype,
                           Device device) {
  return from_host("Tensor::from_vector", values, std::move(shape), DType::Float32, dtype, device);
}
Tensor Tensor::from_doubles(const std::vector<double>& values, Shape shape, DType dtype,
                            Device device) {
  return from_host("Tensor::from_vector", values, std::move(shape), DType::Float64, dtype, device);
}
Tensor Tensor::from_int64s(const std::vector<int64_t>& values, Shape shape, Device device) {
  return from_host("Tensor::from_vector", values, std::move(shape), DType::Int64, DType::Int64,
                   device);
}

void Tensor::copy_to_host(void* dst, DType as) const {
  checked(impl_, "Tensor::to_vector");
  Tensor host = empty(shape(), as);
  host.copy_(*this);
  if (host.nbytes() > 0)  // an empty tensor has no storage, and memcpy forbids null
    std::memcpy(dst, host.data_ptr(), size_t(host.nbytes()));
}

double Tensor::item() const {
  checked(impl_, "Tensor::item");
  if (numel() != 1)
    throw std::invalid_argument("Tensor::item: needs a one-element tensor, got shape " +
                                shape_str(shape()));
  return to_vector<double>()[0];
}

// ---- metadata ----

const Shape& Tensor::shape() const {
  return checked(impl_, "Tensor::shape").shape;
}
const Shape& Tensor::strides() const {
  return checked(impl_, "Tensor::strides").strides;
}
int64_t Tensor::offset() const {
  return checked(impl_, "Tensor::offset").offset;
}
int64_t Tensor::dim() const {
  return int64_t(shape().size());
}
int64_t Tensor::numel() const {
  return shape_numel(shape());
}
DType Tensor::dtype() const {
  return checked(impl_, "Tensor::dtype").dtype;
}
Device Tensor::device() const {
  return checked(impl_, "Tensor::device").storage->device();
}
bool Tensor::is_floating_point() const {
  return optimi::is_floating_point(dtype());
}
const std::shared_ptr<Storage>& Tensor::storage() const {
  return checked(impl_, "Tensor::storage").storage;
}

int64_t Tensor::size(int64_t d) const {
  return shape()[size_t(normalize_dim("Tensor::size", d, dim()))];
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked(impl_, "Tensor::is_contiguous");
  int64_t expected = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] == 1) continue;
    if (t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const TensorImpl& t = checked(impl_, "Tensor::data_ptr");
  return static_cast<char*>(t.storage->data()) + t.offset * element_size(t.dtype);
}

std::string Tensor::str() const {
  if (!impl_) return "Tensor(undefined)";
  return "Tensor" + shape_str(shape()) + " " + std::string(dtype_name(dtype())) + " " +
         device().str();
}

// ---- autograd accessors ----

bool Tensor::requires_grad() const {
  return checked(impl_, "Tensor::requires_grad").requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  checked(impl_, "Tensor::requires_grad_");
  if (on && !is_floating_point())
    throw std::invalid_argument(
        "Tensor::requires_grad_: only floating-point tensors can require "
        "gradients, got " +
        std::string(dtype_name(dtype())));
  if (!on && impl_->grad_fn)
    throw std::invalid_argument(
        "Tensor::requires_grad_: cannot turn off gradients of a non-leaf "
        "tensor; use detach()");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  return Tensor(checked(impl_, "Tensor::grad").grad);
}

void Tensor::set_grad(const Tensor& g) {
  checked(impl_, "Tensor::set_grad");
  if (g.defined() && (g.shape() != shape() || g.dtype() != dtype() || g.device() != device()))
    throw std::invalid_argument("Tensor::set_grad: gradient " + g.str() +
                                " does not match tensor " + str());
  impl_->grad = g.impl_;
}

void Tensor::backward() const {
  checked(impl_, "Tensor::backward");
  if (numel() != 1)
    throw std::invalid_argument("Tensor::backward: needs a one-element tensor, got shape " +
                                shape_str(shape()));
  if (!impl_->requires_grad)
    throw std::invalid_argument(
        "Tensor::backward: the tensor does not require grad and has no grad_fn");
  autograd::run_backward(*this, ones(shape(), dtype(), device()));
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked(impl_, "Tensor::detach");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = t.shape;
  impl->strides = t.strides;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

bool Tensor::is_leaf() const {
  return !checked(impl_, "Tensor::is_leaf").grad_fn;
}
const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  return checked(impl_, "Tensor::grad_fn").grad_fn;
}

RemovableHandle Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook hook) {
  checked(impl_, "Tensor::register_post_accumulate_grad_hook");
  if (!impl_->requires_grad || impl_->grad_fn)
    throw std::invalid_argument(
        "Tensor::register_post_accumulate_grad_hook: only leaf tensors that "
        "require grad accumulate gradients, got " +
        str());
  if (!hook) throw std::invalid_argument("Tensor::register_post_accumulate_grad_hook: empty hook");
  uint64_t id = impl_->next_hook_id++;
  impl_->post_accumulate_grad_hooks.emplace_back(id, std::move(hook));
  return RemovableHandle(impl_, id);
}

bool Tensor::has_post_accumulate_grad_hooks() const {
  return !checked(impl_, "Tensor::has_post_accumulate_grad_hooks")
              .post_accumulate_grad_hooks.empty();
}

void RemovableHandle::remove() {
  if (auto t = tensor_.lock()) {
    auto& hooks = t->post_accumulate_grad_hooks;
    std::erase_if(hooks, [&](const auto& h) { return h.first == id_; });
  }
  tensor_.reset();
}

// ---- conversion and copies ----

Tensor Tensor::to(DType dtype) const {
  return to(dtype, device());
}
Tensor Tensor::to(Device device) const {
  return to(dtype(), device);
}

Tensor Tensor::to(DType dtype, Device device) const {
  checked(impl_, "Tensor::to");
  if (dtype == this->dtype() && device == this->device()) return *this;
  Tensor out = empty(shape(), dtype, device);
  out.copy_(*this);
  if (optimi::is_floating_point(dtype)) {
    DType in_dtype = this->dtype();
    Device in_device = this->device();
    autograd::record("to", {*this}, out,
                     [in_dtype, in_device](const Tensor& g, const std::vector<bool>&) {
                       return std::vector<Tensor>{g.to(in_dtype, in_device)};
                     });
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  autograd::record("clone", {*this}, out, [](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g};
  });
  return out;
}

Tensor Tensor::contiguous() const {
  return is_contiguous() ? *this : clone();
}

Tensor& Tensor::copy_(const Tensor& src) {
  checked(impl_, "Tensor::copy_");
  checked(src.impl_, "Tensor::copy_");
  Shape b = src.shape();
  bool ok = b.size() <= shape().size();
  for (size_t i = 0; ok && i < b.size(); ++i) {
    int64_t s = b[b.size() - 1 - i], d = shape()[shape().size() - 1 - i];
    ok = s == d || s == 1;
  }
  if (!ok)
    throw std::invalid_argument("Tensor::copy_: source shape " + shape_str(src.shape()) +
                                " does not broadcast to destination shape " + shape_str(shape()));
  if (numel() == 0) return *this;
  kernels::copy(src, *this);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  checked(impl_, "Tensor::fill_");
  // An integer tensor cannot hold NaN, infinities or values beyond int64: converting them is UB.
  if (!optimi::is_floating_point(dtype()) && !(std::abs(value) < 9.2e18))
    throw std::invalid_argument("Tensor::fill_/full: value " + std::to_string(value) +
                                " does not fit a " + std::string(dtype_name(dtype())) + " tensor");
  if (numel() > 0) kernels::fill(*this, value);
  return *this;
}

void Tensor::set_data(const Tensor& other) {
  checked(impl_, "Tensor::set_data");
  const TensorImpl& o = checked(other.impl_, "Tensor::set_data");
  if (impl_->requires_grad && !optimi::is_floating_point(o.dtype))
    throw std::invalid_argument("Tensor::set_data: a tensor that requires grad cannot take " +
                                std::string(dtype_name(o.dtype)) + " data");
  std::shared_ptr<Storage> storage = o.storage;  // `other` may be this tensor's own view
  impl_->offset = o.offset;
  impl_->shape = o.shape;
  impl_->strides = o.strides;
  impl_->dtype = o.dtype;
  impl_->storage = std::move(storage);
}

}  // namespace optimi
