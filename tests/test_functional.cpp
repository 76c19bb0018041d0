#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "optimi/nn/functional.hpp"
#include "optimi/optimi.hpp"

using namespace optimi;
namespace F = optimi::nn::functional;
using optimi::testing::gradcheck;
using optimi::testing::leaf;
using Inputs = std::vector<Tensor>;

namespace {

Tensor f64(const std::vector<double>& values, Shape shape) {
  return Tensor::from_vector(values, std::move(shape), DType::Float64);
}

void require_values(const Tensor& t, const std::vector<double>& expected, double tol = 1e-6) {
  std::vector<double> got = t.to_vector<double>();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(expected[i]).margin(tol));
  }
}

// Element-wise |a - b| <= atol + rtol * |b| after converting both to double.
void require_close(const Tensor& a, const Tensor& b, double atol, double rtol) {
  REQUIRE(a.shape() == b.shape());
  std::vector<double> x = a.to_vector<double>();
  std::vector<double> y = b.to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i << ": " << x[i] << " vs " << y[i]);
    REQUIRE(std::abs(x[i] - y[i]) <= atol + rtol * std::abs(y[i]));
  }
}

// Runs f, which must throw std::invalid_argument whose message contains every part.
template <class Fn>
void require_invalid(Fn&& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const std::string& p : parts) REQUIRE_THAT(what, Catch::Contains(p));
    return;
  } catch (const std::exception& e) {
    FAIL("wrong exception type: " << e.what());
  }
  FAIL("no exception thrown");
}

// softmax(q k^T * scale + mask) v from separate differentiable ops.
Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                           double scale) {
  const int64_t nd = q.dim();
  Tensor scores = matmul(q, k.transpose(nd - 2, nd - 1)) * scale;
  if (causal) {
    const int64_t sq = q.shape()[nd - 2];
    const int64_t sk = k.shape()[nd - 2];
    std::vector<double> mask(sq * sk);
    for (int64_t i = 0; i < sq; ++i) {
      for (int64_t j = 0; j < sk; ++j)
        mask[i * sk + j] = j > i ? -std::numeric_limits<double>::infinity() : 0.0;
    }
    scores = scores + f64(mask, {sq, sk}).to(q.dtype());
  }
  return matmul(F::softmax(scores, -1), v);
}

}  // namespace

TEST_CASE("softmax and log_softmax values", "[functional]") {
  Tensor x = f64({1, 2, 3, 0, 0, 0}, {2, 3});
  require_values(F::softmax(x, -1),
                 {0.0900305732, 0.2447284711, 0.6652409558, 1. / 3, 1. / 3, 1. / 3});
  require_values(F::log_softmax(x, 1), {-2.4076059644, -1.4076059644, -0.4076059644, -std::log(3.0),
                                        -std::log(3.0), -std::log(3.0)});
  // Along dim 0 of a 2x3: each column normalised on its own.
  Tensor col = F::softmax(x, 0);
  const double e = std::exp(1.0);
  require_values(
      col, {e / (e + 1), std::exp(2.0) / (std::exp(2.0) + 1), std::exp(3.0) / (std::exp(3.0) + 1),
            1 / (e + 1), 1 / (std::exp(2.0) + 1), 1 / (std::exp(3.0) + 1)});
  // Large logits do not overflow.
  require_values(F::softmax(f64({1000, 1000}, {2}), 0), {0.5, 0.5});
}

TEST_CASE("softmax on a non-last dim matches the last-dim path", "[functional]") {
  Tensor x = leaf({2, 5, 3}, 1).detach();
  Tensor along1 = F::softmax(x, 1);
  Tensor via_last = F::softmax(x.transpose(1, 2), -1).transpose(1, 2);
  require_close(along1, via_last.contiguous(), 1e-12, 0);
  Tensor log1 = F::log_softmax(x, 1);
  require_close(log1, F::log_softmax(x.transpose(1, 2), 2).transpose(1, 2).contiguous(), 1e-12, 0);
}

TEST_CASE("softmax gradients", "[functional]") {
  for (int64_t dim : {-1, 0, 1}) {
    INFO("dim " << dim);
    REQUIRE(gradcheck([dim](const Inputs& in) { return F::softmax(in[0], dim); },
                      {leaf({3, 4, 2}, 2)}));
    REQUIRE(gradcheck([dim](const Inputs& in) { return F::log_softmax(in[0], dim); },
                      {leaf({3, 4, 2}, 3)}));
  }
}

