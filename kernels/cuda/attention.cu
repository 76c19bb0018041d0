#include <algorithm>
#include <cmath>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"
#include "kernels/cuda/strided.cuh"
#include "kernels/fast_math.hpp"

// Scaled dot-product attention with the probabilities materialised, as the CPU kernels do (and
// saved for backward): a block per query row computes its scores, softmax and output; backward is
// a block per query row for dS and dQ, then a block per key row for dK and dV. Plain loops over
// the head dim, written for correctness before speed.
namespace optimi::kernels::cuda {
namespace {

constexpr int kAttentionThreads = 128;

// Rows of a [B.., rows, cols] tensor with unit stride in its last dim and any other strides
// (outputs too may be laid out like transposed inputs). T is const for inputs.
template <class T>
struct Rows {
  T* base = nullptr;
  int batch_dims = 0;
  int64_t batch_shape[kMaxDims] = {};
  int64_t batch_strides[kMaxDims] = {};
  int64_t row_stride = 0;

  // Row 0 of matrix b; row i is i * row_stride further. Loops over rows take this once.
  __device__ T* matrix(int64_t b) const {
    int64_t offset = 0;
    for (int d = batch_dims - 1; d >= 0; --d) {
      offset += (b % batch_shape[d]) * batch_strides[d];
      b /= batch_shape[d];
    }
    return base + offset;
  }
  __device__ T* row(int64_t b, int64_t i) const { return matrix(b) + i * row_stride; }
};

template <class T>
Rows<T> rows_of(const Tensor& t) {
  Rows<T> r;
  r.base = ptr<T>(t);
  const int64_t nd = t.dim();
  if (nd - 2 > kMaxDims)
    throw std::invalid_argument("scaled_dot_product_attention: more than " +
                                std::to_string(kMaxDims) + " batch dims on CUDA, shape " +
                                shape_str(t.shape()));
  r.batch_dims = int(nd - 2);
  for (int d = 0; d < r.batch_dims; ++d) {
    r.batch_shape[d] = t.shape()[size_t(d)];
    r.batch_strides[d] = t.strides()[size_t(d)];
  }
  r.row_stride = t.strides()[size_t(nd - 2)];
  return r;
}

// Keys query i may see: all, or j <= i under the causal mask.
__device__ __forceinline__ int64_t visible_keys(int64_t i, int64_t sk, bool causal) {
  return causal ? (i + 1 < sk ? i + 1 : sk) : sk;
}

template <class T>
__global__ void forward_kernel(Rows<const T> q, Rows<const T> k, Rows<const T> v,
                               compute_t<T> scale, bool causal, int64_t count, int64_t sq,
                               int64_t sk, int64_t d, int64_t dv, Rows<T> out,
                               compute_t<T>* probs) {
  using C = compute_t<T>;
  for (int64_t row = blockIdx.x; row < count * sq; row += gridDim.x) {
    const int64_t b = row / sq;
    const int64_t i = row % sq;
    const int64_t n = visible_keys(i, sk, causal);
    const T* qi = q.row(b, i);
    const T* kb = k.matrix(b);
    const T* vb = v.matrix(b);
    C* p = probs + row * sk;
    C m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const T* kj = kb + j * k.row_stride;
      C dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += C(load(qi[c])) * C(load(kj[c]));
      const C s = scale * dot;
      p[j] = s;
      m = s > m ? s : m;
    }
    m = block_max(m);
    C sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const C e = fast_exp(p[j] - m);
      p[j] = e;
      sum += e;
    }
    const C inv = C(1) / block_sum(sum);
    for (int64_t j = threadIdx.x; j < sk; j += blockDim.x) p[j] = j < n ? p[j] * inv : C(0);
    __syncthreads();  // the whole row of p is read below
    for (int64_t c = threadIdx.x; c < dv; c += blockDim.x) {
      C acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += p[j] * C(load(vb[j * v.row_stride + c]));
      out.row(b, i)[c] = store<T>(acc);
    }
  }
}

// Per query row i: dP = dO V^T, dS = P * (dP - rowsum(P * dP)) into ds, dQ = scale dS K.
template <class T>
__global__ void backward_query_kernel(Rows<const T> grad_out, Rows<const T> k, Rows<const T> v,
                                      const compute_t<T>* probs, compute_t<T> scale, bool causal,
                                      int64_t count, int64_t sq, int64_t sk, int64_t d, int64_t dv,
                                      compute_t<T>* ds, Rows<T> grad_q) {
  using C = compute_t<T>;
  for (int64_t row = blockIdx.x; row < count * sq; row += gridDim.x) {
    const int64_t b = row / sq;
    const int64_t i = row % sq;
    const int64_t n = visible_keys(i, sk, causal);
    const T* go = grad_out.row(b, i);
    const T* kb = k.matrix(b);
    const T* vb = v.matrix(b);
    const C* p = probs + row * sk;
    C* s = ds + row * sk;
    C dot = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const T* vj = vb + j * v.row_stride;
      C dp = 0;
      for (int64_t c = 0; c < dv; ++c) dp += C(load(go[c])) * C(load(vj[c]));
      s[j] = dp;
      dot += p[j] * dp;
    }
    dot = block_sum(dot);
    for (int64_t j = threadIdx.x; j < sk; j += blockDim.x)
      s[j] = j < n ? p[j] * (s[j] - dot) : C(0);
    __syncthreads();
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      C acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += s[j] * C(load(kb[j * k.row_stride + c]));
      grad_q.row(b, i)[c] = store<T>(scale * acc);
    }
  }
}

