#include "optim/src/algorithm.hpp"

#include <cmath>

namespace optimi::optim::detail {

void Algorithm::init_buffers(const GroupState&, const ParamStep& p) const {
  for (Tensor& b : p.state->buffers) {
    b = Tensor::zeros(p.param.shape(), p.param.dtype(), p.param.device());
  }
}

void Algorithm::validate() const {
  check_options();
  check_rate("learning rate", "lr", common.lr, std::isnan(common.lr) ? " (lr is required)" : "");
  check_rate("weight decay", "weight_decay", common.weight_decay);
  if (common.max_lr) {
    check_rate("maximum learning rate", "max_lr", *common.max_lr);
  } else if (common.decouple_lr) {
    throw std::invalid_argument("Invalid maximum learning rate: decouple_lr=True without max_lr");
  }
}

double Algorithm::decay_rate(double lr, double weight_decay) const {
  return common.decouple_lr ? (lr / *common.max_lr) * weight_decay : lr * weight_decay;
}

kernels::WeightDecay Algorithm::weight_decay(const GroupState& g, bool decoupled) const {
  kernels::WeightDecay decay;
  if (g.weight_decay == 0.0) return decay;
  if (common.decouple_lr || decoupled) {
    double factor = 1.0 - decay_rate(g.lr, g.weight_decay);
    if (factor != 0.0) decay.factor = static_cast<float>(factor);
  } else {
    decay.l2 = static_cast<float>(g.weight_decay);
  }
  return decay;
}

double debias_beta(double beta, int64_t t) {
  double beta_t = std::pow(beta, static_cast<double>(t));
  return (beta_t - beta) / (beta_t - 1.0);
}

kernels::AdamMoments adam_moments(double beta1, double beta2, int64_t t) {
  double beta2_hat = debias_beta(beta2, t);
  return {static_cast<float>(1.0 - debias_beta(beta1, t)), static_cast<float>(beta2_hat),
          static_cast<float>(1.0 - beta2_hat)};
}

std::optional<double> rectification(double beta2, int64_t t) {
  double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
  double beta2_t = std::pow(beta2, static_cast<double>(t));
  double rho = rho_inf - 2.0 * static_cast<double>(t) * beta2_t / (1.0 - beta2_t);
  if (!(rho > 5.0)) return std::nullopt;
  return std::sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho));
}

namespace {

void check_matches(const char* what, const Tensor& t, const Tensor& param) {
  if (t.shape() != param.shape()) {
    throw std::invalid_argument(std::string("optimizer step: ") + what + " shape " +
                                shape_str(t.shape()) + " does not match the parameter's " +
                                shape_str(param.shape()));
  }
  if (t.dtype() != param.dtype()) {
    throw std::invalid_argument(
        std::string("optimizer step: ") + what + " dtype " + std::string(dtype_name(t.dtype())) +
        " does not match the parameter's " + std::string(dtype_name(param.dtype())) +
        " (build the optimizer after casting the model)");
  }
  if (t.device() != param.device()) {
    throw std::invalid_argument(std::string("optimizer step: ") + what + " is on " +
                                t.device().str() + ", the parameter on " + param.device().str());
  }
}

}  // namespace

namespace {

kernels::KernelArgs pack(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state,
                         const Tensor& kahan_comp, bool update, KernelLaunch& k) {
  if (!param.is_contiguous()) {
    throw std::invalid_argument("optimizer step: parameters must be contiguous, got " +
                                param.str());
  }
  if (param.device() != k.device) {
    throw std::invalid_argument("optimizer step: parameters of one group on " + k.device.str() +
                                " and " + param.device().str());
  }
  check_matches("gradient", grad, param);
  kernels::KernelArgs a;
  a.dtype = param.dtype();
  a.numel = param.numel();
  a.param = param.data_ptr();
  if (grad.is_contiguous()) {
    a.grad = grad.data_ptr();
  } else {
    k.contiguous_grads.push_back(grad.contiguous());
    a.grad = k.contiguous_grads.back().data_ptr();
  }
  for (size_t i = 0; i < state.size(); ++i) {
    if (!state[i].defined()) throw std::runtime_error("optimizer step: a state buffer is missing");
    check_matches("state buffer", state[i], param);
    a.state[i] = state[i].data_ptr();
  }
  if (kahan_comp.defined()) {
    check_matches("Kahan compensation buffer", kahan_comp, param);
    a.kahan = kahan_comp.data_ptr();
  }
  a.update = update;
  return a;
}

}  // namespace

KernelLaunch prepare_launch(const StepBatch& b) {
  KernelLaunch k;
  if (!b.params.empty()) k.device = b.params.front().param.device();
  for (const ParamStep& p : b.params) {
    k.tensors.push_back(pack(p.param, p.grad, p.state->buffers, p.state->kahan_comp, b.update, k));
  }
  return k;
}

KernelLaunch prepare_launch(const Tensor& param, const Tensor& grad,
                            const std::vector<Tensor>& state) {
  KernelLaunch k;
  k.device = param.device();
  k.tensors.push_back(pack(param, grad, state, Tensor(), true, k));
  return k;
}

}  // namespace optimi::optim::detail
