#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <optimi/optimi.hpp>
#include <stdexcept>
#include <vector>

#include "gradcheck.hpp"

using namespace optimi;
using Catch::Matchers::Contains;
using optimi::testing::gradcheck;
using optimi::testing::leaf;

namespace {

// 0, 1, 2, ... laid out in `shape`.
Tensor iota(const Shape& shape, DType dtype = DType::Float32) {
  std::vector<float> v(size_t(shape_numel(shape)));
  std::iota(v.begin(), v.end(), 0.0f);
  return Tensor::from_vector(v, shape, dtype);
}

std::vector<float> values(const Tensor& t) {
  return t.to_vector<float>();
}

}  // namespace

TEST_CASE("reshape and view share storage when strides allow", "[shape]") {
  Tensor t = iota({2, 3, 4});
  Tensor r = t.reshape({6, -1});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.storage() == t.storage());
  CHECK(values(r) == values(t));
  Tensor v = t.view({4, 6});
  CHECK(v.storage() == t.storage());
  v.select(0, 0).fill_(-1.0);
  CHECK(t.to_vector<float>()[5] == -1.0f);
  CHECK(Tensor::ones({1, 1}).reshape({}).shape() == Shape{});
  // A view over a view: slicing keeps dims mergeable.
  Tensor s = iota({4, 6}).slice(1, 0, 6).slice(0, 1, 3);
  CHECK(s.view({12}).storage() == s.storage());
}

TEST_CASE("reshape copies a tensor that no view can express", "[shape]") {
  Tensor t = iota({2, 3});
  Tensor r = t.transpose(0, 1).reshape({6});
  CHECK(r.storage() != t.storage());
  CHECK(values(r) == std::vector<float>{0, 3, 1, 4, 2, 5});
  REQUIRE_THROWS_AS(t.transpose(0, 1).view({6}), std::invalid_argument);
  REQUIRE_THROWS_WITH(t.transpose(0, 1).view({6}),
                      Contains("view") && Contains("[6]") && Contains("[3, 2]"));
}

TEST_CASE("reshape rejects bad shapes naming both", "[shape]") {
  Tensor t = iota({2, 3});
  REQUIRE_THROWS_WITH(t.reshape({4, 2}),
                      Contains("reshape") && Contains("[4, 2]") && Contains("[2, 3]"));
  REQUIRE_THROWS_WITH(t.reshape({-1, -1}), Contains("only one dimension can be -1"));
  REQUIRE_THROWS_WITH(t.reshape({4, -1}), Contains("[4, -1]") && Contains("[2, 3]"));
  REQUIRE_THROWS_AS(t.reshape({-2, 3}), std::invalid_argument);
  REQUIRE_THROWS_AS(Tensor::zeros({0, 3}).reshape({0, -1}), std::invalid_argument);
}

TEST_CASE("transpose and permute swap shapes and strides", "[shape]") {
  Tensor t = iota({2, 3, 4});
  Tensor tr = t.transpose(0, -1);
  CHECK(tr.shape() == Shape{4, 3, 2});
  CHECK(tr.strides() == Shape{1, 4, 12});
  CHECK(tr.storage() == t.storage());
  CHECK(tr.contiguous().to_vector<float>()[1] == 12.0f);
  Tensor p = t.permute({1, 2, 0});
  CHECK(p.shape() == Shape{3, 4, 2});
  CHECK(p.strides() == Shape{4, 1, 12});
  CHECK(values(p.contiguous())[1] == 12.0f);
  REQUIRE_THROWS_WITH(t.transpose(0, 3), Contains("transpose") && Contains("dim 3"));
  REQUIRE_THROWS_WITH(t.permute({0, 1}), Contains("permute") && Contains("[2, 3, 4]"));
  REQUIRE_THROWS_WITH(t.permute({0, 1, 1}), Contains("permute") && Contains("repeats"));
}