// Per key row j: dV = P^T dO and dK = scale dS^T Q, over the queries that see key j.
template <class T>
__global__ void backward_key_kernel(Rows<const T> grad_out, Rows<const T> q,
                                    const compute_t<T>* probs, const compute_t<T>* ds,
                                    compute_t<T> scale, bool causal, int64_t count, int64_t sq,
                                    int64_t sk, int64_t d, int64_t dv, Rows<T> grad_k,
                                    Rows<T> grad_v) {
  using C = compute_t<T>;
  for (int64_t row = blockIdx.x; row < count * sk; row += gridDim.x) {
    const int64_t b = row / sk;
    const int64_t j = row % sk;
    const int64_t first = causal ? j : 0;  // query i sees key j iff j <= i when causal
    const C* p = probs + b * sq * sk + j;
    const C* s = ds + b * sq * sk + j;
    const T* gob = grad_out.matrix(b);
    const T* qb = q.matrix(b);
    for (int64_t c = threadIdx.x; c < dv; c += blockDim.x) {
      C acc = 0;
      for (int64_t i = first; i < sq; ++i)
        acc += p[i * sk] * C(load(gob[i * grad_out.row_stride + c]));
      grad_v.row(b, j)[c] = store<T>(acc);
    }
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
      C acc = 0;
      for (int64_t i = first; i < sq; ++i) acc += s[i * sk] * C(load(qb[i * q.row_stride + c]));
      grad_k.row(b, j)[c] = store<T>(scale * acc);
    }
  }
}

struct Dims {
  int64_t count, sq, sk, d, dv;
};

Dims dims(const Tensor& q, const Tensor& k, const Tensor& v) {
  const size_t nd = size_t(q.dim());
  int64_t count = 1;
  for (size_t i = 0; i + 2 < nd; ++i) count *= q.shape()[i];
  return {count, q.shape()[nd - 2], k.shape()[nd - 2], q.shape()[nd - 1], v.shape()[nd - 1]};
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                       Tensor& out, Tensor& probs) {
  const Dims s = dims(q, k, v);
  if (s.count * s.sq == 0) return;
  DeviceGuard guard(out.device());
  visit_floating("scaled_dot_product_attention", q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    forward_kernel<<<grid_for(s.count * s.sq, 1), kAttentionThreads, 0, stream(out.device())>>>(
        rows_of<const T>(q), rows_of<const T>(k), rows_of<const T>(v), C(scale), causal, s.count,
        s.sq, s.sk, s.d, s.dv, rows_of<T>(out), ptr<C>(probs));
    OPTIMI_CUDA_CHECK_LAUNCH("attention forward_kernel");
  });
}

void attention_backward(const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& probs, double scale, bool causal, Tensor& grad_q,
                        Tensor& grad_k, Tensor& grad_v) {
  const Dims s = dims(q, k, v);
  if (s.count == 0) return;
  const Device device = q.device();
  DeviceGuard guard(device);
  cudaStream_t st = stream(device);
  visit_floating("scaled_dot_product_attention", q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    Storage ds(size_t(s.count * s.sq * s.sk) * sizeof(C), device);
    if (s.sq > 0) {
      backward_query_kernel<<<grid_for(s.count * s.sq, 1), kAttentionThreads, 0, st>>>(
          rows_of<const T>(grad_out), rows_of<const T>(k), rows_of<const T>(v), ptr<const C>(probs),
          C(scale), causal, s.count, s.sq, s.sk, s.d, s.dv, static_cast<C*>(ds.data()),
          rows_of<T>(grad_q));
      OPTIMI_CUDA_CHECK_LAUNCH("attention backward_query_kernel");
    }
    if (s.sk > 0) {
      backward_key_kernel<<<grid_for(s.count * s.sk, 1), kAttentionThreads, 0, st>>>(
          rows_of<const T>(grad_out), rows_of<const T>(q), ptr<const C>(probs),
          static_cast<const C*>(ds.data()), C(scale), causal, s.count, s.sq, s.sk, s.d, s.dv,
          rows_of<T>(grad_k), rows_of<T>(grad_v));
      OPTIMI_CUDA_CHECK_LAUNCH("attention backward_key_kernel");
    }
  });
}

}  // namespace optimi::kernels::cuda