TEST_CASE("layer_norm values", "[functional]") {
  Tensor x = f64({1, 2, 3, 4, 2, 2, 2, 2}, {2, 4});
  const double rs = 1 / std::sqrt(1.25 + 1e-5);
  require_values(F::layer_norm(x, {4}), {-1.5 * rs, -0.5 * rs, 0.5 * rs, 1.5 * rs, 0, 0, 0, 0});
  Tensor w = f64({1, 2, 3, 4}, {4});
  Tensor b = f64({0, 1, 0, -1}, {4});
  require_values(F::layer_norm(x, {4}, w, b),
                 {-1.5 * rs, -1.0 * rs + 1, 1.5 * rs, 6 * rs - 1, 0, 1, 0, -1});
  // Over two trailing dims: one row of 8.
  Tensor two = F::layer_norm(x.reshape({1, 2, 4}), {2, 4});
  std::vector<double> v = two.to_vector<double>();
  double mean = 0, sq = 0;
  for (double a : v) mean += a / 8;
  for (double a : v) sq += (a - mean) * (a - mean) / 8;
  REQUIRE(mean == Approx(0).margin(1e-12));
  REQUIRE(sq == Approx(1).epsilon(1e-4));
}

TEST_CASE("layer_norm gradients", "[functional]") {
  SECTION("affine") {
    REQUIRE(gradcheck([](const Inputs& in) { return F::layer_norm(in[0], {5}, in[1], in[2]); },
                      {leaf({3, 5}, 4), leaf({5}, 5), leaf({5}, 6)}));
  }
  SECTION("weight only, over two dims") {
    REQUIRE(gradcheck(
        [](const Inputs& in) {
          return F::layer_norm(in[0], {2, 3}, in[1]);
        },
        {leaf({2, 2, 3}, 7), leaf({2, 3}, 8)}));
  }
  SECTION("no affine") {
    REQUIRE(
        gradcheck([](const Inputs& in) { return F::layer_norm(in[0], {6}); }, {leaf({4, 6}, 9)}));
  }
}

TEST_CASE("layer_norm with a float32 weight on bfloat16 input", "[functional]") {
  manual_seed(10);
  Tensor x = Tensor::randn({4, 8}, DType::BFloat16).requires_grad_();
  Tensor w = Tensor::randn({8}).requires_grad_();
  Tensor b = Tensor::randn({8}).requires_grad_();
  Tensor y = F::layer_norm(x, {8}, w, b);
  REQUIRE(y.dtype() == DType::BFloat16);
  y.to(DType::Float32).sum().backward();
  REQUIRE(x.grad().dtype() == DType::BFloat16);
  REQUIRE(w.grad().dtype() == DType::Float32);
  Tensor y64 = F::layer_norm(x.detach().to(DType::Float64), {8}, w.detach().to(DType::Float64),
                             b.detach().to(DType::Float64));
  require_close(y, y64, 2e-2, 1e-2);
  require_values(b.grad(), std::vector<double>(8, 4.0));
}

TEST_CASE("embedding gathers and scatter-adds", "[functional]") {
  Tensor w = f64({0, 1, 10, 11, 20, 21}, {3, 2}).requires_grad_();
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{2, 0, 2, 1}, {2, 2});
  Tensor out = F::embedding(idx, w);
  REQUIRE(out.shape() == Shape{2, 2, 2});
  require_values(out, {20, 21, 0, 1, 20, 21, 10, 11});
  (out * f64({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2})).sum().backward();
  require_values(w.grad(), {3, 4, 7, 8, 1 + 5, 2 + 6});
  REQUIRE(
      gradcheck([idx](const Inputs& in) { return F::embedding(idx, in[0]); }, {leaf({3, 4}, 11)}));
}

TEST_CASE("activation values", "[functional]") {
  Tensor x = f64({-1, 0, 1, 2}, {4});
  require_values(F::relu(x), {0, 0, 1, 2});
  require_values(F::sigmoid(x), {0.2689414214, 0.5, 0.7310585786, 0.8807970780});
  require_values(F::silu(x), {-0.2689414214, 0, 0.7310585786, 1.7615941560});
  require_values(F::gelu(x), {-0.1586552539, 0, 0.8413447461, 1.9544997361});
  require_values(F::gelu(x, F::GeluApproximation::Tanh),
                 {-0.1588080094, 0, 0.8411919906, 1.9545976940});
  require_values(F::mish(x), {-0.3034014613, 0, 0.8650983883, 1.9439589595});
}

