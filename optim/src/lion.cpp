#include "optimi/optim/lion.hpp"

#include "optim/src/algorithm.hpp"

namespace optimi::optim {
namespace {

class LionAlgorithm final : public detail::Algorithm {
 public:
  explicit LionAlgorithm(const LionOptions& o) : Algorithm(detail::common_options(o)), o_(o) {}

  void check_options() const override { detail::check_betas(o_.betas); }

  std::string_view name() const override { return "Lion"; }
  bool counts_steps() const override { return false; }
  std::vector<std::string> buffers() const override { return {"exp_avg"}; }

  void update(const detail::StepBatch& b) const override {
    kernels::LionStep step{static_cast<float>(1.0 - o_.betas[0]),
                           static_cast<float>(1.0 - o_.betas[1]), static_cast<float>(-b.group.lr),
                           weight_decay(b.group, /*decoupled=*/true)};
    detail::launch(step, b);
  }

  std::vector<detail::Hyperparameter> hyperparameters() override {
    return {{"beta1", &o_.betas[0]}, {"beta2", &o_.betas[1]}};
  }

 private:
  LionOptions o_;
};

}  // namespace

Lion::Lion(std::vector<Tensor> params, LionOptions options)
    : Lion(one_group(std::move(params)), options) {}

Lion::Lion(std::vector<ParamGroup> groups, LionOptions options)
    : Optimizer(std::move(groups), std::make_unique<LionAlgorithm>(options)) {}

}  // namespace optimi::optim
