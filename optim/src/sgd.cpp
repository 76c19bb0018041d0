#include "optimi/optim/sgd.hpp"

#include "optim/src/algorithm.hpp"
#include "optim/src/python_format.hpp"

namespace optimi::optim {
namespace {

class SgdAlgorithm final : public detail::Algorithm {
 public:
  explicit SgdAlgorithm(const SGDOptions& o) : Algorithm(detail::common_options(o)), o_(o) {}
  void check_options() const override {
    if (!(0.0 <= o_.momentum && o_.momentum < 1.0)) {
      throw std::invalid_argument("Invalid momentum: momentum=" +
                                  detail::python_float(o_.momentum));
    }
  }

  std::string_view name() const override { return "SGD"; }
  bool counts_steps() const override { return false; }

  std::vector<std::string> buffers() const override {
    if (o_.momentum != 0.0 || torch_init()) return {"exp_avg"};
    return {};
  }

  void init_buffers(const detail::GroupState& g, const detail::ParamStep& p) const override {
    if (!torch_init()) return Algorithm::init_buffers(g, p);
    // PyTorch's first momentum buffer: the gradient, plus the L2 term when L2 decay is on.
    Tensor& b = p.state->buffers[0];
    b = Tensor::empty(p.param.shape(), p.param.dtype(), p.param.device());
    float l2 = weight_decay(g, o_.decouple_wd).l2;
    detail::launch(kernels::GradientInit{1.0f, l2}, detail::prepare_launch(p.param, p.grad, {b}));
  }

  void update(const detail::StepBatch& b) const override {
    kernels::WeightDecay decay = weight_decay(b.group, o_.decouple_wd);
    float neg_lr = static_cast<float>(-b.group.lr);
    if (o_.momentum == 0.0) {
      detail::launch(kernels::SgdStep{neg_lr, decay}, b);
    } else if (o_.dampening) {
      float weight = static_cast<float>(1.0 - o_.momentum);
      detail::launch(kernels::SgdMomentumStep<true>{weight, neg_lr, decay}, b);
    } else {
      float weight = static_cast<float>(o_.momentum);
      detail::launch(kernels::SgdMomentumStep<false>{weight, neg_lr, decay}, b);
    }
  }

  std::vector<detail::Hyperparameter> hyperparameters() override {
    return {{"momentum", &o_.momentum},
            {"dampening", &o_.dampening},
            {"decouple_wd", &o_.decouple_wd},
            {"torch_init", &o_.torch_init}};
  }

 private:
  bool torch_init() const { return o_.dampening && o_.torch_init; }

  SGDOptions o_;
};

}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(one_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(std::move(groups), std::make_unique<SgdAlgorithm>(options)) {}

}  // namespace optimi::optim