TEST_CASE("activation gradients", "[functional]") {
  // Away from relu's kink at 0.
  Tensor x = f64({-1.5, -0.7, -0.2, 0.3, 0.9, 2.1}, {2, 3}).requires_grad_();
  REQUIRE(gradcheck([](const Inputs& in) { return F::relu(in[0]); }, {x}));
  REQUIRE(gradcheck([](const Inputs& in) { return F::sigmoid(in[0]); }, {x}));
  REQUIRE(gradcheck([](const Inputs& in) { return F::silu(in[0]); }, {x}));
  REQUIRE(gradcheck([](const Inputs& in) { return F::mish(in[0]); }, {x}));
  REQUIRE(gradcheck([](const Inputs& in) { return F::gelu(in[0]); }, {x}));
  REQUIRE(
      gradcheck([](const Inputs& in) { return F::gelu(in[0], F::GeluApproximation::Tanh); }, {x}));
}

TEST_CASE("float32 tanh-GELU and its gradient follow float64 across the whole range",
          "[functional]") {
  // Float32 runs the fast exp in the sigmoid form; far out its exp saturates, where the value
  // must still reach 0 (left) or x (right) and the gradient 0 or 1 without NaN. 17 points: a
  // full vector of 16 and a masked one, where the kernels compute on AVX-512 lanes.
  const std::vector<double> points = {-1e13, -1e4, -60, -9.5, -4,  -1.3, -0.2, -1e-6, 0,
                                      1e-6,  0.2,  1.3, 4,    9.5, 60,   1e4,  1e13};
  auto at = [&](DType dtype) {
    Tensor x = Tensor::from_vector(points, {int64_t(points.size())}).to(dtype).requires_grad_();
    Tensor y = F::gelu(x, F::GeluApproximation::Tanh);
    // A dense upstream gradient (sum's alone is one value broadcast), as the lanes need.
    (y * Tensor::ones({int64_t(points.size())}, dtype)).sum().backward();
    return std::pair{y.to_vector<double>(), x.grad().to_vector<double>()};
  };
  const auto [y32, g32] = at(DType::Float32);
  const auto [y64, g64] = at(DType::Float64);
  for (size_t i = 0; i < points.size(); ++i) {
    INFO("x = " << points[i]);
    CHECK(y32[i] == Approx(y64[i]).epsilon(2e-6).margin(1e-30));
    CHECK(g32[i] == Approx(g64[i]).epsilon(2e-6).margin(1e-6));
  }
}

TEST_CASE("cross_entropy values and gradients", "[functional]") {
  Tensor logits = f64({1, 2, 3, 1, 1, 1}, {2, 3}).requires_grad_();
  Tensor targets = Tensor::from_vector(std::vector<int64_t>{2, 0}, {2});
  Tensor loss = F::cross_entropy(logits, targets);
  REQUIRE(loss.numel() == 1);
  REQUIRE(loss.item() == Approx((0.4076059644 + std::log(3.0)) / 2).epsilon(1e-9));
  loss.backward();
  require_values(logits.grad(), {0.0900305732 / 2, 0.2447284711 / 2, (0.6652409558 - 1) / 2,
                                 (1. / 3 - 1) / 2, 1. / 6, 1. / 6});
  REQUIRE(gradcheck([targets](const Inputs& in) { return F::cross_entropy(in[0], targets); },
                    {leaf({2, 3}, 12)}));
  Tensor t3 = Tensor::from_vector(std::vector<int64_t>{4, 0, 1, 3, 2, 2}, {2, 3});
  REQUIRE(gradcheck([t3](const Inputs& in) { return F::cross_entropy(in[0], t3); },
                    {leaf({2, 3, 5}, 13)}));
}

TEST_CASE("mse_loss values and gradients", "[functional]") {
  Tensor a = f64({1, 2, 3}, {3});
  Tensor b = f64({1, 0, 0}, {3});
  REQUIRE(F::mse_loss(a, b).item() == Approx(13.0 / 3));
  REQUIRE(gradcheck([](const Inputs& in) { return F::mse_loss(in[0], in[1]); },
                    {leaf({2, 3}, 14), leaf({2, 3}, 15)}));
  // Mixed dtypes meet in the promoted dtype; gradients come back in each input's own.
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2}, {2}).requires_grad_();
  Tensor y = f64({0, 0}, {2});
  Tensor loss = F::mse_loss(x, y);
  REQUIRE(loss.dtype() == DType::Float64);
  loss.backward();
  REQUIRE(x.grad().dtype() == DType::Float32);
  require_values(x.grad(), {1, 2});
}

