#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/nn_kernels.hpp"
#include "kernels/cpu/row_reduce.hpp"

// One (batch, head) matrix at a time, each on one thread, the products on gemm_one; the softmax
// probabilities are kept for backward, so backward is four products and one row pass. Causal
// attention works in blocks of query rows (forward, dS, dQ) or key rows (dK, dV) that skip the
// masked triangle.
namespace optimi::kernels::cpu {
namespace {

// The matrices of a [B.., rows, cols] tensor whose last dim has unit stride (any other strides:
// outputs too may be laid out like transposed inputs). T is const for inputs.
template <class T>
struct Batched {
  T* base;
  std::vector<int64_t> offsets;  // element offset of every matrix
  int64_t rows;
  int64_t cols;
  int64_t row_stride;

  T* matrix(int64_t b) const { return base + offsets[b]; }
};

template <class T>
Batched<T> batched(const Tensor& t) {
  const Shape& shape = t.shape();
  const Shape& strides = t.strides();
  const int64_t nd = t.dim();
  return {t.data<std::remove_const_t<T>>(), matrix_offsets(t), shape[nd - 2], shape[nd - 1],
          strides[nd - 2]};
}

// Rows [first, ...) of a matrix, and its transpose.
template <class C>
MatrixRef<C> from_row(MatrixRef<C> m, int64_t first) {
  return {m.data + first * m.row_stride, m.row_stride, m.col_stride};
}
template <class C>
MatrixRef<C> transposed(MatrixRef<C> m) {
  return {m.data, m.col_stride, m.row_stride};
}

// Matrix b in the compute type: the tensor's own memory when it already is, else a converted
// copy in `scratch`.
template <class T, class C = compute_t<T>>
MatrixRef<C> matrix(const Batched<const T>& m, int64_t b, std::vector<C>& scratch) {
  const T* p = m.matrix(b);
  if constexpr (std::is_same_v<T, C>) {
    return {p, m.row_stride, 1};
  } else {
    scratch.resize(m.rows * m.cols);
    for (int64_t i = 0; i < m.rows; ++i) {
      for (int64_t j = 0; j < m.cols; ++j) scratch[i * m.cols + j] = load(p[i * m.row_stride + j]);
    }
    return {scratch.data(), m.cols, 1};
  }
}

// A compute-typed destination matrix: rows ld apart.
template <class C>
struct Out {
  C* data;
  int64_t ld;

  C* row(int64_t i) const { return data + i * ld; }
};

// Matrix b as a destination: the tensor's own memory when T is the compute type, else `scratch`,
// which flush() then rounds into it.
template <class T, class C = compute_t<T>>
Out<C> destination(const Batched<T>& m, int64_t b, std::vector<C>& scratch) {
  if constexpr (std::is_same_v<T, C>) {
    return {m.matrix(b), m.row_stride};
  } else {
    scratch.resize(m.rows * m.cols);
    return {scratch.data(), m.cols};
  }
}
template <class T, class C = compute_t<T>>
void flush(const Batched<T>& m, int64_t b, const std::vector<C>& scratch) {
  if constexpr (!std::is_same_v<T, C>) {
    T* dst = m.matrix(b);
    for (int64_t i = 0; i < m.rows; ++i) {
      for (int64_t j = 0; j < m.cols; ++j) {
        dst[i * m.row_stride + j] = store<T>(scratch[i * m.cols + j]);
      }
    }
  }
}

// Blocks of query rows (or of key rows, in backward) small enough to skip most of the masked
// upper triangle.
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

struct KeyBlock {
  int64_t begin;
  int64_t keys;
  int64_t first_query;  // queries that see the block: [first_query, sq)
};

template <class F>
void for_each_key_block(int64_t sq, int64_t sk, bool causal, F&& f) {
  const int64_t step = causal ? kCausalBlock : std::max<int64_t>(sk, 1);
  for (int64_t j0 = 0; j0 < sk; j0 += step) {
    f(KeyBlock{j0, std::min(step, sk - j0), causal ? std::min(j0, sq) : 0});
  }
}

// Softmax in place over the visible keys of each row of a block of raw scores (row stride sk),
// scaled; under the causal mask query i sees keys j <= i and the rest become exact zeros. A
// scale >= 0 goes into the exponent: max(x) * scale is max(x * scale) exactly, rounding being
// monotonic; a negative one takes a pass of its own first.
template <class C>
void softmax_rows(C* p, const RowBlock& blk, int64_t sk, bool causal, C scale) {
  for (int64_t r = 0; r < blk.rows; ++r) {
    C* row = p + r * sk;
    const int64_t n = causal ? std::min(blk.begin + r + 1, sk) : sk;
    C factor = scale;
    if (scale < C(0)) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] *= scale;
      factor = C(1);
    }
    softmax_row(n, row, row, factor);
    std::fill(row + n, row + sk, C(0));
  }
}

