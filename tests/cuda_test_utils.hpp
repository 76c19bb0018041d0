#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <optimi/optimi.hpp>

// Helpers of the [cuda] tests, which compare every CUDA result with the CPU result for the same
// inputs. CTest runs them as one test, `cuda_suite_needs_a_gpu`, through tests/cuda_suite.cpp,
// which reports a skip when there is no device; OPTIMI_REQUIRE_CUDA covers running `optimi_tests
// "[cuda]"` by hand.
namespace optimi::testing {

#define OPTIMI_REQUIRE_CUDA()             \
  do {                                    \
    if (!::optimi::cuda_is_available()) { \
      WARN("skipped: no CUDA device");    \
      return;                             \
    }                                     \
  } while (0)

inline Device gpu() {
  return Device::cuda(0);
}

// max |a - b| <= atol + rtol * |b| elementwise, b the CPU reference; reports the worst element.
inline void require_close(const Tensor& cuda, const Tensor& cpu, double rtol, double atol,
                          const std::string& what = "") {
  INFO(what);
  REQUIRE(cuda.defined());
  REQUIRE(cpu.defined());
  REQUIRE(cuda.shape() == cpu.shape());
  REQUIRE(cuda.dtype() == cpu.dtype());
  const std::vector<double> a = cuda.to_vector<double>();
  const std::vector<double> b = cpu.to_vector<double>();
  size_t worst = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    const double excess = both_nan ? -1 : std::abs(a[i] - b[i]) - (atol + rtol * std::abs(b[i]));
    if (std::isnan(excess) || excess > worst_excess) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      worst = i;
    }
  }
  if (!a.empty()) {
    INFO("element " << worst << ": cuda " << a[worst] << " cpu " << b[worst]);
    REQUIRE(worst_excess <= 0);
  }
}

// Tolerances of a dtype's results: a few ulps of float32 math reordered, one or two roundings of
// the 16-bit formats.
inline double rtol_of(DType t) {
  switch (t) {
    case DType::Float64:
      return 1e-10;
    case DType::Float32:
      return 2e-5;
    case DType::BFloat16:
      return 2e-2;
    case DType::Float16:
      return 4e-3;
    default:
      return 0;
  }
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on CPU copies and on CUDA copies of `inputs` (in `dtype` for the floating ones, which
// require grad), compares the outputs, then backpropagates the same random weighting of the output
// on both and compares every input gradient.
inline void check_against_cpu(const Fn& f, const std::vector<Tensor>& inputs, DType dtype,
                              double rtol, double atol, bool backward = true) {
  std::vector<Tensor> on_cpu, on_gpu;
  for (const Tensor& t : inputs) {
    const bool floating = t.is_floating_point();
    Tensor c = floating ? t.to(dtype).detach() : t;
    Tensor g = c.to(gpu()).detach();
    if (floating && backward) {
      c.requires_grad_();
      g.requires_grad_();
    }
    on_cpu.push_back(c);
    on_gpu.push_back(g);
  }
  Tensor y_cpu = f(on_cpu);
  Tensor y_gpu = f(on_gpu);
  REQUIRE(y_gpu.device() == gpu());
  require_close(y_gpu, y_cpu, rtol, atol, "forward");
  if (!backward) return;
  Tensor w = Tensor::uniform(y_cpu.shape(), 0.5, 1.5, y_cpu.dtype());
  (y_cpu * w).sum().backward();
  (y_gpu * w.to(gpu())).sum().backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!on_cpu[i].requires_grad()) continue;
    INFO("gradient of input " << i);
    REQUIRE(on_gpu[i].grad().defined() == on_cpu[i].grad().defined());
    if (!on_cpu[i].grad().defined()) continue;
    REQUIRE(on_gpu[i].grad().device() == gpu());
    require_close(on_gpu[i].grad(), on_cpu[i].grad(), rtol, atol, "backward");
  }
}

}  // namespace optimi::testing
