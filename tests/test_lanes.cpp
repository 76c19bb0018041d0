#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/lanes.hpp"

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

TEST_CASE("fast_exp on 16 lanes matches the scalar one", "[kernels]") {
#if OPTIMI_ROW_LANES
  using optimi::kernels::cpu::Lanes;
  std::vector<float> x = exp_inputs();
  while (x.size() % 16) x.push_back(0.0f);
  for (size_t i = 0; i < x.size(); i += 16) {
    float lanes[16];
    _mm512_storeu_ps(lanes, optimi::kernels::cpu::fast_exp(Lanes(_mm512_loadu_ps(&x[i]))).v);
    for (size_t j = 0; j < 16; ++j) {
      INFO("x = " << x[i + j]);
      const float want = fast_exp(x[i + j]);
      if (std::isnan(want)) {
        CHECK(std::isnan(lanes[j]));
      } else if (want == 0.0f || x[i + j] >= 88.0f) {
        CHECK(lanes[j] == want);  // the edges are exact
      } else {
        // The two round their fused multiply-adds differently: within 1 ulp.
        CHECK(std::fabs(double(lanes[j]) / double(want) - 1) < 1.2e-7);
      }
    }
  }
#else
  WARN("this target has no AVX-512: the row kernels use the scalar fast_exp alone");
#endif
}
