#include "optimi/optim/adamw.hpp"

#include "optim/src/adam_algorithm.hpp"

namespace optimi::optim {
namespace {

AdamOptions as_adam(const AdamWOptions& o) {
  return {.lr = o.lr,
          .betas = o.betas,
          .weight_decay = o.weight_decay,
          .eps = o.eps,
          .decouple_wd = true,
          .decouple_lr = o.decouple_lr,
          .max_lr = o.max_lr,
          .kahan_sum = o.kahan_sum,
          .gradient_release = o.gradient_release};
}

}  // namespace

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW(one_group(std::move(params)), options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Optimizer(std::move(groups),
                std::make_unique<detail::AdamAlgorithm>("AdamW", as_adam(options))) {}

}  // namespace optimi::optim
