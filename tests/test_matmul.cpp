#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <optimi/optimi.hpp>
#include <stdexcept>
#include <vector>

#include "gradcheck.hpp"
#include "kernels/gemm.hpp"

using namespace optimi;
using Catch::Matchers::Contains;
using optimi::testing::gradcheck;
using optimi::testing::leaf;

namespace {

// Textbook product of two 2-D tensors, in double.
std::vector<double> naive(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.contiguous().to_vector<double>();
  std::vector<double> y = b.contiguous().to_vector<double>();
  int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  std::vector<double> c(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        c[size_t(i * n + j)] += x[size_t(i * k + p)] * y[size_t(p * n + j)];
  return c;
}

// True when |got - want| <= atol + rtol * |want| everywhere; reports the first miss.
bool close(const std::vector<double>& got, const std::vector<double>& want, double rtol,
           double atol) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::abs(got[i] - want[i]) > atol + rtol * std::abs(want[i])) {
      UNSCOPED_INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
      return false;
    }
  }
  return true;
}

// Each product of a batched result against the naive one of its operands' matrices.
void check_batched(const Tensor& a, const Tensor& b, double rtol, double atol) {
  Tensor c = matmul(a, b);
  for (int64_t i = 0; i < c.shape()[0]; ++i) {
    Tensor ai = a.dim() == 3 ? a.select(0, i) : a;
    Tensor bi = b.dim() == 3 ? b.select(0, i) : b;
    CHECK(close(c.select(0, i).to_vector<double>(), naive(ai, bi), rtol, atol));
  }
}

}  // namespace

TEST_CASE("matmul follows PyTorch's shape rules", "[matmul]") {
  auto shape = [](const Shape& a, const Shape& b) {
    return matmul(Tensor::ones(a), Tensor::ones(b)).shape();
  };
  CHECK(shape({3}, {3}) == Shape{});
  CHECK(shape({2, 3}, {3}) == Shape{2});
  CHECK(shape({3}, {3, 4}) == Shape{4});
  CHECK(shape({2, 3}, {3, 4}) == Shape{2, 4});
  CHECK(shape({5, 2, 3}, {3, 4}) == Shape{5, 2, 4});
  CHECK(shape({2, 3}, {5, 3, 4}) == Shape{5, 2, 4});
  CHECK(shape({3}, {5, 3, 4}) == Shape{5, 4});
  CHECK(shape({5, 2, 3}, {3}) == Shape{5, 2});
  CHECK(shape({2, 1, 2, 3}, {5, 3, 4}) == Shape{2, 5, 2, 4});
  CHECK(shape({0, 3}, {3, 4}) == Shape{0, 4});
  CHECK(matmul(Tensor::ones({3}), Tensor::ones({3})).item() == 3.0);
  std::vector<float> empty_inner =
      matmul(Tensor::ones({2, 0}), Tensor::ones({0, 3})).to_vector<float>();
  CHECK(empty_inner == std::vector<float>(6, 0.0f));
}

TEST_CASE("matmul values match the textbook product", "[matmul]") {
  manual_seed(1);
  Tensor a = Tensor::randn({5, 7}, DType::Float64);
  Tensor b = Tensor::randn({7, 3}, DType::Float64);
  CHECK(close(matmul(a, b).to_vector<double>(), naive(a, b), 1e-12, 1e-12));
  // Transposed operands are read in place; strided ones (every other column) are copied first.
  Tensor at = Tensor::randn({7, 5}, DType::Float64).transpose(0, 1);
  Tensor bt = Tensor::randn({3, 7}, DType::Float64).transpose(0, 1);
  CHECK(close(matmul(at, bt).to_vector<double>(), naive(at, bt), 1e-12, 1e-12));
  Tensor strided = Tensor::randn({5, 14}, DType::Float64).slice(1, 0, 14, 2);
  CHECK(close(matmul(strided, b).to_vector<double>(), naive(strided, b), 1e-12, 1e-12));
  Tensor v = Tensor::randn({7}, DType::Float64);
  CHECK(close(matmul(a, v).to_vector<double>(), naive(a, v.unsqueeze(1)), 1e-12, 1e-12));
  CHECK(close(matmul(v, b).to_vector<double>(), naive(v.unsqueeze(0), b), 1e-12, 1e-12));
}

TEST_CASE("batched matmul broadcasts and threads", "[matmul]") {
  manual_seed(2);
  // Broadcast batch (stride 0), a shared right matrix (folded into one GEMM), transposed batches.
  check_batched(Tensor::randn({4, 3, 5}, DType::Float64),
                Tensor::randn({1, 5, 2}, DType::Float64).expand({4, 5, 2}), 1e-12, 1e-12);
  check_batched(Tensor::randn({4, 3, 5}, DType::Float64), Tensor::randn({5, 2}, DType::Float64),
                1e-12, 1e-12);
  check_batched(Tensor::randn({3, 5}, DType::Float64), Tensor::randn({4, 5, 2}, DType::Float64),
                1e-12, 1e-12);
  check_batched(Tensor::randn({4, 5, 3}, DType::Float64).transpose(1, 2),
                Tensor::randn({2, 4, 5}, DType::Float64).permute({1, 2, 0}), 1e-12, 1e-12);
  // Sizes where the work is shared out over the batch, and one GEMM Eigen threads itself.
  check_batched(Tensor::randn({8, 64, 96}), Tensor::randn({8, 96, 80}), 1e-4, 1e-4);
  Tensor big_a = Tensor::randn({300, 200});
  Tensor big_b = Tensor::randn({200, 500});
  CHECK(close(matmul(big_a, big_b).to_vector<double>(), naive(big_a, big_b), 1e-4, 1e-4));
}

