#include <Eigen/Core>
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"
#include "kernels/fast_math.hpp"

// One (batch, head) matrix at a time, each on one thread with Eigen's GEMM for the products; the
// softmax probabilities are kept for backward, so backward is four GEMMs and one row pass.
namespace optimi::kernels::cpu {
namespace {

template <class C>
using Mat = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class C>
using ConstView = Eigen::Map<const Mat<C>, 0, Eigen::OuterStride<>>;
template <class C>
using View = Eigen::Map<Mat<C>>;

// The matrices of a [B.., rows, cols] tensor whose last dim has unit stride.
template <class T>
struct Batched {
  const T* base;
  std::vector<int64_t> offsets;  // element offset of every matrix
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
};

template <class T>
Batched<T> batched(const Tensor& t) {
  const Shape& shape = t.shape();
  const Shape& strides = t.strides();
  const int64_t nd = t.dim();
  Batched<T> m{t.data<T>(), {}, shape[nd - 2], shape[nd - 1], strides[nd - 2]};
  int64_t count = 1;
  for (int64_t d = 0; d < nd - 2; ++d) count *= shape[d];
  m.offsets.resize(count);
  for (int64_t i = 0; i < count; ++i) {
    int64_t rest = i;
    int64_t off = 0;
    for (int64_t d = nd - 3; d >= 0; --d) {
      off += (rest % shape[d]) * strides[d];
      rest /= shape[d];
    }
    m.offsets[i] = off;
  }
  return m;
}

// Matrix b in the compute type: the tensor's own memory when it already is, else a converted
// copy in `scratch`.
template <class T, class C = compute_t<T>>
ConstView<C> matrix(const Batched<T>& m, int64_t b, std::vector<C>& scratch) {
  const T* p = m.base + m.offsets[b];
  if constexpr (std::is_same_v<T, C>) {
    return ConstView<C>(p, m.rows, m.cols, Eigen::OuterStride<>(m.row_stride));
  } else {
    scratch.resize(m.rows * m.cols);
    for (int64_t i = 0; i < m.rows; ++i) {
      for (int64_t j = 0; j < m.cols; ++j) scratch[i * m.cols + j] = load(p[i * m.row_stride + j]);
    }
    return ConstView<C>(scratch.data(), m.rows, m.cols, Eigen::OuterStride<>(m.cols));
  }
}

// A compute-typed [rows, cols] destination for a contiguous T array: the array itself when T is
// the compute type, else `scratch`, which flush() then rounds into the array.
template <class T, class C = compute_t<T>>
View<C> destination(T* dst, int64_t rows, int64_t cols, Mat<C>& scratch) {
  if constexpr (std::is_same_v<T, C>) {
    return View<C>(dst, rows, cols);
  } else {
    scratch.resize(rows, cols);
    return View<C>(scratch.data(), rows, cols);
  }
}
template <class T, class C = compute_t<T>>
void flush(T* dst, const Mat<C>& scratch) {
  if constexpr (!std::is_same_v<T, C>) {
    const C* s = scratch.data();
    for (int64_t i = 0; i < scratch.size(); ++i) dst[i] = store<T>(s[i]);
  }
}

// Causal attention goes through blocks of query rows, each against only the keys it can see, so
// the products skip most of the masked upper triangle.
constexpr int64_t kCausalBlock = 32;

struct RowBlock {
  int64_t begin;
  int64_t rows;
  int64_t keys;  // keys visible to the block: [0, keys)
};

template <class F>
void for_each_block(int64_t sq, int64_t sk, bool causal, F&& f) {
  const int64_t step = causal ? kCausalBlock : std::max<int64_t>(sq, 1);
  for (int64_t i0 = 0; i0 < sq; i0 += step) {
    const int64_t rows = std::min(step, sq - i0);
    f(RowBlock{i0, rows, causal ? std::min(i0 + rows, sk) : sk});
  }
}

// Softmax in place over the visible keys of each row of a block of scaled scores (row stride
// sk); under the causal mask query i sees keys j <= i and the rest become exact zeros.
template <class C>
void softmax_rows(C* p, const RowBlock& blk, int64_t sk, bool causal) {
  for (int64_t r = 0; r < blk.rows; ++r) {
    C* row = p + r * sk;
    const int64_t n = causal ? std::min(blk.begin + r + 1, sk) : sk;
    C m = -std::numeric_limits<C>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; ++j) m = row[j] > m ? row[j] : m;
    C s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) {
      row[j] = fast_exp(row[j] - m);
      s += row[j];
    }
    const C inv = C(1) / s;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
    std::fill(row + n, row + sk, C(0));
  }
}

