#include "kernels/cpu/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/row_reduce.hpp"
#include "kernels/functors.hpp"

namespace optimi::kernels::cpu {
namespace {

template <class T>
constexpr bool is_arithmetic_storage = !std::is_same_v<T, bool>;

// Functors that also compute on AVX-512 lanes (lanes.hpp), for contiguous float32 rows: those
// around an exponential, which GCC's own vectorisation of the scalar code leaves twice as slow.
template <class F>
constexpr bool kOnLanes = false;

template <class T, class F>
void map_unary(const Tensor& x, Tensor& out, F f, double scalar) {
  using C = compute_t<T>;
  const C s = C(scalar);
  for_each_row<2>(make_layout<2>({&out, &x}), [&](auto p, auto st, int64_t n) {
    T* o = reinterpret_cast<T*>(p[0]);
    const T* a = reinterpret_cast<const T*>(p[1]);
    if constexpr (kOnLanes<F>) {
      if (st[0] == 1 && st[1] == 1) {
        return row_map(
            n, o, [&](auto x) { return f(x, decltype(x)(s)); }, a);
      }
    }
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(load(a[i]), s));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = store<T>(f(load(a[i * st[1]]), s));
    }
  });
}

template <class T, class F>
void map_binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  for_each_row<3>(make_layout<3>({&out, &a, &b}), [&](auto p, auto st, int64_t n) {
    T* o = reinterpret_cast<T*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    const T* y = reinterpret_cast<const T*>(p[2]);
    if constexpr (kOnLanes<F>) {
      if (st[0] == 1 && st[1] == 1 && st[2] == 1) return row_map(n, o, f, x, y);
    }
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(load(x[i]), load(y[i])));
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const auto yv = load(y[0]);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = store<T>(f(load(x[i]), yv));
    } else {
      for (int64_t i = 0; i < n; ++i)
        o[i * st[0]] = store<T>(f(load(x[i * st[1]]), load(y[i * st[2]])));
    }
  });
}

// Adapts a one-argument functor to the (x, scalar) signature of map_unary.
template <class F>
struct IgnoreScalar {
  F f;
  template <class C>
  OPTIMI_HD C operator()(C x, C) const {
    return f(x);
  }
};

#if OPTIMI_ROW_LANES
template <>
constexpr bool kOnLanes<IgnoreScalar<fn::GeluTanh>> = true;
template <>
constexpr bool kOnLanes<fn::GeluTanhBackward> = true;
#endif

template <class T>
void unary_typed(UnaryOp op, const Tensor& x, Tensor& out, double s) {
  switch (op) {
    case UnaryOp::Neg:
      return map_unary<T>(x, out, IgnoreScalar<fn::Neg>{}, s);
    case UnaryOp::Exp:
      return map_unary<T>(x, out, IgnoreScalar<fn::Exp>{}, s);
    case UnaryOp::Log:
      return map_unary<T>(x, out, IgnoreScalar<fn::Log>{}, s);
    case UnaryOp::Sqrt:
      return map_unary<T>(x, out, IgnoreScalar<fn::Sqrt>{}, s);
    case UnaryOp::Rsqrt:
      return map_unary<T>(x, out, IgnoreScalar<fn::Rsqrt>{}, s);
    case UnaryOp::Tanh:
      return map_unary<T>(x, out, IgnoreScalar<fn::Tanh>{}, s);
    case UnaryOp::Abs:
      return map_unary<T>(x, out, IgnoreScalar<fn::Abs>{}, s);
    case UnaryOp::Sign:
      return map_unary<T>(x, out, IgnoreScalar<fn::Sign>{}, s);
    case UnaryOp::Relu:
      return map_unary<T>(x, out, IgnoreScalar<fn::Relu>{}, s);
    case UnaryOp::Sigmoid:
      return map_unary<T>(x, out, IgnoreScalar<fn::Sigmoid>{}, s);
    case UnaryOp::Silu:
      return map_unary<T>(x, out, IgnoreScalar<fn::Silu>{}, s);
    case UnaryOp::Mish:
      return map_unary<T>(x, out, IgnoreScalar<fn::Mish>{}, s);
    case UnaryOp::GeluTanh:
      return map_unary<T>(x, out, IgnoreScalar<fn::GeluTanh>{}, s);
    case UnaryOp::GeluErf:
      return map_unary<T>(x, out, IgnoreScalar<fn::GeluErf>{}, s);
    case UnaryOp::AddScalar:
      return map_unary<T>(x, out, fn::AddScalar{}, s);
    case UnaryOp::MulScalar:
      return map_unary<T>(x, out, fn::MulScalar{}, s);
    case UnaryOp::RSubScalar:
      return map_unary<T>(x, out, fn::RSubScalar{}, s);
    case UnaryOp::RDivScalar:
      return map_unary<T>(x, out, fn::RDivScalar{}, s);
    case UnaryOp::PowScalar:
      return map_unary<T>(x, out, fn::PowScalar{}, s);
  }
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::Add:
      return map_binary<T>(a, b, out, fn::Add{});
    case BinaryOp::Sub:
      return map_binary<T>(a, b, out, fn::Sub{});
    case BinaryOp::Mul:
      return map_binary<T>(a, b, out, fn::Mul{});
    case BinaryOp::Div:
      return map_binary<T>(a, b, out, fn::Div{});
    case BinaryOp::Maximum:
      return map_binary<T>(a, b, out, fn::Maximum{});
    case BinaryOp::GreaterEqualMask:
      return map_binary<T>(a, b, out, fn::GreaterEqualMask{});
    case BinaryOp::ReluBackward:
      return map_binary<T>(a, b, out, fn::ReluBackward{});
    case BinaryOp::SigmoidBackward:
      return map_binary<T>(a, b, out, fn::SigmoidBackward{});
    case BinaryOp::SiluBackward:
      return map_binary<T>(a, b, out, fn::SiluBackward{});
    case BinaryOp::MishBackward:
      return map_binary<T>(a, b, out, fn::MishBackward{});
    case BinaryOp::GeluTanhBackward:
      return map_binary<T>(a, b, out, fn::GeluTanhBackward{});
    case BinaryOp::GeluErfBackward:
      return map_binary<T>(a, b, out, fn::GeluErfBackward{});
    case BinaryOp::TanhBackward:
      return map_binary<T>(a, b, out, fn::TanhBackward{});
  }
}