TEST_CASE("dropout", "[functional]") {
  Tensor x = Tensor::ones({100, 100});
  SECTION("identity when not training or p == 0") {
    REQUIRE(F::dropout(x, 0.5, false).is_same(x));
    REQUIRE(F::dropout(x, 0.0, true).is_same(x));
  }
  SECTION("inverted scaling, seeded mask") {
    manual_seed(16);
    Tensor a = F::dropout(x, 0.25, true);
    manual_seed(16);
    Tensor b = F::dropout(x, 0.25, true);
    std::vector<float> va = a.to_vector<float>();
    REQUIRE(va == b.to_vector<float>());
    int64_t kept = 0;
    for (float v : va) {
      REQUIRE((v == 0.0f || v == Approx(1 / 0.75)));
      kept += v != 0.0f;
    }
    REQUIRE(double(kept) / double(va.size()) == Approx(0.75).margin(0.02));
  }
  SECTION("gradient goes through the same mask") {
    Tensor w = leaf({6, 5}, 17);
    REQUIRE(gradcheck(
        [](const Inputs& in) {
          manual_seed(18);
          return F::dropout(in[0], 0.4, true);
        },
        {w}));
    w.set_grad(Tensor());
    manual_seed(19);
    Tensor y = F::dropout(w, 0.4, true);
    y.sum().backward();
    std::vector<double> out = y.to_vector<double>(), in = w.to_vector<double>(),
                        g = w.grad().to_vector<double>();
    for (size_t i = 0; i < out.size(); ++i) REQUIRE(g[i] * in[i] == Approx(out[i]));
  }
}

TEST_CASE("linear", "[functional]") {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = f64({1, 0, -1, 2, 1, 0}, {2, 3});
  Tensor b = f64({10, 20}, {2});
  require_values(F::linear(x, w, b), {8, 24, 8, 33});
  require_values(F::linear(x, w), {-2, 4, -2, 13});
  REQUIRE(gradcheck([](const Inputs& in) { return F::linear(in[0], in[1], in[2]); },
                    {leaf({2, 2, 3}, 20), leaf({4, 3}, 21), leaf({4}, 22)}));
}

TEST_CASE("linear adds its bias inside the product, in every dtype", "[functional]") {
  // Output widths below, between and beyond the kernels' 16- and 32-column tiles, and a 3-D input
  // whose leading dims fold into one product; compared with matmul + bias from float64 operands.
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16, DType::Float64}) {
    for (int64_t out : {1, 7, 20, 45, 70}) {
      INFO(dtype_name(dtype) << " out " << out);
      Tensor x = leaf({3, 11, 9}, 45).detach().to(dtype);
      Tensor w = leaf({out, 9}, 46).detach().to(dtype);
      Tensor b = leaf({out}, 47).detach().to(dtype);
      Tensor want =
          matmul(x.to(DType::Float64), w.to(DType::Float64).transpose(0, 1)) + b.to(DType::Float64);
      const double tol = dtype == DType::Float64 ? 1e-12 : dtype == DType::Float32 ? 1e-5 : 2e-2;
      Tensor y = F::linear(x, w, b);
      REQUIRE(y.dtype() == dtype);
      require_close(y, want, tol, tol);
      require_close(F::linear(x, w), want - b.to(DType::Float64), tol, tol);
    }
  }
  // No input features: the output is the bias.
  require_values(F::linear(Tensor::ones({2, 0}), Tensor::ones({3, 0}),
                           Tensor::from_vector({1.f, 2.f, 3.f}, {3})),
                 {1, 2, 3, 1, 2, 3});
  // No rows.
  REQUIRE(F::linear(Tensor::ones({0, 4}), Tensor::ones({3, 4}), Tensor::ones({3})).shape() ==
          Shape{0, 3});
}

TEST_CASE("linear gradients match matmul + bias in float32", "[functional]") {
  Inputs fused{leaf({4, 6, 9}, 48), leaf({20, 9}, 49), leaf({20}, 50)};
  Inputs composite;
  for (Tensor& t : fused) {
    t = t.detach().to(DType::Float32).requires_grad_();
    composite.push_back(t.detach().clone().requires_grad_());
  }
  Tensor weights = leaf({4, 6, 20}, 51).detach().to(DType::Float32);
  (F::linear(fused[0], fused[1], fused[2]) * weights).sum().backward();
  ((matmul(composite[0], composite[1].transpose(0, 1)) + composite[2]) * weights).sum().backward();
  for (size_t i = 0; i < 3; ++i) require_close(fused[i].grad(), composite[i].grad(), 1e-5, 1e-5);
  // The weight's gradient comes out in the weight's layout: no transposed view to copy.
  REQUIRE(fused[1].grad().is_contiguous());
}

