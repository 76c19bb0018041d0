#include "optimi/optim/stableadamw.hpp"

#include "optim/src/algorithm.hpp"

namespace optimi::optim {
namespace {

class StableAdamWAlgorithm final : public detail::Algorithm {
 public:
  explicit StableAdamWAlgorithm(const StableAdamWOptions& o)
      : Algorithm(detail::common_options(o)), o_(o) {}

  void check_options() const override {
    detail::check_betas(o_.betas);
    detail::check_eps(o_.eps);
  }

  std::string_view name() const override { return "StableAdamW"; }
  std::vector<std::string> buffers() const override { return {"exp_avg", "exp_avg_sq"}; }

  // Two passes: the moments and the per-tensor RMS of g / sqrt(max(v̂, eps²)), then decay with
  // the clipped lr_t = lr / max(1, RMS) and the update from the stored moments (spec 2.8). The
  // clipping runs where the parameters are, so a CUDA step needs no host round trip.
  void update(const detail::StepBatch& b) const override {
    detail::KernelLaunch k = detail::prepare_launch(b);
    float eps = static_cast<float>(o_.eps);
    kernels::StableAdamWMoments moments{detail::adam_moments(o_.betas[0], o_.betas[1], b.t),
                                        eps * eps};
    kernels::StableAdamWClip clip{b.group.lr, b.group.weight_decay, common.decouple_lr,
                                  common.decouple_lr ? *common.max_lr : 0.0, eps};
    kernels::stable_adamw_step(k.device, moments, clip, k.tensors, b.update);
  }

  std::vector<detail::Hyperparameter> hyperparameters() override {
    return {{"beta1", &o_.betas[0]}, {"beta2", &o_.betas[1]}, {"eps", &o_.eps}};
  }

 private:
  StableAdamWOptions o_;
};

}  // namespace

StableAdamW::StableAdamW(std::vector<Tensor> params, StableAdamWOptions options)
    : StableAdamW(one_group(std::move(params)), options) {}

StableAdamW::StableAdamW(std::vector<ParamGroup> groups, StableAdamWOptions options)
    : Optimizer(std::move(groups), std::make_unique<StableAdamWAlgorithm>(options)) {}

}  // namespace optimi::optim
