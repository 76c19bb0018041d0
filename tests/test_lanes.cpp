#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/row_reduce.hpp"

using optimi::kernels::fast_exp;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Inputs across fast_exp's whole range and its edges: a fine sweep, the clamps and what lies
// beyond them, and the special values.
std::vector<float> exp_inputs() {
  std::vector<float> x;
  for (int i = 0; i <= 200000; ++i) x.push_back(-90.0f + 180.0f * float(i) / 200000.0f);
  for (float edge : {-87.0f, 88.0f}) {
    float below = edge, above = edge;
    for (int i = 0; i < 8; ++i) {
      below = std::nextafter(below, -kInf);
      above = std::nextafter(above, kInf);
      x.push_back(below);
      x.push_back(above);
    }
  }
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f, -0.5f, -104.0f, -1e4f, 1e4f, -3e38f, 3e38f,
                  -kInf, kInf, std::numeric_limits<float>::quiet_NaN()}) {
    x.push_back(v);
  }
  return x;
}

}  // namespace

TEST_CASE("fast_exp follows exp within 2 ulp and keeps its edges", "[kernels]") {
  const float at88 = fast_exp(88.0f);
  CHECK(std::fabs(double(at88) / std::exp(88.0) - 1) < 2.5e-7);
  for (float x : exp_inputs()) {
    INFO("x = " << x);
    const float y = fast_exp(x);
    if (std::isnan(x)) {
      CHECK(std::isnan(y));
    } else if (x <= -87.0f) {
      CHECK(y == 0.0f);
    } else if (x >= 88.0f) {
      CHECK(y == at88);
    } else {
      CHECK(std::fabs(double(y) / std::exp(double(x)) - 1) < 2.5e-7);
    }
  }
}

TEST_CASE("the row kernels' fast_exp matches the scalar one", "[kernels]") {
  // row_map takes 16 lanes at a time where the target has AVX-512 (the last ones masked), one
  // element at a time elsewhere: either way the results of the scalar fast_exp, within 1 ulp.
  const std::vector<float> x = exp_inputs();
  std::vector<float> y(x.size());
  optimi::kernels::cpu::row_map(
      int64_t(x.size()), y.data(), [](auto v) { return fast_exp(v); }, x.data());
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("x = " << x[i]);
    const float want = fast_exp(x[i]);
    if (std::isnan(want)) {
      CHECK(std::isnan(y[i]));
    } else if (want == 0.0f || x[i] >= 88.0f) {
      CHECK(y[i] == want);  // the edges are exact
    } else {
      // The two may round their fused multiply-adds differently.
      CHECK(std::fabs(double(y[i]) / double(want) - 1) < 1.2e-7);
    }
  }
}