template <class T>
void forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
             Tensor& out, Tensor& probs) {
  using C = compute_t<T>;
  const Batched<const T> qm = batched<const T>(q);
  const Batched<const T> km = batched<const T>(k);
  const Batched<const T> vm = batched<const T>(v);
  const Batched<T> om = batched<T>(out);
  const int64_t count = static_cast<int64_t>(qm.offsets.size());
  const int64_t sq = qm.rows;
  const int64_t sk = km.rows;
  const int64_t d = qm.cols;
  const int64_t dv = vm.cols;
  C* p = probs.data<C>();
  parallel_region(count > 1 && worth_sharing(count * sq * sk), [&](const Team& team) {
    std::vector<C> qs, ks, vs, os;
    team.for_static(count, [&](int64_t b) {
      const MatrixRef<C> Q = matrix(qm, b, qs);
      const MatrixRef<C> K = matrix(km, b, ks);
      const MatrixRef<C> V = matrix(vm, b, vs);
      const Out<C> O = destination(om, b, os);
      C* P = p + b * sq * sk;
      for_each_block(sq, sk, causal, [&](const RowBlock& blk) {
        C* S = P + blk.begin * sk;
        gemm_one(from_row(Q, blk.begin), transposed(K), S, sk, blk.rows, blk.keys, d);
        softmax_rows(S, blk, sk, causal, C(scale));
        gemm_one({S, sk, 1}, V, O.row(blk.begin), O.ld, blk.rows, dv, blk.keys);
      });
      flush(om, b, os);
    });
  });
}

// dV = P^T dO, dS = scale P * (dP - rowsum(P * dP)) with dP = dO V^T, dQ = dS K, dK = dS^T Q;
// masked entries have P = 0, so dS = 0 there.
template <class T>
void backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& probs, double scale, bool causal, Tensor& grad_q, Tensor& grad_k,
              Tensor& grad_v) {
  using C = compute_t<T>;
  const Batched<const T> gm = batched<const T>(grad_out);
  const Batched<const T> qm = batched<const T>(q);
  const Batched<const T> km = batched<const T>(k);
  const Batched<const T> vm = batched<const T>(v);
  const Batched<T> gqm = batched<T>(grad_q);
  const Batched<T> gkm = batched<T>(grad_k);
  const Batched<T> gvm = batched<T>(grad_v);
  const int64_t count = static_cast<int64_t>(qm.offsets.size());
  const int64_t sq = qm.rows;
  const int64_t sk = km.rows;
  const int64_t d = qm.cols;
  const int64_t dv = vm.cols;
  const C* p = probs.data<C>();
  parallel_region(count > 1 && worth_sharing(count * sq * sk), [&](const Team& team) {
    std::vector<C> gs, qs, ks, vs, gqs, gks, gvs;
    std::vector<C> ds_buffer(sq * sk);
    C* dS = ds_buffer.data();
    team.for_static(count, [&](int64_t b) {
      const MatrixRef<C> dO = matrix(gm, b, gs);
      const MatrixRef<C> Q = matrix(qm, b, qs);
      const MatrixRef<C> K = matrix(km, b, ks);
      const MatrixRef<C> V = matrix(vm, b, vs);
      const Out<C> dQ = destination(gqm, b, gqs);
      const Out<C> dK = destination(gkm, b, gks);
      const Out<C> dV = destination(gvm, b, gvs);
      const C* P = p + b * sq * sk;
      for_each_block(sq, sk, causal, [&](const RowBlock& blk) {
        C* S = dS + blk.begin * sk;
        gemm_one(from_row(dO, blk.begin), transposed(V), S, sk, blk.rows, blk.keys, dv);
        for (int64_t r = 0; r < blk.rows; ++r) {
          C* row = S + r * sk;
          const C* pr = P + (blk.begin + r) * sk;
          const C dot = row_sum(
              blk.keys, [](auto p, auto dp) { return p * dp; }, pr, row);
#pragma omp simd
          for (int64_t j = 0; j < blk.keys; ++j) row[j] = C(scale) * pr[j] * (row[j] - dot);
          std::fill(row + blk.keys, row + sk, C(0));  // read by key blocks when sq < sk
        }
        gemm_one({S, sk, 1}, K, dQ.row(blk.begin), dQ.ld, blk.rows, d, blk.keys);
      });
      // Key block j sees the dS and P rows of the queries that see it (computed above: a query
      // block's keys reach at least as far as its own rows).
      for_each_key_block(sq, sk, causal, [&](const KeyBlock& blk) {
        const int64_t queries = sq - blk.first_query;
        // Keys no query sees (causal, sk > sq) get zero gradients from an empty product, whose
        // operands then start at row 0 rather than past the end.
        const int64_t first = queries > 0 ? blk.first_query : 0;
        const int64_t at = first * sk + blk.begin;
        gemm_one(transposed(MatrixRef<C>{P + at, sk, 1}), from_row(dO, first), dV.row(blk.begin),
                 dV.ld, blk.keys, dv, queries);
        gemm_one(transposed(MatrixRef<C>{dS + at, sk, 1}), from_row(Q, first), dK.row(blk.begin),
                 dK.ld, blk.keys, d, queries);
      });
      flush(gqm, b, gqs);
      flush(gkm, b, gks);
      flush(gvm, b, gvs);
    });
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
