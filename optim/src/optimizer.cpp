#include "optimi/optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "optim/src/optimizer_impl.hpp"
#include "optim/src/python_format.hpp"
#include "optimi/autograd.hpp"
#include "optimi/warning.hpp"

namespace optimi::optim {
namespace {

bool low_precision(DType d) {
  return d == DType::BFloat16 || d == DType::Float16;
}

// Fully decoupled weight decay is not scaled by the lr: one warning for the largest value of
// concern across groups (spec 1.2).
void warn_high_weight_decay(const detail::CommonOptions& c,
                            const std::vector<detail::GroupState>& groups) {
  if (!c.decouple_lr) return;
  double highest = -1.0;
  for (const auto& g : groups) {
    if (g.weight_decay >= 1e-3) highest = std::max(highest, g.weight_decay);
  }
  if (highest < 0.0) return;
  warn("You are using weight_decay up to " + detail::python_float(highest) +
       " which is potentially high for decouple_lr=True. Unlike decoupled weight decay, fully "
       "decoupled weight decay does not reduce weight decay by the learning rate.");
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, std::unique_ptr<detail::Algorithm> algorithm)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.algorithm = std::move(algorithm);
  detail::CommonOptions& c = s.algorithm->common;
  if (c.decouple_lr && !c.max_lr) c.max_lr = c.lr;
  s.algorithm->validate();
  if (groups.empty()) throw std::invalid_argument("optimizer got an empty parameter list");
  for (ParamGroup& pg : groups) {
    detail::GroupState g;
    g.lr = pg.lr.value_or(c.lr);
    g.weight_decay = pg.weight_decay.value_or(c.weight_decay);
    detail::check_group(g.lr, g.weight_decay, " in param group " + std::to_string(s.groups.size()));
    g.kahan_sum = c.kahan_sum;
    for (Tensor& p : pg.params) {
      if (!p.defined()) throw std::invalid_argument("optimizer got an undefined tensor");
      if (!p.is_floating_point()) {
        throw std::invalid_argument("optimizer can only optimize floating-point tensors, got " +
                                    p.str());
      }
      if (!p.is_leaf()) throw std::invalid_argument("can't optimize a non-leaf Tensor");
      size_t i = s.params.size();
      if (!s.index.emplace(p.impl(), i).second) {
        throw std::invalid_argument(
            "some parameters appear more than once in the parameter groups");
      }
      s.params.push_back(p);
      s.group_of.push_back(s.groups.size());
      g.indices.push_back(i);
      g.params.push_back(std::move(p));
    }
    s.groups.push_back(std::move(g));
  }
  s.states.resize(s.params.size());
  warn_high_weight_decay(c, s.groups);
}

Optimizer::~Optimizer() = default;

std::vector<ParamGroup> Optimizer::one_group(std::vector<Tensor> params) {
  if (params.empty()) return {};
  return {ParamGroup{std::move(params), std::nullopt, std::nullopt}};
}

detail::GroupState& Optimizer::Impl::group(size_t g, const char* op) {
  if (g >= groups.size()) {
    throw std::invalid_argument(std::string(op) + ": group " + std::to_string(g) +
                                " out of range for " + std::to_string(groups.size()) + " groups");
  }
  return groups[g];
}

size_t Optimizer::Impl::index_of(const Tensor& param, const std::string& op) const {
  auto it = param.defined() ? index.find(param.impl()) : index.end();
  if (it == index.end()) {
    throw std::invalid_argument(op + ": the tensor is not one of this optimizer's parameters");
  }
  return it->second;
}

detail::ParamStep Optimizer::Impl::prepare(size_t i, Tensor grad) {
  detail::ParamStep step{params[i], std::move(grad), &states[i]};
  detail::ParamState& st = states[i];
  if (st.initialized) return step;
  detail::GroupState& g = groups[group_of[i]];
  st.buffers.assign(algorithm->buffers().size(), Tensor());
  algorithm->init_buffers(g, step);
  if (low_precision(step.param.dtype()) && g.kahan_sum.value_or(true)) {
    st.kahan_comp = Tensor::zeros(step.param.shape(), step.param.dtype(), step.param.device());
    g.kahan_sum = true;
  }
  st.initialized = true;
  return step;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  Impl& s = *impl_;
  for (detail::GroupState& g : s.groups) {
    std::vector<detail::ParamStep> live;
    for (size_t i : g.indices) {
      Tensor grad = s.params[i].grad();
      if (grad.defined()) live.push_back(s.prepare(i, std::move(grad)));
    }
    if (s.algorithm->counts_steps()) ++g.step;
    if (!live.empty()) s.algorithm->update({g, std::move(live), g.step, true});
  }
}

void Optimizer::step(const Tensor& param) {
  NoGradGuard no_grad;
  Impl& s = *impl_;
  std::string op = std::string(name()) + ".step(param)";
  if (!s.algorithm->common.gradient_release) {
    throw std::invalid_argument(op + ": the optimizer was not built with gradient_release = true");
  }
  const size_t i = s.index_of(param, op);
  Tensor grad = param.grad();
  if (!grad.defined()) throw std::invalid_argument(op + ": the parameter has no gradient");
  detail::ParamStep p = s.prepare(i, std::move(grad));
  int64_t t = s.algorithm->counts_steps() ? ++s.states[i].step : 0;
  s.algorithm->update({s.groups[s.group_of[i]], {p}, t, !s.accumulation});
}

namespace {

void reset_grad(Tensor param, bool set_to_none) {
  Tensor grad = param.grad();
  if (!grad.defined()) return;
  if (set_to_none) {
    param.set_grad(Tensor());
  } else {
    grad.zero_();
  }
}

}  // namespace

void Optimizer::zero_grad(bool set_to_none) {
  for (const Tensor& p : impl_->params) reset_grad(p, set_to_none);
}

void Optimizer::zero_grad(const Tensor& param, bool set_to_none) {
  impl_->index_of(param, std::string(name()) + ".zero_grad(param)");
  reset_grad(param, set_to_none);
}

bool Optimizer::gradient_release() const {
  return impl_->algorithm->common.gradient_release;
}
bool Optimizer::optimizer_accumulation() const {
  return impl_->accumulation;
}
void Optimizer::set_optimizer_accumulation(bool on) {
  impl_->accumulation = on;
}

size_t Optimizer::num_param_groups() const {
  return impl_->groups.size();
}
const std::vector<Tensor>& Optimizer::group_params(size_t g) const {
  return impl_->group(g, "Optimizer::group_params").params;
}
double Optimizer::lr(size_t g) const {
  return impl_->group(g, "Optimizer::lr").lr;
}
void Optimizer::set_lr(size_t g, double lr) {
  detail::GroupState& group = impl_->group(g, "Optimizer::set_lr");
  detail::check_rate("learning rate", "lr", lr, " in Optimizer::set_lr");
  group.lr = lr;
}
double Optimizer::weight_decay(size_t g) const {
  return impl_->group(g, "Optimizer::weight_decay").weight_decay;
}
void Optimizer::set_weight_decay(size_t g, double wd) {
  detail::GroupState& group = impl_->group(g, "Optimizer::set_weight_decay");
  detail::check_rate("weight decay", "weight_decay", wd, " in Optimizer::set_weight_decay");
  group.weight_decay = wd;
}

std::string_view Optimizer::name() const {
  return impl_->algorithm->name();
}

}  // namespace optimi::optim
