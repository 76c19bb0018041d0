#include "optimi/optim/adam.hpp"

#include "optim/src/adam_algorithm.hpp"

namespace optimi::optim {

namespace detail {

AdamAlgorithm::AdamAlgorithm(std::string_view name, const AdamOptions& o)
    : Algorithm(common_options(o)), name_(name), o_(o) {}

void AdamAlgorithm::check_options() const {
  check_betas(o_.betas);
  check_eps(o_.eps);
}

void AdamAlgorithm::update(const StepBatch& b) const {
  kernels::AdamStep step{adam_moments(o_.betas[0], o_.betas[1], b.t), static_cast<float>(o_.eps),
                         static_cast<float>(-b.group.lr), weight_decay(b.group, o_.decouple_wd)};
  launch(step, b);
}

std::vector<Hyperparameter> AdamAlgorithm::hyperparameters() {
  return {{"beta1", &o_.betas[0]},
          {"beta2", &o_.betas[1]},
          {"eps", &o_.eps},
          {"decouple_wd", &o_.decouple_wd}};
}

}  // namespace detail

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(one_group(std::move(params)), options) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Optimizer(std::move(groups), std::make_unique<detail::AdamAlgorithm>("Adam", options)) {}

}  // namespace optimi::optim