TEST_CASE("attention values", "[functional]") {
  // Equal scores: causal row i averages v[0..i].
  Tensor q = Tensor::zeros({1, 3, 2}, DType::Float64);
  Tensor v = f64({1, 2, 3, 4, 5, 6}, {1, 3, 2});
  require_values(F::scaled_dot_product_attention(q, q, v), {1, 2, 2, 3, 3, 4});
  require_values(F::scaled_dot_product_attention(q, q, v, false), {3, 4, 3, 4, 3, 4});
  // An empty head dim scores every key 0 too (with a scale given: 1/sqrt(0) is not finite).
  for (DType dtype : {DType::Float64, DType::Float32}) {
    Tensor empty = Tensor::zeros({1, 3, 0}, dtype);
    require_values(F::scaled_dot_product_attention(empty, empty, v.to(dtype), true, 1.0),
                   {1, 2, 2, 3, 3, 4});
  }
  for (bool causal : {true, false}) {
    INFO("causal " << causal);
    Tensor qr = leaf({2, 3, 5, 4}, 23).detach();
    Tensor kr = leaf({2, 3, 5, 4}, 24).detach();
    Tensor vr = leaf({2, 3, 5, 3}, 25).detach();
    require_close(F::scaled_dot_product_attention(qr, kr, vr, causal),
                  reference_attention(qr, kr, vr, causal, 0.5), 1e-12, 1e-12);
    // Any finite scale, negative and zero included (-60: raw float32 exponents past 88); float32
    // too (its own exp).
    for (double scale : {0.3, -0.7, 0.0, -60.0}) {
      INFO("scale " << scale);
      const Tensor want = reference_attention(qr, kr, vr, causal, scale);
      require_close(F::scaled_dot_product_attention(qr, kr, vr, causal, scale), want, 1e-12, 1e-12);
      const Tensor f32 = F::scaled_dot_product_attention(
          qr.to(DType::Float32), kr.to(DType::Float32), vr.to(DType::Float32), causal, scale);
      require_close(f32, want, 1e-5, 1e-5);
    }
  }
}

TEST_CASE("attention reads strided views of a fused projection", "[functional]") {
  // [B, T, 3, H, hd] split into q, k, v of [B, H, T, hd] without copies; in every dtype (16-bit
  // ones go through compute-type copies of the inputs and outputs).
  for (DType dtype : {DType::Float64, DType::Float32, DType::BFloat16}) {
    INFO(dtype_name(dtype));
    Tensor qkv = leaf({2, 6, 3, 2, 4}, 26).detach().to(dtype);
    auto part = [&](int64_t i) { return qkv.select(2, i).transpose(1, 2); };
    Tensor out = F::scaled_dot_product_attention(part(0), part(1), part(2));
    Tensor ref = F::scaled_dot_product_attention(part(0).contiguous(), part(1).contiguous(),
                                                 part(2).contiguous());
    require_close(out, ref, 0, 0);
    // The output is laid out like the query, [B, T, H, hd] in memory, so merging heads is free.
    REQUIRE(out.transpose(1, 2).is_contiguous());
    REQUIRE(ref.is_contiguous());
    // So are the gradients of the split views.
    Tensor grad_q = leaf({2, 2, 6, 4}, 27).detach().to(dtype);
    Tensor x = qkv.clone().requires_grad_();
    auto split = [&](int64_t i) { return x.select(2, i).transpose(1, 2); };
    Tensor y = F::scaled_dot_product_attention(split(0), split(1), split(2));
    (y * grad_q).sum().backward();
    Tensor x_ref = qkv.clone().requires_grad_();
    auto copied = [&](int64_t i) { return x_ref.select(2, i).transpose(1, 2).contiguous(); };
    (F::scaled_dot_product_attention(copied(0), copied(1), copied(2)) * grad_q).sum().backward();
    require_close(x.grad(), x_ref.grad(), 0, 0);
  }
  Tensor qkv = leaf({2, 6, 3, 2, 4}, 26).detach();
  Tensor x = qkv.clone().requires_grad_();
  REQUIRE(gradcheck(
      [&](const Inputs& in) {
        auto p = [&](int64_t i) { return in[0].select(2, i).transpose(1, 2); };
        return F::scaled_dot_product_attention(p(0), p(1), p(2));
      },
      {x}));
}