template <class D, class S>
void copy_typed(const Tensor& src, Tensor& dst) {
  for_each_row<2>(make_layout<2>({&dst, &src}), [&](auto p, auto st, int64_t n) {
    D* o = reinterpret_cast<D*>(p[0]);
    const S* a = reinterpret_cast<const S*>(p[1]);
    auto convert = [](S v) -> D {
      if constexpr (std::is_same_v<S, D>) {
        return v;
      } else if constexpr (std::is_same_v<D, bool>) {
        return load(v) != compute_t<S>(0);
      } else if constexpr (std::is_same_v<S, bool>) {
        return store<D>(compute_t<D>(v ? 1 : 0));
      } else {
        return store<D>(load(v));
      }
    };
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = convert(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = convert(a[i * st[1]]);
    }
  });
}

// Views x as [outer, reduced, inner] (x must be contiguous).
struct ReduceShape {
  int64_t outer = 1, reduced = 1, inner = 1;
};
ReduceShape reduce_shape(const Tensor& x, int64_t dim) {
  ReduceShape r;
  for (int64_t i = 0; i < x.dim(); ++i) {
    int64_t s = x.shape()[size_t(i)];
    if (i < dim) r.outer *= s;
    if (i == dim) r.reduced = s;
    if (i > dim) r.inner *= s;
  }
  return r;
}

