#pragma once

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// Ranger (optimi.Ranger): RAdam with Lookahead. Every k steps the slow weights move alpha of the
// way to the fast weights, which then restart from them. Decoupled weight decay by default.
struct RangerOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: unset throws
  std::array<double, 2> betas{0.9, 0.99};
  double weight_decay = 0.0;
  double eps = 1e-6;
  int k = 6;
  double alpha = 0.5;
  bool decouple_wd = true;
  bool decouple_lr = false;  // fully decoupled weight decay: scaled by lr / max_lr
  std::optional<double> max_lr = std::nullopt;   // default: lr
  std::optional<bool> kahan_sum = std::nullopt;  // unset: on for float16 and bfloat16 parameters
  bool gradient_release = false;
};

class Ranger : public Optimizer {
 public:
  Ranger(std::vector<Tensor> params, RangerOptions options);
  Ranger(std::vector<ParamGroup> groups, RangerOptions options);
};

}  // namespace optimi::optim