TEST_CASE("attention gradients", "[functional]") {
  for (bool causal : {true, false}) {
    INFO("causal " << causal);
    REQUIRE(gradcheck(
        [causal](const Inputs& in) {
          return F::scaled_dot_product_attention(in[0], in[1], in[2], causal);
        },
        {leaf({2, 2, 4, 3}, 27), leaf({2, 2, 4, 3}, 28), leaf({2, 2, 4, 2}, 29)}));
    // More keys than queries, no batch dims.
    REQUIRE(gradcheck(
        [causal](const Inputs& in) {
          return F::scaled_dot_product_attention(in[0], in[1], in[2], causal, 0.7);
        },
        {leaf({3, 2}, 30), leaf({5, 2}, 31), leaf({5, 3}, 32)}));
  }
}

TEST_CASE("long causal attention matches the composite in value and gradient", "[functional]") {
  // Sequences longer than the kernel's causal row and key blocks, with partial last blocks; in
  // float32 too, whose products run on the AVX-512 kernel where the CPU has one.
  for (auto [sq, sk] : {std::pair<int64_t, int64_t>{70, 70}, {70, 50}, {40, 90}}) {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      INFO("sq " << sq << " sk " << sk << " " << dtype_name(dtype));
      const double tol = dtype == DType::Float64 ? 1e-12 : 1e-5;
      Inputs composite{leaf({2, sq, 8}, 41), leaf({2, sk, 8}, 42), leaf({2, sk, 6}, 43)};
      Inputs fused;
      for (const Tensor& t : composite) fused.push_back(t.detach().to(dtype).requires_grad_());
      Tensor weights = leaf({2, sq, 6}, 44).detach();
      Tensor y = F::scaled_dot_product_attention(fused[0], fused[1], fused[2]);
      Tensor ref =
          reference_attention(composite[0], composite[1], composite[2], true, 1 / std::sqrt(8.0));
      require_close(y, ref, tol, tol);
      (y.to(DType::Float64) * weights).sum().backward();
      (ref * weights).sum().backward();
      for (size_t i = 0; i < 3; ++i)
        require_close(fused[i].grad(), composite[i].grad(), tol, tol * 100);
    }
  }
}

TEST_CASE("low-precision forwards match float64", "[functional]") {
  struct Case {
    DType dtype;
    double atol, rtol;
  };
  for (Case c : {Case{DType::Float32, 1e-5, 1e-5}, Case{DType::BFloat16, 3e-2, 2e-2},
                 Case{DType::Float16, 4e-3, 4e-3}}) {
    INFO("dtype " << dtype_name(c.dtype));
    // Inputs exactly representable in the low-precision dtype, so only the op's error counts.
    auto pair = [&](Shape shape, uint64_t seed) {
      Tensor low = leaf(std::move(shape), seed).detach().to(c.dtype);
      return std::pair{low, low.to(DType::Float64)};
    };
    auto [x, x64] = pair({4, 3, 16}, 33);
    require_close(F::softmax(x, -1), F::softmax(x64, -1), c.atol, c.rtol);
    require_close(F::softmax(x, 1), F::softmax(x64, 1), c.atol, c.rtol);
    require_close(F::log_softmax(x, -1), F::log_softmax(x64, -1), c.atol, c.rtol);
    require_close(F::layer_norm(x, {16}), F::layer_norm(x64, {16}), c.atol * 4, c.rtol);
    require_close(F::gelu(x, F::GeluApproximation::Tanh), F::gelu(x64, F::GeluApproximation::Tanh),
                  c.atol, c.rtol);
    Tensor t =
        Tensor::from_vector(std::vector<int64_t>{0, 5, 15, 7, 3, 9, 1, 2, 11, 4, 8, 6}, {4, 3});
    require_close(F::cross_entropy(x, t), F::cross_entropy(x64, t), c.atol, c.rtol);
    auto [q, q64] = pair({2, 2, 8, 4}, 34);
    auto [k, k64] = pair({2, 2, 8, 4}, 35);
    auto [v, v64] = pair({2, 2, 8, 4}, 36);
    require_close(F::scaled_dot_product_attention(q, k, v),
                  F::scaled_dot_product_attention(q64, k64, v64), c.atol * 2, c.rtol);
  }
}

