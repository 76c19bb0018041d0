#pragma once

#include <cmath>
#include <functional>
#include <iostream>
#include <vector>

#include <optimi/optimi.hpp>

namespace optimi::testing {

// Compares the analytic gradient of sum(f(inputs) * w), w a fixed random weighting (so that
// every output element matters differently), against central finite differences. Inputs must be
// Float64 tensors that require grad. Prints the first mismatch.
inline bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      std::vector<Tensor> inputs, double eps = 1e-6, double atol = 1e-5,
                      double rtol = 1e-3) {
  for (Tensor& t : inputs) t.set_grad(Tensor());
  Tensor out = f(inputs);
  Generator weights(1234);
  std::vector<double> w(size_t(out.numel()));
  for (double& v : w) v = 0.5 + weights.uniform();
  Tensor wt = Tensor::from_vector(w, out.shape(), DType::Float64);
  auto objective = [&](const std::vector<Tensor>& in) {
    NoGradGuard guard;
    return (f(in).to(DType::Float64) * wt).sum().item();
  };
  (out.to(DType::Float64) * wt).sum().backward();

  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector<double>()
                                                      : std::vector<double>(size_t(x.numel()), 0.0);
    std::vector<double> values = x.to_vector<double>();
    for (size_t i = 0; i < values.size(); ++i) {
      auto eval_at = [&](double v) {
        std::vector<double> moved = values;
        moved[i] = v;
        NoGradGuard guard;
        x.copy_(Tensor::from_vector(moved, x.shape(), x.dtype()));
        return objective(inputs);
      };
      double numeric = (eval_at(values[i] + eps) - eval_at(values[i] - eps)) / (2 * eps);
      {
        NoGradGuard guard;
        x.copy_(Tensor::from_vector(values, x.shape(), x.dtype()));
      }
      if (std::abs(numeric - analytic[i]) > atol + rtol * std::abs(numeric)) {
        std::cerr << "gradcheck: input " << k << " element " << i << ": analytic " << analytic[i]
                  << " numeric " << numeric << "\n";
        return false;
      }
    }
  }
  return true;
}

// A Float64 leaf with values from the seeded generator.
inline Tensor leaf(Shape shape, uint64_t seed = 0) {
  manual_seed(seed);
  return Tensor::randn(std::move(shape), DType::Float64).requires_grad_();
}

}  // namespace optimi::testing
