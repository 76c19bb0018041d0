#pragma once

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// Lion (optimi.Lion): sign of an interpolated momentum, decoupled weight decay.
struct LionOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: unset throws
  std::array<double, 2> betas{0.9, 0.99};
  double weight_decay = 0.0;
  bool decouple_lr = false;  // fully decoupled weight decay: scaled by lr / max_lr
  std::optional<double> max_lr = std::nullopt;   // default: lr
  std::optional<bool> kahan_sum = std::nullopt;  // unset: on for float16 and bfloat16 parameters
  bool gradient_release = false;
};

class Lion : public Optimizer {
 public:
  Lion(std::vector<Tensor> params, LionOptions options);
  Lion(std::vector<ParamGroup> groups, LionOptions options);
};

}  // namespace optimi::optim
