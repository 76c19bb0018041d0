#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "gradcheck.hpp"

using namespace optimi;
using optimi::testing::gradcheck;
using optimi::testing::leaf;
using Inputs = std::vector<Tensor>;

TEST_CASE("broadcasting arithmetic values", "[elementwise]") {
  Tensor a = Tensor::from_vector({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {2, 3});
  Tensor b = Tensor::from_vector({10.0f, 20.0f, 30.0f}, {3});
  CHECK((a + b).to_vector<float>() == std::vector<float>{11, 22, 33, 14, 25, 36});
  Tensor col = Tensor::from_vector({2.0f, 4.0f}, {2, 1});
  CHECK((a / col).to_vector<float>() == std::vector<float>{0.5f, 1.0f, 1.5f, 1.0f, 1.25f, 1.5f});
  CHECK((a - 1.0).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK((10.0 - b).to_vector<float>() == std::vector<float>{0, -10, -20});
  CHECK((60.0 / b).to_vector<float>() == std::vector<float>{6, 3, 2});
  CHECK(maximum(b, Tensor::full({}, 15.0)).to_vector<float>() == std::vector<float>{15, 20, 30});
  // A strided (transposed) operand.
  Tensor t = a.transpose(0, 1);
  CHECK((t * 1.0).to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("large element-wise ops use the parallel path correctly", "[elementwise]") {
  Tensor a = Tensor::arange(300000, DType::Float32);
  Tensor s = (a * 2.0 + 1.0).sum();
  CHECK(s.item() == Approx(300000.0 * 299999.0 + 300000.0).epsilon(1e-6));
}

TEST_CASE("gradients of binary ops with broadcasting", "[elementwise][gradcheck]") {
  CHECK(gradcheck([](const Inputs& x) { return x[0] + x[1]; }, {leaf({2, 3}, 1), leaf({3}, 2)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0] - x[1]; }, {leaf({2, 1}, 1), leaf({1, 3}, 2)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0] * x[1]; },
                  {leaf({4, 2, 3}, 1), leaf({2, 1}, 2)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0] / (x[1].abs() + 1.0); },
                  {leaf({2, 3}, 1), leaf({3}, 2)}));
  CHECK(gradcheck([](const Inputs& x) { return maximum(x[0], x[1]); },
                  {leaf({2, 3}, 1), leaf({2, 3}, 2)}));
}

TEST_CASE("gradients of scalar and unary ops", "[elementwise][gradcheck]") {
  CHECK(gradcheck([](const Inputs& x) { return (x[0] + 2.0) * 3.0 - 1.0; }, {leaf({5}, 3)}));
  CHECK(gradcheck([](const Inputs& x) { return 2.0 - x[0] / 4.0; }, {leaf({5}, 3)}));
  CHECK(gradcheck([](const Inputs& x) { return 1.0 / (x[0].abs() + 0.5); }, {leaf({5}, 3)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].exp(); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return (x[0].abs() + 0.1).log(); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return (x[0].abs() + 0.1).sqrt(); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return (x[0].abs() + 0.1).rsqrt(); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].tanh(); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return -x[0]; }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].pow(3.0); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return (x[0].abs() + 0.5).pow(-1.5); }, {leaf({5}, 4)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].abs(); }, {leaf({5}, 5)}));
}

TEST_CASE("gradients of reductions", "[elementwise][reduce][gradcheck]") {
  CHECK(gradcheck([](const Inputs& x) { return x[0].sum(); }, {leaf({3, 4}, 6)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].sum(1); }, {leaf({3, 4}, 6)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].sum(0, true); }, {leaf({3, 4}, 6)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].mean(); }, {leaf({3, 4}, 6)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].mean(-1, true); }, {leaf({2, 3, 4}, 6)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].max(); }, {leaf({3, 4}, 7)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].max(1); }, {leaf({2, 3, 4}, 7)}));
  CHECK(gradcheck([](const Inputs& x) { return x[0].to(DType::Float32).to(DType::Float64) * 2.0; },
                  {leaf({3}, 8)}, 1e-3, 1e-4, 1e-2));
}

