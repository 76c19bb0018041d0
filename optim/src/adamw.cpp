#include "optimi/optim/adamw.hpp"

#include "optim/src/adam_algorithm.hpp"

namespace optimi::optim {
namespace {

AdamOptions as_adam(const AdamWOptions& o) {
  return {o.lr,          o.betas,  o.weight_decay, o.eps,           /*decouple_wd=*/true,
          o.decouple_lr, o.max_lr, o.kahan_sum,    o.gradient_release};
}

}  // namespace

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW(one_group(std::move(params)), options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Optimizer(std::move(groups),
                std::make_unique<detail::AdamAlgorithm>("AdamW", as_adam(options))) {}

}  // namespace optimi::optim
