#include <cublas_v2.h>

#include <array>
#include <climits>
#include <mutex>

#include "kernels/cuda/backend.hpp"
#include "kernels/cuda/runtime.cuh"

// Batched GEMM through cublasGemmStridedBatchedEx. cuBLAS is column-major: a row-major [R, C]
// matrix is its column-major transpose, so c = a b is computed as c^T = b^T a^T, and a matrix
// stored transposed (unit stride down its rows) is handed over with op T instead of being copied.
namespace optimi::kernels::cuda {
namespace {

constexpr int kMaxDevices = 16;

void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + call + ": " +
                             cublasGetStatusString(status));
}

cublasHandle_t handle(Device device) {
  static std::mutex mutex;
  static std::array<cublasHandle_t, kMaxDevices> handles{};
  std::lock_guard<std::mutex> lock(mutex);
  cublasHandle_t& h = handles[size_t(device.index)];
  if (h == nullptr) {
    check_cublas(cublasCreate(&h), "cublasCreate");
    check_cublas(cublasSetStream(h, stream(device)), "cublasSetStream");
    // 16-bit products accumulate in float32 throughout, and float32 stays float32 (no TF32).
    check_cublas(cublasSetMathMode(h, static_cast<cublasMath_t>(
                                          CUBLAS_DEFAULT_MATH |
                                          CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
                 "cublasSetMathMode");
  }
  return h;  // never destroyed: the driver may be gone by the time static destructors run
}

// One operand as cuBLAS reads it: a [rows, cols] row-major matrix seen column-major.
struct Operand {
  const void* data;
  cublasOperation_t op;  // N: stored row-major (ld = row stride); T: stored column-major
  int64_t ld;
  int64_t batch_stride;
};

// The stride that steps through all batch dims as one, if there is one.
bool batch_stride(const Tensor& t, int64_t& stride) {
  const int64_t nd = t.dim();
  stride = 0;
  int64_t expected = -1;  // unknown until the first batch dim of size > 1
  for (int64_t d = nd - 3; d >= 0; --d) {
    const int64_t size = t.shape()[size_t(d)];
    const int64_t s = t.strides()[size_t(d)];
    if (size == 1) continue;
    if (expected < 0) {
      stride = s;
    } else if (s != expected) {
      return false;
    }
    expected = s * size;
  }
  return true;
}

// Reads t in place when one of its matrix dims has unit stride and its batch dims collapse to one
// stride; otherwise from a dense copy.
Operand operand(const Tensor& t, Tensor& keep) {
  const int64_t nd = t.dim();
  const int64_t rows = t.shape()[size_t(nd - 2)];
  const int64_t cols = t.shape()[size_t(nd - 1)];
  const int64_t rs = t.strides()[size_t(nd - 2)];
  const int64_t cs = t.strides()[size_t(nd - 1)];
  int64_t bs = 0;
  if (batch_stride(t, bs)) {
    // A dim of size 1 has a meaningless stride; any ld >= the other extent works for it.
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= std::max<int64_t>(cols, 1)))
      return {t.data_ptr(), CUBLAS_OP_N, rows == 1 ? std::max<int64_t>(cols, 1) : rs, bs};
    if ((rs == 1 || rows == 1) && (cols == 1 || cs >= std::max<int64_t>(rows, 1)))
      return {t.data_ptr(), CUBLAS_OP_T, cols == 1 ? std::max<int64_t>(rows, 1) : cs, bs};
  }
  keep = t.detach().contiguous();
  return {keep.data_ptr(), CUBLAS_OP_N, std::max<int64_t>(cols, 1), rows * cols};
}

int to_int(int64_t v, const char* what) {
  if (v > INT_MAX)
    throw std::invalid_argument(std::string("matmul: ") + what + " " + std::to_string(v) +
                                " exceeds cuBLAS's 32-bit limit");
  return int(v);
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, Tensor& c, const Tensor& bias) {
  const int64_t nd = c.dim();
  const int64_t m = c.shape()[size_t(nd - 2)];
  const int64_t n = c.shape()[size_t(nd - 1)];
  const int64_t k = a.shape()[size_t(nd - 1)];
  const int64_t batch = m == 0 || n == 0 ? 0 : c.numel() / (m * n);
  if (batch == 0) return;
  const Device device = c.device();
  DeviceGuard guard(device);
  // A bias goes into every row of c first, and the product is added to it (beta = 1).
  if (bias.defined()) cuda::copy(bias.expand(c.shape()), c);
  cudaDataType_t type;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (c.dtype()) {
    case DType::Float32:
      type = CUDA_R_32F;
      break;
    case DType::BFloat16:
      type = CUDA_R_16BF;
      break;
    case DType::Float16:
      type = CUDA_R_16F;
      break;
    case DType::Float64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      break;
    default:
      throw std::invalid_argument("matmul: expected floating-point tensors, got " +
                                  std::string(dtype_name(c.dtype())));
  }
  Tensor keep_a, keep_b;
  const Operand oa = operand(a, keep_a);
  const Operand ob = operand(b, keep_b);
  const float alpha32 = 1.0f, beta32 = bias.defined() ? 1.0f : 0.0f;
  const double alpha64 = 1.0, beta64 = bias.defined() ? 1.0 : 0.0;
  const void* alpha = compute == CUBLAS_COMPUTE_64F ? static_cast<const void*>(&alpha64) : &alpha32;
  const void* beta = compute == CUBLAS_COMPUTE_64F ? static_cast<const void*>(&beta64) : &beta32;
  // c^T [n, m] = b^T [n, k] . a^T [k, m], all column-major.
  check_cublas(
      cublasGemmStridedBatchedEx(handle(device), ob.op, oa.op, to_int(n, "dim"), to_int(m, "dim"),
                                 to_int(k, "dim"), alpha, ob.data, type, to_int(ob.ld, "stride"),
                                 ob.batch_stride, oa.data, type, to_int(oa.ld, "stride"),
                                 oa.batch_stride, beta, c.data_ptr(), type, to_int(n, "dim"), m * n,
                                 to_int(batch, "batch count"), compute, CUBLAS_GEMM_DEFAULT),
      "cublasGemmStridedBatchedEx");
}

}  // namespace optimi::kernels::cuda
