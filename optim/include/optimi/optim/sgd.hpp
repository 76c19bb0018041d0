#pragma once

#include <limits>
#include <optional>
#include <vector>

#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// SGD (optimi.SGD), with optional momentum. The options mirror optimi's constructor: `dampening`
// is a bool (the momentum buffer becomes an exponential moving average) and `torch_init` starts
// that buffer from the first gradient, as PyTorch's SGD does. Weight decay is L2 unless
// decouple_wd or decouple_lr.
struct SGDOptions {
  double lr = std::numeric_limits<double>::quiet_NaN();  // required: unset throws
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool dampening = false;
  bool decouple_wd = false;
  bool decouple_lr = false;  // fully decoupled weight decay: scaled by lr / max_lr
  std::optional<double> max_lr = std::nullopt;  // default: lr
  bool torch_init = false;
  std::optional<bool> kahan_sum = std::nullopt;  // unset: on for float16 and bfloat16 parameters
  bool gradient_release = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  SGD(std::vector<ParamGroup> groups, SGDOptions options);
};

}  // namespace optimi::optim
