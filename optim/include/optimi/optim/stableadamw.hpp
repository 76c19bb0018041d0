#pragma once

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// StableAdamW (optimi.StableAdamW): AdamW whose learning rate is clipped per tensor by the RMS of
// g / sqrt(v); the weight decay uses the clipped rate.
struct StableAdamWOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: unset throws
  std::array<double, 2> betas{0.9, 0.99};
  double weight_decay = 1e-2;
  double eps = 1e-6;
  bool decouple_lr = false;  // fully decoupled weight decay: scaled by lr / max_lr
  std::optional<double> max_lr = std::nullopt;   // default: lr
  std::optional<bool> kahan_sum = std::nullopt;  // unset: on for float16 and bfloat16 parameters
  bool gradient_release = false;
};

class StableAdamW : public Optimizer {
 public:
  StableAdamW(std::vector<Tensor> params, StableAdamWOptions options);
  StableAdamW(std::vector<ParamGroup> groups, StableAdamWOptions options);
};

}  // namespace optimi::optim
