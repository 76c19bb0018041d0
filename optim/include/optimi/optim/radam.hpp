#pragma once

#include <array>
#include <limits>
#include <optional>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// RAdam (optimi.RAdam): Adam with variance rectification; un-adapted momentum steps until the
// rectification term is defined (rho_t > 5). Weight decay is L2 unless decouple_wd or decouple_lr.
struct RAdamOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: unset throws
  std::array<double, 2> betas{0.9, 0.99};
  double weight_decay = 0.0;
  double eps = 1e-6;
  bool decouple_wd = false;
  bool decouple_lr = false;  // fully decoupled weight decay: scaled by lr / max_lr
  std::optional<double> max_lr = std::nullopt;   // default: lr
  std::optional<bool> kahan_sum = std::nullopt;  // unset: on for float16 and bfloat16 parameters
  bool gradient_release = false;
};

class RAdam : public Optimizer {
 public:
  RAdam(std::vector<Tensor> params, RAdamOptions options);
  RAdam(std::vector<ParamGroup> groups, RAdamOptions options);
};

}  // namespace optimi::optim