template <class T>
void forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
             Tensor& out, Tensor& probs) {
  using C = compute_t<T>;
  const Batched<T> qm = batched<T>(q);
  const Batched<T> km = batched<T>(k);
  const Batched<T> vm = batched<T>(v);
  const int64_t count = static_cast<int64_t>(qm.offsets.size());
  const int64_t sq = qm.rows;
  const int64_t sk = km.rows;
  const int64_t dv = vm.cols;
  T* o = out.data<T>();
  C* p = probs.data<C>();
  parallel_region_if(count > 1 && count * sq * sk >= kParallelGrain, [&] {
    std::vector<C> qs, ks, vs;
    Mat<C> os;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < count; ++b) {
      const ConstView<C> Q = matrix(qm, b, qs);
      const ConstView<C> K = matrix(km, b, ks);
      const ConstView<C> V = matrix(vm, b, vs);
      View<C> P(p + b * sq * sk, sq, sk);
      View<C> O = destination(o + b * sq * dv, sq, dv, os);
      for_each_block(sq, sk, causal, [&](const RowBlock& blk) {
        auto S = P.block(blk.begin, 0, blk.rows, blk.keys);
        S.noalias() =
            C(scale) * (Q.middleRows(blk.begin, blk.rows) * K.topRows(blk.keys).transpose());
        softmax_rows(P.data() + blk.begin * sk, blk, sk, causal);
        O.middleRows(blk.begin, blk.rows).noalias() = S * V.topRows(blk.keys);
      });
      flush(o + b * sq * dv, os);
    }
  });
}

// dV = P^T dO, dS = P * (dP - rowsum(P * dP)) with dP = dO V^T, dQ = scale dS K,
// dK = scale dS^T Q; masked entries have P = 0, so dS = 0 there.
template <class T>
void backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& probs, double scale, bool causal, Tensor& grad_q, Tensor& grad_k,
              Tensor& grad_v) {
  using C = compute_t<T>;
  const Batched<T> gm = batched<T>(grad_out);
  const Batched<T> qm = batched<T>(q);
  const Batched<T> km = batched<T>(k);
  const Batched<T> vm = batched<T>(v);
  const int64_t count = static_cast<int64_t>(qm.offsets.size());
  const int64_t sq = qm.rows;
  const int64_t sk = km.rows;
  const int64_t d = qm.cols;
  const int64_t dv = vm.cols;
  const C* p = probs.data<C>();
  T* gq = grad_q.data<T>();
  T* gk = grad_k.data<T>();
  T* gv = grad_v.data<T>();
  parallel_region_if(count > 1 && count * sq * sk >= kParallelGrain, [&] {
    std::vector<C> gs, qs, ks, vs;
    std::vector<C> ds_buffer(std::min(sq, causal ? kCausalBlock : sq) * sk);
    Mat<C> qscratch, kscratch, vscratch;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < count; ++b) {
      const ConstView<C> dO = matrix(gm, b, gs);
      const ConstView<C> Q = matrix(qm, b, qs);
      const ConstView<C> K = matrix(km, b, ks);
      const ConstView<C> V = matrix(vm, b, vs);
      const Eigen::Map<const Mat<C>> P(p + b * sq * sk, sq, sk);
      View<C> dQ = destination(gq + b * sq * d, sq, d, qscratch);
      View<C> dK = destination(gk + b * sk * d, sk, d, kscratch);
      View<C> dV = destination(gv + b * sk * dv, sk, dv, vscratch);
      dK.setZero();
      dV.setZero();
      for_each_block(sq, sk, causal, [&](const RowBlock& blk) {
        const auto Pb = P.block(blk.begin, 0, blk.rows, blk.keys);
        const auto dOb = dO.middleRows(blk.begin, blk.rows);
        dV.topRows(blk.keys).noalias() += Pb.transpose() * dOb;
        View<C> ds(ds_buffer.data(), blk.rows, blk.keys);
        ds.noalias() = dOb * V.topRows(blk.keys).transpose();
        for (int64_t r = 0; r < blk.rows; ++r) {
          C* row = ds.data() + r * blk.keys;
          const C* pr = P.data() + (blk.begin + r) * sk;
          C dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t j = 0; j < blk.keys; ++j) dot += pr[j] * row[j];
#pragma omp simd
          for (int64_t j = 0; j < blk.keys; ++j) row[j] = pr[j] * (row[j] - dot);
        }
        dQ.middleRows(blk.begin, blk.rows).noalias() = C(scale) * (ds * K.topRows(blk.keys));
        dK.topRows(blk.keys).noalias() +=
            C(scale) * (ds.transpose() * Q.middleRows(blk.begin, blk.rows));
      });
      flush(gq + b * sq * d, qscratch);
      flush(gk + b * sk * d, kscratch);
      flush(gv + b * sk * dv, vscratch);
    }
  });
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                       Tensor& out, Tensor& probs) {
  visit_floating("scaled_dot_product_attention", q.dtype(),
                 [&](auto tag) { forward<decltype(tag)>(q, k, v, scale, causal, out, probs); });
}

void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& probs, double scale, bool causal, Tensor& grad_q,
                        Tensor& grad_k, Tensor& grad_v) {
  visit_floating("scaled_dot_product_attention", q.dtype(), [&](auto tag) {
    backward<decltype(tag)>(grad_out, q, k, v, probs, scale, causal, grad_q, grad_k, grad_v);
  });
}

}  // namespace optimi::kernels::cpu