TEST_CASE("row kernels at widths around their 16-lane vectors match float64", "[functional]") {
  // Layer norm, softmax and cross entropy reduce along rows 16 elements at a time, the last
  // vector masked: widths below, at and between multiples of 16, forward and backward.
  struct Case {
    DType dtype;
    double tol;
  };
  for (Case c :
       {Case{DType::Float32, 2e-5}, Case{DType::BFloat16, 4e-2}, Case{DType::Float16, 8e-3}}) {
    for (int64_t width : {1, 5, 16, 20, 33, 64}) {
      INFO(dtype_name(c.dtype) << " width " << width);
      const Tensor x64 = leaf({6, width}, 50).detach().to(c.dtype).to(DType::Float64);
      const Tensor w64 = leaf({width}, 51).detach();
      const Tensor b64 = leaf({width}, 52).detach();
      const Tensor weights = leaf({6, width}, 53).detach();
      const Tensor targets = Tensor::from_vector(
          std::vector<int64_t>{0, 1 % width, 2 % width, 3 % width, 4 % width, 5 % width}, {6});
      const std::vector<std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>> ops = {
          [](const Tensor& x, const Tensor&, const Tensor&) { return F::softmax(x, -1); },
          [](const Tensor& x, const Tensor&, const Tensor&) { return F::log_softmax(x, -1); },
          [width](const Tensor& x, const Tensor& w, const Tensor& b) {
            return F::layer_norm(x, {width}, w, b);
          },
          [width](const Tensor& x, const Tensor&, const Tensor&) {
            return F::layer_norm(x, {width});
          },
          [&targets](const Tensor& x, const Tensor&, const Tensor&) {
            return F::cross_entropy(x, targets).reshape({1, 1}).expand({6, 1});
          }};
      for (size_t op = 0; op < ops.size(); ++op) {
        INFO("op " << op);
        Inputs got{x64.to(c.dtype).requires_grad_(), w64.to(DType::Float32).requires_grad_(),
                   b64.to(DType::Float32).requires_grad_()};
        Inputs want{x64.clone().requires_grad_(), w64.clone().requires_grad_(),
                    b64.clone().requires_grad_()};
        Tensor y = ops[op](got[0], got[1], got[2]);
        Tensor y64 = ops[op](want[0], want[1], want[2]);
        require_close(y, y64, c.tol, c.tol);
        (y.to(DType::Float64) * weights.slice(1, 0, y.shape()[1])).sum().backward();
        (y64 * weights.slice(1, 0, y.shape()[1])).sum().backward();
        for (size_t i = 0; i < 3; ++i) {
          INFO("gradient " << i);
          REQUIRE(got[i].grad().defined() == want[i].grad().defined());
          if (got[i].grad().defined())
            require_close(got[i].grad(), want[i].grad(), c.tol * 4, c.tol);
        }
      }
    }
  }
}

TEST_CASE("low-precision attention backward matches float64", "[functional]") {
  auto grads = [](DType dtype) {
    Inputs in{leaf({2, 6, 4}, 37), leaf({2, 6, 4}, 38), leaf({2, 6, 4}, 39)};
    Inputs low;
    for (Tensor& t : in) low.push_back(t.detach().to(dtype).requires_grad_());
    Tensor y = F::scaled_dot_product_attention(low[0], low[1], low[2]);
    (y.to(DType::Float64) * f64(std::vector<double>(48, 0.5), {2, 6, 4})).sum().backward();
    return Inputs{low[0].grad(), low[1].grad(), low[2].grad()};
  };
  Inputs ref = grads(DType::Float64);
  Inputs f32 = grads(DType::Float32);
  Inputs bf16 = grads(DType::BFloat16);
  for (size_t i = 0; i < 3; ++i) {
    require_close(f32[i], ref[i], 1e-5, 1e-4);
    require_close(bf16[i], ref[i], 3e-2, 3e-2);
  }
}

TEST_CASE("no history is recorded without grad", "[functional]") {
  Tensor x = leaf({2, 3}, 40);
  {
    NoGradGuard guard;
    REQUIRE_FALSE(F::softmax(x, -1).requires_grad());
    REQUIRE_FALSE(F::layer_norm(x, {3}).requires_grad());
  }
  REQUIRE(F::softmax(x, -1).requires_grad());
}