TEST_CASE("16-bit and float32 products stay close to float64", "[matmul]") {
  manual_seed(3);
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16}) {
    INFO(dtype_name(dtype));
    auto randn = [dtype](const Shape& shape) { return Tensor::randn(shape, dtype); };
    // Partial tiles, batches, transposed operands with an odd depth spanning several threaded
    // tasks, a dot product and matrix-vector products.
    std::vector<std::pair<Tensor, Tensor>> cases = {
        {randn({130, 70}), randn({70, 90})},
        {randn({6, 33, 40}), randn({6, 40, 17})},
        {randn({71, 300}).transpose(0, 1), randn({530, 71}).transpose(0, 1)},
        {randn({33}), randn({33})},
        {randn({45, 70}), randn({70})},
        {randn({70, 45}).transpose(0, 1), randn({70, 1})},
        // Row-major left operands are read in place: an odd depth, and rows further apart than
        // the depth (an odd distance: bfloat16 pairs would straddle rows, so those get packed).
        {randn({37, 39}), randn({39, 50})},
        {randn({37, 41}).slice(1, 0, 40), randn({40, 50})},
        // Float32 right operands with unit column stride are read in place when the left one
        // has few rows (here with rows further apart than its width), else packed.
        {randn({20, 45}), randn({45, 60}).slice(1, 3, 53)},
        {randn({200, 30}), randn({30, 40})},
        // Rows a multiple of 4 KiB apart are packed (transposed 16 steps at a time) rather than
        // read in place: partial row groups and a partial last block of steps.
        {randn({20, 2048}).slice(1, 0, 1998), randn({1998, 19})},
        // Column-major right operands are packed the same way, 16 columns at a time: a partial
        // last panel (50 = 32 + 18 columns) and one with no right half (12 columns).
        {randn({33, 64}), randn({50, 64}).transpose(0, 1)},
        {randn({20, 40}), randn({12, 40}).transpose(0, 1)},
        // A column-major left operand against few columns (weight gradients g^T x) is computed
        // as the transposed product and transposed back: one thread, and threaded.
        {randn({300, 90}).transpose(0, 1), randn({300, 20})},
        {randn({512, 256}).transpose(0, 1), randn({512, 20})}};
    for (const auto& [a, b] : cases) {
      INFO(shape_str(a.shape()) << " @ " << shape_str(b.shape()));
      Tensor c = matmul(a, b);
      CHECK(c.dtype() == dtype);
      // Inputs are exact in float64, so only accumulation and the final rounding differ.
      Tensor want = matmul(a.to(DType::Float64), b.to(DType::Float64));
      double rtol = dtype == DType::Float32 ? 1e-5 : dtype == DType::Float16 ? 2e-3 : 1e-2;
      CHECK(close(c.to_vector<double>(), want.to_vector<double>(), rtol, 10 * rtol));
    }
  }
}

TEST_CASE("matmul rejects bad operands naming both shapes", "[matmul]") {
  Tensor a = Tensor::ones({2, 3});
  REQUIRE_THROWS_AS(matmul(a, Tensor::ones({4, 5})), std::invalid_argument);
  REQUIRE_THROWS_WITH(matmul(a, Tensor::ones({4, 5})),
                      Contains("matmul") && Contains("[2, 3]") && Contains("[4, 5]"));
  REQUIRE_THROWS_WITH(matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 1})),
                      Contains("[2, 2, 3]") && Contains("[3, 3, 1]") && Contains("broadcast"));
  REQUIRE_THROWS_WITH(matmul(a, Tensor::ones({3}, DType::Float64)),
                      Contains("float32") && Contains("float64"));
  REQUIRE_THROWS_AS(matmul(Tensor::ones({}), a), std::invalid_argument);
  REQUIRE_THROWS_AS(
      matmul(Tensor::zeros({2, 2}, DType::Int64), Tensor::zeros({2, 2}, DType::Int64)),
      std::invalid_argument);
}