TEST_CASE("slice clamps bounds like PyTorch", "[shape]") {
  Tensor t = iota({10});
  CHECK(values(t.slice(0, 2, 8, 3)) == std::vector<float>{2, 5});
  CHECK(values(t.slice(0, -3, 100)) == std::vector<float>{7, 8, 9});
  CHECK(values(t.slice(0, -100, 2)) == std::vector<float>{0, 1});
  CHECK(t.slice(0, 8, 3).shape() == Shape{0});
  CHECK(t.slice(0, 20, 30).shape() == Shape{0});
  Tensor m = iota({3, 4});
  Tensor col = m.slice(1, 1, 3);
  CHECK(col.shape() == Shape{3, 2});
  CHECK(values(col.contiguous()) == std::vector<float>{1, 2, 5, 6, 9, 10});
  col.fill_(0.0);  // writes through to the base
  CHECK(values(m)[1] == 0.0f);
  CHECK(values(m)[3] == 3.0f);
  REQUIRE_THROWS_WITH(t.slice(0, 0, 5, 0), Contains("slice") && Contains("step"));
  REQUIRE_THROWS_WITH(m.slice(2, 0, 1), Contains("slice") && Contains("dim 2"));
}

TEST_CASE("select, unsqueeze and squeeze", "[shape]") {
  Tensor t = iota({2, 3});
  CHECK(values(t.select(1, -1)) == std::vector<float>{2, 5});
  CHECK(t.select(0, 1).shape() == Shape{3});
  REQUIRE_THROWS_AS(t.select(1, 3), std::invalid_argument);
  REQUIRE_THROWS_WITH(t.select(1, 3),
                      Contains("select") && Contains("index 3") && Contains("size 3"));
  REQUIRE_THROWS_WITH(t.select(0, -3), Contains("index -3") && Contains("size 2"));
  CHECK(t.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(t.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(t.unsqueeze(1).is_contiguous());
  REQUIRE_THROWS_AS(t.unsqueeze(4), std::invalid_argument);
  CHECK(t.unsqueeze(1).squeeze(1).shape() == Shape{2, 3});
  CHECK(t.squeeze(0).shape() == Shape{2, 3});
  CHECK(t.squeeze(0).storage() == t.storage());
  REQUIRE_THROWS_AS(Tensor::ones({}).select(0, 0), std::invalid_argument);
}

TEST_CASE("expand broadcasts with stride 0", "[shape]") {
  Tensor t = iota({3, 1});
  Tensor e = t.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(e.storage() == t.storage());
  CHECK(values(e.contiguous())[13] == 0.0f);
  CHECK(values(e.contiguous())[16] == 1.0f);
  CHECK(t.expand({-1, 5}).shape() == Shape{3, 5});
  REQUIRE_THROWS_WITH(t.expand({4, 4}),
                      Contains("expand") && Contains("[3, 1]") && Contains("[4, 4]"));
  REQUIRE_THROWS_AS(t.expand({3}), std::invalid_argument);
}

TEST_CASE("cat joins along any dim and promotes dtypes", "[shape]") {
  Tensor a = iota({2, 2});
  Tensor b = iota({2, 1}) + 10.0;
  CHECK(values(cat({a, b}, 1)) == std::vector<float>{0, 1, 10, 2, 3, 11});
  CHECK(values(cat({a, a}, 0)) == std::vector<float>{0, 1, 2, 3, 0, 1, 2, 3});
  CHECK(cat({a, b, a}, -1).shape() == Shape{2, 5});
  Tensor mixed = cat({a, Tensor::ones({1, 2}, DType::Float64)}, 0);
  CHECK(mixed.dtype() == DType::Float64);
  CHECK(mixed.shape() == Shape{3, 2});
  REQUIRE_THROWS_WITH(cat({a, b}, 0), Contains("cat") && Contains("[2, 2]") && Contains("[2, 1]"));
  REQUIRE_THROWS_AS(cat({}, 0), std::invalid_argument);
  REQUIRE_THROWS_AS(cat({a, iota({4})}, 0), std::invalid_argument);
}

TEST_CASE("split returns views of equal chunks and a smaller last one", "[shape]") {
  Tensor t = iota({7, 2});
  std::vector<Tensor> parts = split(t, 3, 0);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].shape() == Shape{3, 2});
  CHECK(parts[2].shape() == Shape{1, 2});
  CHECK(values(parts[2]) == std::vector<float>{12, 13});
  CHECK(parts[1].storage() == t.storage());
  CHECK(split(t, 2, 1).size() == 1);
  REQUIRE_THROWS_WITH(split(t, 0, 0), Contains("split") && Contains("0"));
}