TEST_CASE("functional ops reject bad input", "[functional]") {
  Tensor x = Tensor::randn({2, 3});
  Tensor ints = Tensor::from_vector(std::vector<int64_t>{0, 1}, {2});
  Tensor w = Tensor::randn({4, 3});

  require_invalid([&] { F::relu(ints); }, {"relu", "int64"});
  require_invalid([&] { F::softmax(x, 2); }, {"softmax", "dim 2", "2 dimensions"});
  require_invalid([&] { F::log_softmax(x, -3); }, {"log_softmax", "-3"});
  require_invalid([&] { F::softmax(Tensor(), 0); }, {"softmax", "undefined"});

  require_invalid([&] { F::layer_norm(x, {4}); }, {"layer_norm", "[4]", "[2, 3]"});
  require_invalid([&] { F::layer_norm(x, {}); }, {"layer_norm", "[]", "[2, 3]"});
  require_invalid([&] { F::layer_norm(x, {3}, Tensor::ones({4})); },
                  {"layer_norm", "weight", "[4]", "[3]"});
  require_invalid([&] { F::layer_norm(x, {3}, Tensor(), Tensor::ones({2})); },
                  {"layer_norm", "bias", "[2]", "[3]"});
  require_invalid([&] { F::layer_norm(x, {3}, Tensor(), Tensor(), -1.0); }, {"layer_norm", "eps"});

  Tensor table = Tensor::randn({4, 3});
  require_invalid(
      [&] {
        F::embedding(Tensor::from_vector(std::vector<int64_t>{1, 4}, {2}), table);
      },
      {"embedding", "index 4", "4 rows"});
  require_invalid([&] { F::embedding(Tensor::from_vector(std::vector<int64_t>{-1}, {1}), table); },
                  {"embedding", "index -1"});
  require_invalid([&] { F::embedding(x, table); }, {"embedding", "indices", "float32"});
  require_invalid([&] { F::embedding(ints, Tensor::randn({4})); }, {"embedding", "[4]"});

  require_invalid(
      [&] {
        F::cross_entropy(x, Tensor::from_vector(std::vector<int64_t>{0, 3}, {2}));
      },
      {"cross_entropy", "target 3", "3 classes"});
  require_invalid(
      [&] {
        F::cross_entropy(x, Tensor::from_vector(std::vector<int64_t>{-1, 0}, {2}));
      },
      {"cross_entropy", "target -1"});
  require_invalid(
      [&] {
        F::cross_entropy(x, Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3}));
      },
      {"cross_entropy", "[2, 3]", "[3]"});
  require_invalid([&] { F::cross_entropy(x, Tensor::zeros({2})); },
                  {"cross_entropy", "targets", "float32"});

  require_invalid([&] { F::mse_loss(x, Tensor::randn({3, 2})); }, {"mse_loss", "[2, 3]", "[3, 2]"});
  require_invalid([&] { F::mse_loss(x, ints); }, {"mse_loss", "int64"});

  require_invalid([&] { F::dropout(x, 1.0, true); }, {"dropout", "p", "1.0"});
  require_invalid([&] { F::dropout(x, -0.1, false); }, {"dropout", "-0.1"});

  require_invalid([&] { F::linear(x, Tensor::randn({4, 2})); }, {"linear", "[2, 3]", "[4, 2]"});
  require_invalid([&] { F::linear(x, w, Tensor::randn({3})); },
                  {"linear", "bias", "[3]", "[4, 3]"});
  require_invalid([&] { F::linear(x, Tensor::randn({3})); }, {"linear", "2-D", "[3]"});
  require_invalid([&] { F::linear(x, w.to(DType::Float64)); }, {"linear", "weight", "float64"});
  require_invalid([&] { F::linear(x, w, Tensor::randn({4}, DType::BFloat16)); },
                  {"linear", "bias", "bfloat16", "float32"});

  Tensor q = Tensor::randn({2, 4, 8});
  require_invalid(
      [&] {
        F::scaled_dot_product_attention(q, Tensor::randn({2, 4, 7}), q);
      },
      {"scaled_dot_product_attention", "[2, 4, 8]", "[2, 4, 7]"});
  require_invalid(
      [&] {
        F::scaled_dot_product_attention(q, q, Tensor::randn({2, 5, 8}));
      },
      {"scaled_dot_product_attention", "[2, 5, 8]"});
  require_invalid(
      [&] {
        F::scaled_dot_product_attention(q, q, Tensor::randn({3, 4, 8}));
      },
      {"scaled_dot_product_attention", "[3, 4, 8]"});
  require_invalid(
      [&] {
        F::scaled_dot_product_attention(q, Tensor::randn({4, 8}), q);
      },
      {"scaled_dot_product_attention", "[4, 8]"});
  require_invalid([&] { F::scaled_dot_product_attention(q, q.to(DType::Float64), q); },
                  {"scaled_dot_product_attention", "float32", "float64"});
  require_invalid([&] { F::scaled_dot_product_attention(q, q, q, true, std::nan("")); },
                  {"scaled_dot_product_attention", "scale"});
}
