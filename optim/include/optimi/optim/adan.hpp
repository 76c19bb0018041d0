#pragma once

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// Adan (optimi.Adan): adaptive Nesterov momentum with three moments. Weight decay is Adan-style
// (divides after the update) unless adam_wd (multiplies before it). Kahan summation is off by
// default, as in optimi.
struct AdanOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: unset throws
  std::array<double, 3> betas{0.98, 0.92, 0.99};
  double weight_decay = 2e-2;
  double eps = 1e-6;
  bool decouple_lr = false;  // fully decoupled weight decay: scaled by lr / max_lr
  std::optional<double> max_lr = std::nullopt;  // default: lr
  bool adam_wd = false;
  std::optional<bool> kahan_sum = false;  // unset: on for float16 and bfloat16 parameters
  bool gradient_release = false;
};

class Adan : public Optimizer {
 public:
  Adan(std::vector<Tensor> params, AdanOptions options);
  Adan(std::vector<ParamGroup> groups, AdanOptions options);
};

}  // namespace optimi::optim
