#include "optimi/optim/ranger.hpp"

#include <stdexcept>
#include <string>

#include "optim/src/algorithm.hpp"
#include "optim/src/python_format.hpp"

namespace optimi::optim {
namespace {

class RangerAlgorithm final : public detail::Algorithm {
 public:
  explicit RangerAlgorithm(const RangerOptions& o) : Algorithm(detail::common_options(o)), o_(o) {}
  void check_options() const override {
    detail::check_betas(o_.betas);
    detail::check_eps(o_.eps);
    // optimi leaves k unchecked and fails at the first step with a division by zero.
    if (o_.k <= 0)
      throw std::invalid_argument("Invalid lookahead steps: k=" + std::to_string(o_.k));
    detail::check_fraction("lookahead alpha", "alpha", o_.alpha);
  }

  std::string_view name() const override { return "Ranger"; }
  std::vector<std::string> buffers() const override {
    return {"exp_avg", "exp_avg_sq", "la_param"};
  }

  void init_buffers(const detail::GroupState& g, const detail::ParamStep& p) const override {
    Algorithm::init_buffers(g, p);
    p.state->buffers[2] = p.param.detach().clone();  // the slow weights start at the parameter
  }

  // RAdam's step; every k-th step (counting accumulation calls, which skip it) also the
  // lookahead.
  void update(const detail::StepBatch& b) const override {
    bool lookahead = b.update && b.t % o_.k == 0;
    float alpha = static_cast<float>(o_.alpha);
    detail::with_radam_step(
        o_.betas[0], o_.betas[1], o_.eps, b.group.lr, b.t, weight_decay(b.group, o_.decouple_wd),
        [&]<bool kRectified>(const kernels::RAdamStep<kRectified>& step) {
          if (lookahead) {
            detail::launch(kernels::RangerLookaheadStep<kRectified>{step, alpha}, b);
          } else {
            detail::launch(step, b);
          }
        });
  }

  std::vector<detail::Hyperparameter> hyperparameters() override {
    return {{"beta1", &o_.betas[0]}, {"beta2", &o_.betas[1]},
            {"eps", &o_.eps},        {"k", &o_.k},
            {"alpha", &o_.alpha},    {"decouple_wd", &o_.decouple_wd}};
  }

 private:
  RangerOptions o_;
};

}  // namespace

Ranger::Ranger(std::vector<Tensor> params, RangerOptions options)
    : Ranger(one_group(std::move(params)), options) {}

Ranger::Ranger(std::vector<ParamGroup> groups, RangerOptions options)
    : Optimizer(std::move(groups), std::make_unique<RangerAlgorithm>(options)) {}

}  // namespace optimi::optim
