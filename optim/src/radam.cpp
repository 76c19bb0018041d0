#include "optimi/optim/radam.hpp"

#include "optim/src/algorithm.hpp"

namespace optimi::optim {
namespace {

class RAdamAlgorithm final : public detail::Algorithm {
 public:
  explicit RAdamAlgorithm(const RAdamOptions& o) : Algorithm(detail::common_options(o)), o_(o) {}

  void check_options() const override {
    detail::check_betas(o_.betas);
    detail::check_eps(o_.eps);
  }

  std::string_view name() const override { return "RAdam"; }
  std::vector<std::string> buffers() const override { return {"exp_avg", "exp_avg_sq"}; }

  void update(const detail::StepBatch& b) const override {
    detail::with_radam_step(o_.betas[0], o_.betas[1], o_.eps, b.group.lr, b.t,
                            weight_decay(b.group, o_.decouple_wd),
                            [&](const auto& step) { detail::launch(step, b); });
  }

  std::vector<detail::Hyperparameter> hyperparameters() override {
    return {{"beta1", &o_.betas[0]},
            {"beta2", &o_.betas[1]},
            {"eps", &o_.eps},
            {"decouple_wd", &o_.decouple_wd}};
  }

 private:
  RAdamOptions o_;
};

}  // namespace

RAdam::RAdam(std::vector<Tensor> params, RAdamOptions options)
    : RAdam(one_group(std::move(params)), options) {}

RAdam::RAdam(std::vector<ParamGroup> groups, RAdamOptions options)
    : Optimizer(std::move(groups), std::make_unique<RAdamAlgorithm>(options)) {}

}  // namespace optimi::optim
