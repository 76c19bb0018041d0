#include <type_traits>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "kernels/cuda/strided.cuh"
#include "kernels/functors.hpp"

// Element-wise kernels: the functors of kernels/functors.hpp, shared with the CPU loops, over
// strided and broadcast operands. One thread per output element, grid-stride.
namespace optimi::kernels::cuda {
namespace {

// Adapts a one-argument functor to the (x, scalar) signature of the unary kernel.
template <class F>
struct IgnoreScalar {
  F f;
  template <class C>
  OPTIMI_HD C operator()(C x, C) const {
    return f(x);
  }
};

template <class T, class F>
__global__ void unary_kernel(Layout<2> l, T* out, const T* x, F f, compute_t<T> s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < l.numel;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    l.offsets(i, off);
    out[off[0]] = store<T>(f(load(x[off[1]]), s));
  }
}

template <class T, class F>
__global__ void binary_kernel(Layout<3> l, T* out, const T* a, const T* b, F f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < l.numel;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    l.offsets(i, off);
    out[off[0]] = store<T>(f(load(a[off[1]]), load(b[off[2]])));
  }
}

template <class T>
__global__ void fill_kernel(Layout<1> l, T* out, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < l.numel;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    l.offsets(i, off);
    out[off[0]] = value;
  }
}

template <class T, class F>
void launch_unary(const Tensor& x, Tensor& out, F f, double scalar) {
  const Layout<2> l = make_layout<2>("unary", {&out, &x});
  unary_kernel<<<grid_for(l.numel), kThreads, 0, stream(out.device())>>>(
      l, ptr<T>(out), ptr<const T>(x), f, compute_t<T>(scalar));
  OPTIMI_CUDA_CHECK_LAUNCH("unary_kernel");
}

template <class T, class F>
void launch_binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const Layout<3> l = make_layout<3>("binary", {&out, &a, &b});
  binary_kernel<<<grid_for(l.numel), kThreads, 0, stream(out.device())>>>(
      l, ptr<T>(out), ptr<const T>(a), ptr<const T>(b), f);
  OPTIMI_CUDA_CHECK_LAUNCH("binary_kernel");
}

// Integer tensors get the ops that are exact in integers; the core computes the transcendental
// ones (and true division) in a floating dtype, so they never reach this for int64.
template <class T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out, double s) {
  constexpr bool kFloat = !std::is_same_v<T, int64_t>;
  switch (op) {
    case UnaryOp::Neg:
      return launch_unary<T>(x, out, IgnoreScalar<fn::Neg>{}, s);
    case UnaryOp::Abs:
      return launch_unary<T>(x, out, IgnoreScalar<fn::Abs>{}, s);
    case UnaryOp::Sign:
      return launch_unary<T>(x, out, IgnoreScalar<fn::Sign>{}, s);
    case UnaryOp::Relu:
      return launch_unary<T>(x, out, IgnoreScalar<fn::Relu>{}, s);
    case UnaryOp::AddScalar:
      return launch_unary<T>(x, out, fn::AddScalar{}, s);
    case UnaryOp::MulScalar:
      return launch_unary<T>(x, out, fn::MulScalar{}, s);
    case UnaryOp::RSubScalar:
      return launch_unary<T>(x, out, fn::RSubScalar{}, s);
    default:
      break;
  }
  if constexpr (kFloat) {
    switch (op) {
      case UnaryOp::Exp:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Exp>{}, s);
      case UnaryOp::Log:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Log>{}, s);
      case UnaryOp::Sqrt:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Sqrt>{}, s);
      case UnaryOp::Rsqrt:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Rsqrt>{}, s);
      case UnaryOp::Tanh:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Tanh>{}, s);
      case UnaryOp::Sigmoid:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Sigmoid>{}, s);
      case UnaryOp::Silu:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Silu>{}, s);
      case UnaryOp::Mish:
        return launch_unary<T>(x, out, IgnoreScalar<fn::Mish>{}, s);
      case UnaryOp::GeluTanh:
        return launch_unary<T>(x, out, IgnoreScalar<fn::GeluTanh>{}, s);
      case UnaryOp::GeluErf:
        return launch_unary<T>(x, out, IgnoreScalar<fn::GeluErf>{}, s);
      case UnaryOp::RDivScalar:
        return launch_unary<T>(x, out, fn::RDivScalar{}, s);
      case UnaryOp::PowScalar:
        return launch_unary<T>(x, out, fn::PowScalar{}, s);
      default:
        break;
    }
  }
  throw std::invalid_argument("unary: op " + std::to_string(int(op)) +
                              " is not supported for int64 tensors on CUDA");
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  constexpr bool kFloat = !std::is_same_v<T, int64_t>;
  switch (op) {
    case BinaryOp::Add:
      return launch_binary<T>(a, b, out, fn::Add{});
    case BinaryOp::Sub:
      return launch_binary<T>(a, b, out, fn::Sub{});
    case BinaryOp::Mul:
      return launch_binary<T>(a, b, out, fn::Mul{});
    case BinaryOp::Maximum:
      return launch_binary<T>(a, b, out, fn::Maximum{});
    case BinaryOp::GreaterEqualMask:
      return launch_binary<T>(a, b, out, fn::GreaterEqualMask{});
    default:
      break;
  }
  if constexpr (kFloat) {
    switch (op) {
      case BinaryOp::Div:
        return launch_binary<T>(a, b, out, fn::Div{});
      case BinaryOp::ReluBackward:
        return launch_binary<T>(a, b, out, fn::ReluBackward{});
      case BinaryOp::SigmoidBackward:
        return launch_binary<T>(a, b, out, fn::SigmoidBackward{});
      case BinaryOp::SiluBackward:
        return launch_binary<T>(a, b, out, fn::SiluBackward{});
      case BinaryOp::MishBackward:
        return launch_binary<T>(a, b, out, fn::MishBackward{});
      case BinaryOp::GeluTanhBackward:
        return launch_binary<T>(a, b, out, fn::GeluTanhBackward{});
      case BinaryOp::GeluErfBackward:
        return launch_binary<T>(a, b, out, fn::GeluErfBackward{});
      case BinaryOp::TanhBackward:
        return launch_binary<T>(a, b, out, fn::TanhBackward{});
      default:
        break;
    }
  }
  throw std::invalid_argument("binary: op " + std::to_string(int(op)) +
                              " is not supported for int64 tensors on CUDA");
}

void require_arithmetic(const char* op, DType t) {
  if (t == DType::Bool)
    throw std::invalid_argument(std::string(op) + ": not supported for bool tensors");
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  require_arithmetic("unary", out.dtype());
  DeviceGuard guard(out.device());
  visit_dtype("unary", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) unary_typed<T>(op, x, out, scalar);
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  require_arithmetic("binary", out.dtype());
  DeviceGuard guard(out.device());
  visit_dtype("binary", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) binary_typed<T>(op, a, b, out);
  });
}

void fill(Tensor& dst, double value) {
  DeviceGuard guard(dst.device());
  visit_dtype("fill", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_same_v<T, bool>) {
      v = value != 0.0;
    } else {
      v = store<T>(compute_t<T>(value));
    }
    const Layout<1> l = make_layout<1>("fill", {&dst});
    fill_kernel<<<grid_for(l.numel), kThreads, 0, stream(dst.device())>>>(l, ptr<T>(dst), v);
    OPTIMI_CUDA_CHECK_LAUNCH("fill_kernel");
  });
}

}  // namespace optimi::kernels::cuda