template <class T, bool kMax>
void reduce_typed(const Tensor& x, int64_t dim, Tensor& out) {
  using Acc = std::conditional_t<std::is_same_v<T, int64_t>, int64_t, double>;
  const ReduceShape r = reduce_shape(x, dim);
  const T* in = x.data<T>();
  T* o = out.data<T>();
  auto combine = [](Acc acc, Acc v) {
    if constexpr (kMax) {
      return (v > acc || v != v) ? v : acc;  // NaN propagates, as in PyTorch
    } else {
      return acc + v;
    }
  };
  // A task reduces a chunk of the inner columns of one outer slice, walking the reduced dim row
  // by row: the loads stay contiguous and vectorise. A reduction over the leading dim into few
  // columns (a bias gradient) would be a single task, so its rows are split into parts as well,
  // whose partial results are combined in part order (the parts depend only on the shape, so the
  // result does not depend on the thread count).
  constexpr int64_t kChunk = 256;
  constexpr int64_t kWantedTasks = 8;
  constexpr int64_t kMinPartRows = 64;
  const int64_t chunks = (r.inner + kChunk - 1) / kChunk;
  const int64_t parts =
      r.inner == 1 ? 1
                   : std::clamp<int64_t>(kWantedTasks / std::max<int64_t>(r.outer * chunks, 1), 1,
                                         std::max<int64_t>(r.reduced / kMinPartRows, 1));
  const int64_t part_rows = (r.reduced + parts - 1) / parts;
  std::vector<Acc> partial(parts > 1 ? size_t(r.outer * parts * r.inner) : 0);
  auto reduce_task = [&](int64_t task) {
    const int64_t b = task / (chunks * parts);
    const int64_t j0 = (task / parts % chunks) * kChunk;
    const int64_t part = task % parts;
    const int64_t nj = std::min(kChunk, r.inner - j0);
    const T* base = in + b * r.reduced * r.inner + j0;
    T* dst = o + b * r.inner + j0;
    if (r.inner == 1) {  // a reduction along the last dim
      Acc acc = kMax ? Acc(load(base[0])) : Acc(0);
      if constexpr (kMax) {
        for (int64_t k = 1; k < r.reduced; ++k) acc = combine(acc, Acc(load(base[k])));
      } else {
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < r.reduced; ++k) acc += Acc(load(base[k]));
      }
      dst[0] = store<T>(compute_t<T>(acc));
      return;
    }
    const int64_t k0 = part * part_rows;
    const int64_t k1 = std::min(r.reduced, k0 + part_rows);
    Acc acc[kChunk];
    for (int64_t j = 0; j < nj; ++j) acc[j] = kMax ? Acc(load(base[k0 * r.inner + j])) : Acc(0);
    for (int64_t k = kMax ? k0 + 1 : k0; k < k1; ++k) {
      const T* row = base + k * r.inner;
#pragma omp simd
      for (int64_t j = 0; j < nj; ++j) acc[j] = combine(acc[j], Acc(load(row[j])));
    }
    if (parts == 1) {
      for (int64_t j = 0; j < nj; ++j) dst[j] = store<T>(compute_t<T>(acc[j]));
    } else {
      std::copy(acc, acc + nj, partial.begin() + (b * parts + part) * r.inner + j0);
    }
  };
  parallel_for(r.outer * chunks * parts, worth_sharing(r.outer * r.reduced * r.inner), reduce_task);
  if (parts == 1) return;
  for (int64_t b = 0; b < r.outer; ++b) {
    const Acc* slice = partial.data() + b * parts * r.inner;
    for (int64_t j = 0; j < r.inner; ++j) {
      Acc acc = slice[j];
      for (int64_t part = 1; part < parts; ++part) acc = combine(acc, slice[part * r.inner + j]);
      o[b * r.inner + j] = store<T>(compute_t<T>(acc));
    }
  }
}

void require_arithmetic(const char* op, DType t) {
  if (t == DType::Bool)
    throw std::invalid_argument(std::string(op) + ": not supported for bool tensors");
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) {
  require_arithmetic("unary", out.dtype());
  visit_dtype("unary", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_arithmetic_storage<T>) unary_typed<T>(op, x, out, scalar);
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  require_arithmetic("binary", out.dtype());
  visit_dtype("binary", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_arithmetic_storage<T>) binary_typed<T>(op, a, b, out);
  });
}

void copy(const Tensor& src, Tensor& dst) {
  visit_dtype("copy", dst.dtype(), [&](auto dtag) {
    visit_dtype("copy", src.dtype(),
                [&](auto stag) { copy_typed<decltype(dtag), decltype(stag)>(src, dst); });
  });
}

void fill(Tensor& dst, double value) {
  visit_dtype("fill", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_same_v<T, bool>) {
      v = value != 0.0;
    } else {
      v = store<T>(compute_t<T>(value));
    }
    for_each_row<1>(make_layout<1>({&dst}), [&](auto p, auto st, int64_t n) {
      T* o = reinterpret_cast<T*>(p[0]);
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = v;
    });
  });
}

void reduce_sum(const Tensor& x, int64_t dim, Tensor& out) {
  require_arithmetic("sum", x.dtype());
  visit_dtype("sum", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_arithmetic_storage<T>) reduce_typed<T, false>(x, dim, out);
  });
}

void reduce_max(const Tensor& x, int64_t dim, Tensor& out) {
  require_arithmetic("max", x.dtype());
  visit_dtype("max", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_arithmetic_storage<T>) reduce_typed<T, true>(x, dim, out);
  });
}

void reduce_sum_all(const Tensor& x, Tensor& out) {
  require_arithmetic("sum", x.dtype());
  visit_dtype("sum", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_arithmetic_storage<T>) {
      using Acc = std::conditional_t<std::is_same_v<T, int64_t>, int64_t, double>;
      const T* in = x.data<T>();
      const int64_t n = x.numel();
      const Acc total = chunked_sum<Acc>(n, [&](int64_t begin, int64_t end) {
        Acc sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = begin; i < end; ++i) sum += Acc(load(in[i]));
        return sum;
      });
      *out.data<T>() = store<T>(compute_t<T>(total));
    }
  });
}

}  // namespace optimi::kernels::cpu