TEST_CASE("reduction values", "[elementwise][reduce]") {
  Tensor a = Tensor::from_vector({1.0f, 5.0f, 3.0f, 4.0f, 2.0f, 6.0f}, {2, 3});
  CHECK(a.sum().item() == 21.0);
  CHECK(a.sum(0).to_vector<float>() == std::vector<float>{5, 7, 9});
  CHECK(a.sum(1, true).shape() == Shape{2, 1});
  CHECK(a.mean(1).to_vector<float>() == std::vector<float>{3, 4});
  CHECK(a.max().item() == 6.0);
  CHECK(a.max(1).to_vector<float>() == std::vector<float>{5, 6});
  CHECK(a.max(0, true).to_vector<float>() == std::vector<float>{4, 5, 6});
  CHECK(Tensor::arange(5).sum().item() == 10.0);
  CHECK(Tensor::zeros({0}).sum().item() == 0.0);
  CHECK_THROWS_AS(Tensor::zeros({0}).max(), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::zeros({0}).mean(), std::invalid_argument);
  // Reductions walk the kept dims in chunks of 256 columns: widths with a one-column last chunk,
  // over a leading dim and a middle one, against a per-column loop in double. Long reduced dims
  // over few columns (bias gradients) are split into parts of rows: a short last part.
  for (const Shape& shape : {Shape{3, 257}, Shape{2, 3, 513}, Shape{517, 45}, Shape{2, 300, 70}}) {
    Tensor x = Tensor::randn(shape);
    const int64_t dim = int64_t(shape.size()) - 2, inner = shape.back();
    const int64_t outer = shape.size() == 3 ? shape[0] : 1, reduced = shape[size_t(dim)];
    std::vector<double> v = x.to_vector<double>(), sums = x.sum(dim).to_vector<double>(),
                        maxes = x.max(dim).to_vector<double>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < inner; ++j) {
        double sum = 0, max = -INFINITY;
        for (int64_t k = 0; k < reduced; ++k) {
          const double e = v[size_t((o * reduced + k) * inner + j)];
          sum += e;
          max = std::max(max, e);
        }
        CHECK(sums[size_t(o * inner + j)] == Approx(sum).margin(1e-5));
        CHECK(maxes[size_t(o * inner + j)] == max);
      }
    }
  }
  // NaN wins max from any part of the rows.
  std::vector<float> nan_in_last_part(517 * 3, 1.0f);
  nan_in_last_part[size_t(510 * 3 + 1)] = NAN;
  const std::vector<float> column_max =
      Tensor::from_vector(nan_in_last_part, {517, 3}).max(0).to_vector<float>();
  CHECK(column_max[0] == 1.0f);
  CHECK(std::isnan(column_max[1]));
  // Ties share the gradient of max.
  Tensor t = Tensor::from_vector({2.0f, 2.0f, 1.0f}, {3}).requires_grad_();
  t.max().backward();
  CHECK(t.grad().to_vector<float>() == std::vector<float>{0.5f, 0.5f, 0.0f});
}

TEST_CASE("float32 and bfloat16 forward agree with float64", "[elementwise][dtype]") {
  manual_seed(11);
  Tensor x64 = Tensor::randn({64, 33}, DType::Float64);
  Tensor y64 = Tensor::randn({33}, DType::Float64);
  auto f = [](const Tensor& x, const Tensor& y) {
    return ((x * y).exp() / (y.abs() + 1.0) - x.tanh()).sum(1);
  };
  std::vector<double> ref = f(x64, y64).to_vector<double>();
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    double tol = dt == DType::Float32 ? 1e-5 : 2e-2;
    std::vector<double> got = f(x64.to(dt), y64.to(dt)).to_vector<double>();
    for (size_t i = 0; i < ref.size(); ++i)
      CHECK(got[i] == Approx(ref[i]).epsilon(tol).margin(tol * 10));
  }
}

TEST_CASE("element-wise errors name the op and the shapes", "[elementwise][errors]") {
  CHECK_THROWS_WITH(Tensor::ones({2, 3}) * Tensor::ones({2}),
                    Catch::Contains("mul") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(Tensor() + Tensor::ones({1}),
                    Catch::Contains("add") && Catch::Contains("undefined"));
  CHECK_THROWS_AS(Tensor::ones({2}).pow(NAN), std::invalid_argument);
  CHECK_THROWS_WITH(Tensor::ones({2}).max(-3), Catch::Contains("max") && Catch::Contains("-3"));
}

TEST_CASE("element-wise ops over long contiguous tensors reach every element", "[elementwise]") {
  // One long row is split into one share per thread: sizes below, at and past the threshold,
  // with shares that end mid-vector.
  for (int64_t n : {int64_t(4095), int64_t(4096), int64_t(10241), int64_t(40961)}) {
    INFO("n = " << n);
    Tensor a = Tensor::arange(n).to(DType::Float32);
    std::vector<float> got = (a * 2.0f + 1.0f).to_vector<float>();
    bool all = true;
    for (int64_t i = 0; i < n; ++i) all = all && got[size_t(i)] == float(2 * i + 1);
    CHECK(all);
  }
}
