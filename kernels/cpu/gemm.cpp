#include "kernels/cpu/gemm.hpp"

// GCC 12 flags Eigen's AVX-512 packing and transposes as (maybe-)uninitialized, the latter in
// sanitizer builds: false positives inside Eigen, reported where its templates are instantiated,
// i.e. in this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/gemm_avx512.hpp"
#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/thread_pool.hpp"

// Batched GEMM dispatch. Float32 and bfloat16 go to the packed AVX-512 kernels where the CPU has
// them; float64, float16 and CPUs without them use Eigen's GEMM over matrices mapped in place (any
// layout with one unit stride is a plain row- or column-major matrix to Eigen, so transposed
// operands cost no copy), 16-bit floats through float32 copies.
namespace optimi::kernels::cpu {
namespace {

// How every matrix of one operand sits in memory.
struct Layout {
  bool col_major = false;
  int64_t ld = 1;  // leading dimension: the stride between rows (row-major) or columns
};

std::optional<Layout> matrix_layout(int64_t rows, int64_t cols, int64_t row_stride,
                                    int64_t col_stride) {
  // Strides of size-1 dims are meaningless, so either layout may fit.
  if ((cols <= 1 || col_stride == 1) && (rows <= 1 || row_stride >= cols)) {
    return Layout{false, rows <= 1 ? std::max<int64_t>(cols, 1) : row_stride};
  }
  if ((rows <= 1 || row_stride == 1) && (cols <= 1 || col_stride >= rows)) {
    return Layout{true, cols <= 1 ? std::max<int64_t>(rows, 1) : col_stride};
  }
  return std::nullopt;
}

// The operand itself when its matrices have a usable layout, otherwise a contiguous copy.
Tensor with_matrix_layout(const Tensor& t) {
  int64_t nd = t.dim();
  const Shape& s = t.shape();
  const Shape& st = t.strides();
  if (matrix_layout(s[size_t(nd - 2)], s[size_t(nd - 1)], st[size_t(nd - 2)], st[size_t(nd - 1)])) {
    return t;
  }
  return t.contiguous();
}

Layout layout_of(const Tensor& t) {
  int64_t nd = t.dim();
  const Shape& s = t.shape();
  const Shape& st = t.strides();
  return *matrix_layout(s[size_t(nd - 2)], s[size_t(nd - 1)], st[size_t(nd - 2)],
                        st[size_t(nd - 1)]);
}

template <class T, int Order>
using ConstMatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>,
                                  Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using RowMajorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                               Eigen::Unaligned, Eigen::OuterStride<>>;

// c (rows ldc apart) = a @ b, plus `bias` in every row when not null.
template <class T, int OrderA, int OrderB>
void multiply_one(const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, int64_t m,
                  int64_t n, int64_t k, const T* bias) {
  ConstMatrixMap<T, OrderA> A(a, m, k, Eigen::OuterStride<>(lda));
  ConstMatrixMap<T, OrderB> B(b, k, n, Eigen::OuterStride<>(ldb));
  RowMajorMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  C.noalias() = A * B;
  if (bias) C.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, n);
}

template <class T>
using MultiplyFn = void (*)(const T*, int64_t, const T*, int64_t, T*, int64_t, int64_t, int64_t,
                            int64_t, const T*);

template <class T>
MultiplyFn<T> multiply_for(bool a_col_major, bool b_col_major) {
  if (a_col_major) {
    return b_col_major ? multiply_one<T, Eigen::ColMajor, Eigen::ColMajor>
                       : multiply_one<T, Eigen::ColMajor, Eigen::RowMajor>;
  }
  return b_col_major ? multiply_one<T, Eigen::RowMajor, Eigen::ColMajor>
                     : multiply_one<T, Eigen::RowMajor, Eigen::RowMajor>;
}

// Widens one 16-bit matrix into a dense float buffer of the same layout (leading dim packed).
template <class T>
int64_t widen(const T* src, Layout layout, int64_t rows, int64_t cols, float* dst, bool parallel) {
  int64_t outer = layout.col_major ? cols : rows;
  int64_t inner = layout.col_major ? rows : cols;
  parallel_for(outer, parallel && worth_sharing(outer * inner), [&](int64_t o) {
    const T* s = src + o * layout.ld;
    float* d = dst + o * inner;
    for (int64_t i = 0; i < inner; ++i) d[i] = load(s[i]);
  });
  return std::max<int64_t>(inner, 1);
}

struct Problem {
  int64_t batch, m, n, k;
  Layout a, b;
  std::vector<int64_t> a_offsets, b_offsets;
};

// m*n*k from which sharing out one product pays.
constexpr int64_t kBigGemm = int64_t(1) << 21;

// One parallel loop over the batch when it is large enough to share out (each GEMM then runs on
// one thread); otherwise each GEMM is shared out itself.
bool parallel_over_batch(const Problem& p) {
  return p.batch > 1 && (p.batch >= team_size() || p.m * p.n * p.k < kBigGemm);
}

// c (rows ldc apart) = a @ b (+ bias) through Eigen, in blocks of rows shared out on the team
// when `threaded` and the product is large. (Eigen's own threading is off: it would start a
// second team of threads, OpenMP's, next to the kernels'.)
template <class T>
void multiply_rows(MultiplyFn<T> multiply, bool a_col_major, const T* a, int64_t lda, const T* b,
                   int64_t ldb, T* c, int64_t ldc, int64_t m, int64_t n, int64_t k, const T* bias,
                   bool threaded) {
  const int64_t blocks = threaded && m * n * k >= kBigGemm ? std::min<int64_t>(team_size(), m) : 1;
  parallel_for(blocks, blocks > 1, [&](int64_t block) {
    const int64_t r0 = m * block / blocks, r1 = m * (block + 1) / blocks;
    multiply(a + r0 * (a_col_major ? 1 : lda), lda, b, ldb, c + r0 * ldc, ldc, r1 - r0, n, k, bias);
  });
}

// `threaded`: may share the work out on the team.
template <class T>
void run_native(const Problem& p, const T* a, const T* b, T* c, const T* bias, bool threaded) {
  MultiplyFn<T> multiply = multiply_for<T>(p.a.col_major, p.b.col_major);
  const bool over_batch = threaded && parallel_over_batch(p);
  parallel_for_dynamic(p.batch, over_batch, [&](int64_t i) {
    multiply_rows(multiply, p.a.col_major, a + p.a_offsets[size_t(i)], p.a.ld,
                  b + p.b_offsets[size_t(i)], p.b.ld, c + i * p.m * p.n, p.n, p.m, p.n, p.k, bias,
                  threaded && !over_batch);
  });
}

// Float32 scratch matrices for one 16-bit product at a time.
struct Widened {
  std::vector<float> a, b, c;
  explicit Widened(const Problem& p)
      : a(size_t(p.m * p.k)), b(size_t(p.k * p.n)), c(size_t(p.m * p.n)) {}
};

// Widens matrix i of both operands, multiplies in float32, adds the bias and rounds into c once.
// `threaded` spreads the widening and rounding loops when the batch itself is not shared out.
template <class T>
void widened_one(const Problem& p, int64_t i, const T* a, const T* b, T* c, const T* bias,
                 Widened& w, bool threaded) {
  int64_t lda = widen(a + p.a_offsets[size_t(i)], p.a, p.m, p.k, w.a.data(), threaded);
  int64_t ldb = widen(b + p.b_offsets[size_t(i)], p.b, p.k, p.n, w.b.data(), threaded);
  multiply_rows(multiply_for<float>(p.a.col_major, p.b.col_major), p.a.col_major, w.a.data(), lda,
                w.b.data(), ldb, w.c.data(), p.n, p.m, p.n, p.k, static_cast<const float*>(nullptr),
                threaded);
  T* out = c + i * p.m * p.n;
  parallel_for(p.m, threaded && worth_sharing(p.m * p.n), [&](int64_t r) {
    for (int64_t j = 0; j < p.n; ++j) {
      const float sum = w.c[size_t(r * p.n + j)];
      out[r * p.n + j] = store<T>(bias ? sum + load(bias[j]) : sum);
    }
  });
}

template <class T>
void run_widened(const Problem& p, const T* a, const T* b, T* c, const T* bias, bool threaded) {
  if (threaded && parallel_over_batch(p)) {
    parallel_region(true, [&](const Team& team) {
      Widened w(p);
      team.for_static(p.batch, [&](int64_t i) { widened_one(p, i, a, b, c, bias, w, false); });
    });
    return;
  }
  Widened w(p);
  for (int64_t i = 0; i < p.batch; ++i) widened_one(p, i, a, b, c, bias, w, threaded);
}

// Matrix i of an operand, as gemm_avx512 takes it.
template <class T>
MatrixRef<T> matrix(const T* base, Layout layout, int64_t offset) {
  return layout.col_major ? MatrixRef<T>{base + offset, 1, layout.ld}
                          : MatrixRef<T>{base + offset, layout.ld, 1};
}

template <class T>
void run_avx512(const Problem& p, const T* a, const T* b, T* c, const T* bias, bool threaded) {
  const bool over_batch = threaded && parallel_over_batch(p);
  parallel_for_dynamic(p.batch, over_batch, [&](int64_t i) {
    gemm_avx512(matrix(a, p.a, p.a_offsets[size_t(i)]), matrix(b, p.b, p.b_offsets[size_t(i)]),
                c + i * p.m * p.n, p.n, p.m, p.n, p.k, bias, threaded && !over_batch);
  });
}

// The layout of a single matrix with a unit stride in one of its dims.
template <class T>
Layout layout_of(MatrixRef<T> x, int64_t rows, int64_t cols) {
  const std::optional<Layout> layout = matrix_layout(rows, cols, x.row_stride, x.col_stride);
  if (!layout) throw std::invalid_argument("gemm_one: an operand has no unit stride");
  return *layout;
}

template <class T>
void gemm_one_eigen(MatrixRef<T> a, MatrixRef<T> b, T* c, int64_t ldc, int64_t m, int64_t n,
                    int64_t k) {
  const Layout la = layout_of(a, m, k), lb = layout_of(b, k, n);
  multiply_for<T>(la.col_major, lb.col_major)(a.data, la.ld, b.data, lb.ld, c, ldc, m, n, k,
                                              nullptr);
}

// A product ready to run: its operands, copied where they have no usable layout, and its shape.
struct Prepared {
  Tensor a, b;
  Problem p;
};

Prepared prepare(const Tensor& a_in, const Tensor& b_in, const Tensor& c) {
  Prepared x{with_matrix_layout(a_in), with_matrix_layout(b_in), {}};
  Problem& p = x.p;
  int64_t nd = c.dim();
  p.m = c.shape()[size_t(nd - 2)];
  p.n = c.shape()[size_t(nd - 1)];
  p.k = x.a.shape()[size_t(nd - 1)];
  p.batch = p.m * p.n == 0 ? 0 : c.numel() / (p.m * p.n);
  if (p.batch == 0) return x;
  p.a = layout_of(x.a);
  p.b = layout_of(x.b);
  p.a_offsets = matrix_offsets(x.a);
  p.b_offsets = matrix_offsets(x.b);
  return x;
}

// `threaded`: the product may be shared out on the team; otherwise it runs on the calling thread
// alone (one product beside others).
void run(const Prepared& x, const Tensor& c, const Tensor& bias, bool threaded) {
  const Problem& p = x.p;
  if (p.batch == 0) return;
  const Tensor& a = x.a;
  const Tensor& b = x.b;
  auto bias_of = [&](auto tag) { return bias.defined() ? bias.data<decltype(tag)>() : nullptr; };
  switch (c.dtype()) {
    case DType::Float32:
      if (avx512_gemm_available(DType::Float32)) {
        return run_avx512(p, a.data<float>(), b.data<float>(), c.data<float>(), bias_of(float()),
                          threaded);
      }
      return run_native(p, a.data<float>(), b.data<float>(), c.data<float>(), bias_of(float()),
                        threaded);
    case DType::Float64:
      return run_native(p, a.data<double>(), b.data<double>(), c.data<double>(), bias_of(double()),
                        threaded);
    case DType::BFloat16:
      if (avx512_gemm_available(DType::BFloat16)) {
        return run_avx512(p, a.data<bfloat16>(), b.data<bfloat16>(), c.data<bfloat16>(),
                          bias_of(bfloat16()), threaded);
      }
      return run_widened(p, a.data<bfloat16>(), b.data<bfloat16>(), c.data<bfloat16>(),
                         bias_of(bfloat16()), threaded);
    case DType::Float16:
      return run_widened(p, a.data<float16>(), b.data<float16>(), c.data<float16>(),
                         bias_of(float16()), threaded);
    default:
      throw std::invalid_argument("gemm: expected a floating-point dtype, got " +
                                  std::string(dtype_name(c.dtype())));
  }
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias) {
  run(prepare(a, b, c), c, bias, /*threaded=*/true);
}

void gemm_concurrent(const std::vector<GemmProduct>& products) {
  // Multiply-adds below which a product is better off on a thread of its own, next to another,
  // than shared out among many (the seed step 15% faster, whose products are all below this and
  // too small to share out evenly). Larger ones are shared out in turn: side by side, the two
  // threads finish their products apart (the small config 0.4-0.8% slower).
  constexpr int64_t kSmallProduct = int64_t(1) << 24;
  // Multiply-adds in all below which the products run on this thread, one after another.
  constexpr int64_t kSideBySideWork = int64_t(1) << 18;
  const int64_t threads = team_size();
  const int64_t count = int64_t(products.size());
  std::vector<Prepared> prepared;
  bool all_small = true;
  int64_t work = 0;
  for (const GemmProduct& x : products) {
    prepared.push_back(prepare(x.a, x.b, x.c));
    const Problem& p = prepared.back().p;
    all_small = all_small && p.batch * p.m * p.n * p.k < kSmallProduct;
    work += p.batch * p.m * p.n * p.k;
  }
  const bool side_by_side =
      count > 1 && threads > 1 && all_small && worth_sharing(work, kSideBySideWork);
  if (!side_by_side) {
    for (int64_t i = 0; i < count; ++i)
      run(prepared[size_t(i)], products[size_t(i)].c, products[size_t(i)].bias, true);
    return;
  }
  parallel_for_dynamic(count, true, [&](int64_t i) {
    run(prepared[size_t(i)], products[size_t(i)].c, products[size_t(i)].bias, false);
  });
}

void gemm_one(MatrixRef<float> a, MatrixRef<float> b, float* c, int64_t ldc, int64_t m, int64_t n,
              int64_t k) {
  if (m == 0 || n == 0) return;
  if (avx512_gemm_available(DType::Float32)) {
    gemm_avx512(a, b, c, ldc, m, n, k, /*bias=*/nullptr, /*threaded=*/false);
  } else {
    gemm_one_eigen(a, b, c, ldc, m, n, k);
  }
}

void gemm_one(MatrixRef<double> a, MatrixRef<double> b, double* c, int64_t ldc, int64_t m,
              int64_t n, int64_t k) {
  if (m == 0 || n == 0) return;
  gemm_one_eigen(a, b, c, ldc, m, n, k);
}

}  // namespace optimi::kernels::cpu