TEST_CASE("matmul gradients match finite differences", "[matmul]") {
  manual_seed(4);
  using In = std::vector<Tensor>;
  auto f = [](const In& x) { return matmul(x[0], x[1]); };
  CHECK(gradcheck(f, {leaf({3, 4}, 1), leaf({4, 2}, 2)}));
  CHECK(gradcheck(f, {leaf({4}, 3), leaf({4}, 4)}));
  CHECK(gradcheck(f, {leaf({4}, 5), leaf({4, 2}, 6)}));
  CHECK(gradcheck(f, {leaf({3, 4}, 7), leaf({4}, 8)}));
  CHECK(gradcheck(f, {leaf({2, 3, 4}, 9), leaf({4, 2}, 10)}));
  CHECK(gradcheck(f, {leaf({3, 4}, 11), leaf({2, 4, 2}, 12)}));
  CHECK(gradcheck(f, {leaf({2, 1, 3, 4}, 13), leaf({3, 4, 2}, 14)}));
  CHECK(gradcheck(f, {leaf({4}, 15), leaf({2, 4, 3}, 16)}));
  CHECK(gradcheck(f, {leaf({2, 3, 4}, 17), leaf({4}, 18)}));
  CHECK(gradcheck([](const In& x) { return matmul(x[0].transpose(0, 1), x[1]); },
                  {leaf({4, 3}, 19), leaf({4, 2}, 20)}));
}

TEST_CASE("matmul computes only the gradients that are needed", "[matmul]") {
  Tensor w = Tensor::ones({3, 2}).requires_grad_();
  Tensor x = Tensor::ones({4, 3});
  matmul(x, w).sum().backward();
  CHECK(!x.grad().defined());
  CHECK(w.grad().to_vector<float>() == std::vector<float>(6, 4.0f));
}

TEST_CASE("bfloat16 matmul gradients stay close to float64", "[matmul]") {
  manual_seed(5);
  Tensor a = Tensor::randn({2, 8, 16}, DType::BFloat16).requires_grad_();
  Tensor b = Tensor::randn({16, 4}, DType::BFloat16).requires_grad_();
  Tensor a64 = a.detach().to(DType::Float64).requires_grad_();
  Tensor b64 = b.detach().to(DType::Float64).requires_grad_();
  matmul(a, b).sum().backward();
  matmul(a64, b64).sum().backward();
  CHECK(a.grad().dtype() == DType::BFloat16);
  CHECK(close(a.grad().to_vector<double>(), a64.grad().to_vector<double>(), 1e-2, 5e-2));
  CHECK(close(b.grad().to_vector<double>(), b64.grad().to_vector<double>(), 1e-2, 5e-2));
}

TEST_CASE("gemm_concurrent gives what gemm gives one product at a time", "[matmul]") {
  manual_seed(7);
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16, DType::Float64}) {
    INFO(dtype_name(dtype));
    auto randn = [dtype](const Shape& shape) { return Tensor::randn(shape, dtype); };
    auto empty = [dtype](const Shape& shape) { return Tensor::empty(shape, dtype); };
    // Eigen (float64, float16) blocks a product's depth by the product's size, and a product
    // shared out on the team is cut into row blocks, so one on a thread of its own may round
    // differently: up to a unit in the last place.
    const double rtol = dtype == DType::Float64   ? 1e-13
                        : dtype == DType::Float32 ? 1e-6
                        : dtype == DType::Float16 ? 1e-3
                                                  : 8e-3;
    // A linear layer's input and weight gradients (run side by side), then a batch, a bias, and
    // an empty depth (the bias alone) among more products than threads.
    const Tensor g = randn({512, 60}), w = randn({60, 20}), x = randn({512, 20});
    const std::vector<kernels::GemmProduct> products = {
        {g, w, empty({512, 20}), Tensor()},
        {g.transpose(0, 1), x, empty({60, 20}), Tensor()},
        {randn({4, 30, 20}), randn({4, 20, 50}), empty({4, 30, 50}), Tensor()},
        {randn({64, 40}), randn({40, 24}).transpose(0, 1).contiguous().transpose(0, 1),
         empty({64, 24}), randn({24})},
        {randn({8, 0}), randn({0, 5}), empty({8, 5}), randn({5})}};
    for (size_t count : {size_t(2), products.size()}) {
      const std::vector<kernels::GemmProduct> some(products.begin(), products.begin() + count);
      kernels::gemm_concurrent(some);
      for (const kernels::GemmProduct& p : some) {
        INFO(shape_str(p.a.shape()) << " @ " << shape_str(p.b.shape()));
        Tensor want = empty(p.c.shape());
        kernels::gemm(p.a, p.b, want, p.bias);
        CHECK(close(p.c.to_vector<double>(), want.to_vector<double>(), rtol, rtol));
      }
    }
  }
}

TEST_CASE("each thread of the caller's own parallel region runs a product of its own", "[matmul]") {
  // A product must run whole on whichever thread calls it, wherever the kernels' own team is.
  manual_seed(8);
  constexpr int kThreads = 2;
  std::vector<Tensor> a, b, c;
  for (int t = 0; t < kThreads; ++t) {
    a.push_back(Tensor::randn({40 + 10 * t, 30}));
    b.push_back(Tensor::randn({30, 20}));
    c.push_back(Tensor::empty({40 + 10 * t, 20}));
  }
#pragma omp parallel num_threads(kThreads)
  {
    const int t = omp_get_thread_num();
    kernels::gemm(a[size_t(t)], b[size_t(t)], c[size_t(t)]);
  }
  for (int t = 0; t < kThreads; ++t) {
    CHECK(close(c[size_t(t)].to_vector<double>(), naive(a[size_t(t)], b[size_t(t)]), 1e-5, 1e-5));
  }
}
