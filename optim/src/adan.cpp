#include "optimi/optim/adan.hpp"

#include "optim/src/algorithm.hpp"

namespace optimi::optim {
namespace {

class AdanAlgorithm final : public detail::Algorithm {
 public:
  explicit AdanAlgorithm(const AdanOptions& o) : Algorithm(detail::common_options(o)), o_(o) {}

  void check_options() const override {
    detail::check_betas(o_.betas);
    detail::check_eps(o_.eps);
  }

  std::string_view name() const override { return "Adan"; }
  std::vector<std::string> buffers() const override {
    return {"exp_avg", "exp_avg_diff", "exp_avg_sq", "prev_grad"};
  }

  void init_buffers(const detail::GroupState& g, const detail::ParamStep& p) const override {
    Algorithm::init_buffers(g, p);
    // prev_grad holds -g_{t-1}: starting from -g_1 makes the first difference exactly 0.
    detail::launch(kernels::GradientInit{-1.0f, 0.0f},
                   detail::prepare_launch(p.param, p.grad, {p.state->buffers[3]}));
  }

  void update(const detail::StepBatch& b) const override {
    const auto [beta1, beta2, beta3] = o_.betas;
    double lr = b.group.lr;
    double beta3_hat = detail::debias_beta(beta3, b.t);
    kernels::AdanStep step{static_cast<float>(1.0 - detail::debias_beta(beta1, b.t)),
                           static_cast<float>(1.0 - detail::debias_beta(beta2, b.t)),
                           static_cast<float>(beta2),
                           static_cast<float>(beta3_hat),
                           static_cast<float>(1.0 - beta3_hat),
                           static_cast<float>(o_.eps),
                           static_cast<float>(-lr),
                           static_cast<float>(-lr * beta2)};
    // Adam-style decay multiplies before the update, Adan-style divides after it (decision 2);
    // a factor of exactly 0 is skipped, as optimi does.
    if (b.group.weight_decay != 0.0) {
      double rate = decay_rate(lr, b.group.weight_decay);
      double w = o_.adam_wd ? 1.0 - rate : 1.0 + rate;
      if (w != 0.0) (o_.adam_wd ? step.decay.factor : step.divisor) = static_cast<float>(w);
    }
    detail::launch(step, b);
  }

  std::vector<detail::Hyperparameter> hyperparameters() override {
    return {{"beta1", &o_.betas[0]},
            {"beta2", &o_.betas[1]},
            {"beta3", &o_.betas[2]},
            {"eps", &o_.eps},
            {"adam_wd", &o_.adam_wd}};
  }

 private:
  AdanOptions o_;
};

}  // namespace

Adan::Adan(std::vector<Tensor> params, AdanOptions options)
    : Adan(one_group(std::move(params)), options) {}

Adan::Adan(std::vector<ParamGroup> groups, AdanOptions options)
    : Optimizer(std::move(groups), std::make_unique<AdanAlgorithm>(options)) {}

}  // namespace optimi::optim