TEST_CASE("index_select gathers rows and checks indices", "[shape]") {
  Tensor t = iota({3, 4});
  Tensor rows = index_select(t, 0, Tensor::from_vector(std::vector<int64_t>{2, 0, 2}, {3}));
  CHECK(rows.shape() == Shape{3, 4});
  CHECK(values(rows) == std::vector<float>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  Tensor cols =
      index_select(t.transpose(0, 1), 0, Tensor::from_vector(std::vector<int64_t>{1}, {1}));
  CHECK(values(cols) == std::vector<float>{1, 5, 9});
  Tensor mid = index_select(iota({2, 3, 2}, DType::BFloat16), 1,
                            Tensor::from_vector(std::vector<int64_t>{2, 1}, {2}));
  CHECK(mid.shape() == Shape{2, 2, 2});
  CHECK(values(mid) == std::vector<float>{4, 5, 2, 3, 10, 11, 8, 9});
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, 3}, {2});
  REQUIRE_THROWS_WITH(index_select(t, 0, idx),
                      Contains("index_select") && Contains("index 3") && Contains("size 3"));
  REQUIRE_THROWS_WITH(index_select(t, 0, Tensor::zeros({2})), Contains("int64"));
  REQUIRE_THROWS_AS(index_select(t, 2, idx), std::invalid_argument);
  REQUIRE_THROWS_AS(index_select(t, 0, Tensor::zeros({1, 1}, DType::Int64)), std::invalid_argument);
}

TEST_CASE("gradients of the view ops match finite differences", "[shape]") {
  manual_seed(7);
  using In = std::vector<Tensor>;
  CHECK(gradcheck([](const In& x) { return x[0].reshape({4, 6}); }, {leaf({2, 3, 4}, 1)}));
  CHECK(
      gradcheck([](const In& x) { return x[0].transpose(0, 1).reshape({-1}); }, {leaf({2, 3}, 2)}));
  CHECK(gradcheck([](const In& x) { return x[0].view({3, 2}); }, {leaf({6}, 3)}));
  CHECK(gradcheck([](const In& x) { return x[0].transpose(0, 2); }, {leaf({2, 3, 4}, 4)}));
  CHECK(gradcheck([](const In& x) { return x[0].permute({2, 0, 1}); }, {leaf({2, 3, 4}, 5)}));
  CHECK(gradcheck([](const In& x) { return x[0].slice(1, -4, 5, 2); }, {leaf({3, 6}, 6)}));
  CHECK(gradcheck([](const In& x) { return x[0].select(1, -1); }, {leaf({3, 4}, 7)}));
  CHECK(gradcheck([](const In& x) { return x[0].unsqueeze(1).squeeze(1); }, {leaf({3, 4}, 8)}));
  CHECK(gradcheck([](const In& x) { return x[0].expand({2, 3, 4}); }, {leaf({3, 1}, 9)}));
  CHECK(gradcheck(
      [](const In& x) {
        return cat({x[0], x[1], x[0]}, 1);
      },
      {leaf({2, 3}, 10), leaf({2, 1}, 11)}));
  CHECK(gradcheck(
      [](const In& x) {
        std::vector<Tensor> p = split(x[0], 2, 0);
        return p[0] + p[1] * 2.0 + p[2].sum();
      },
      {leaf({5, 2}, 12)}));
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{1, 0, 1, 1}, {4});
  CHECK(gradcheck([&](const In& x) { return index_select(x[0], 1, idx); }, {leaf({2, 3, 2}, 13)}));
}

TEST_CASE("index_select backward accumulates 16-bit gradients in float32", "[shape]") {
  Tensor w = Tensor::zeros({2, 3}, DType::BFloat16).requires_grad_();
  std::vector<int64_t> many(1000, 1);
  Tensor out = index_select(w, 0, Tensor::from_vector(many, {1000}));
  (out * 0.01).sum().backward();
  REQUIRE(w.grad().dtype() == DType::BFloat16);
  std::vector<float> g = w.grad().to_vector<float>();
  CHECK(g[0] == 0.0f);
  // Summed in bfloat16 one row at a time this would stall near 2 rather than reach 10.
  CHECK(g[3] == Approx(10.0).epsilon(0.01));
}
