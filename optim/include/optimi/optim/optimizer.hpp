#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "optimi/tensor.hpp"

namespace optimi::optim {

// Group overrides get the checks of the defaults (non-negative and finite), which optimi skips.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr = std::nullopt;            // unset: the optimizer's default
  std::optional<double> weight_decay = std::nullopt;  // unset: the optimizer's default
};

namespace detail {
class Algorithm;
}

// Base of every optimizer: parameter groups, per-parameter state created on a parameter's first
// step, step counters, gradient release, optimizer accumulation and checkpoints. Each optimizer
// contributes its algorithm: options, state buffers and the fused per-parameter update.
class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;  // gradient-release hooks refer to the optimizer itself
  Optimizer& operator=(const Optimizer&) = delete;

  // Steps every parameter that has a gradient. Each group's step counter (optimizers that
  // debias) advances on every call, even when none of its parameters has a gradient, as in
  // optimi; under gradient release the hooks have freed the gradients, so nothing else changes.
  void step();
  // Gradient release: steps one parameter, called from its post-accumulate-grad hook, with the
  // parameter's own step counter. With optimizer accumulation on, only the state absorbs the
  // gradient. Requires gradient_release = true.
  void step(const Tensor& param);
  void zero_grad(bool set_to_none = true);
  // set_to_none = false sets the gradient to zeros.
  void zero_grad(const Tensor& param, bool set_to_none = true);

  bool gradient_release() const;
  bool optimizer_accumulation() const;
  void set_optimizer_accumulation(bool);

  size_t num_param_groups() const;
  const std::vector<Tensor>& group_params(size_t group) const;
  double lr(size_t group) const;
  void set_lr(size_t group, double);
  double weight_decay(size_t group) const;
  void set_weight_decay(size_t group, double);

  // A safetensors file: every state buffer as "state.<parameter index>.<buffer>" (parameters
  // numbered in group order), and in __metadata__ the optimizer type, parameter shapes and dtypes,
  // hyperparameters and step counters. An optimizer of the same type over parameters of the same
  // shapes and dtypes continues bit-identically after load; another one is rejected with
  // std::invalid_argument naming the difference. A malformed file throws std::runtime_error.
  void save(const std::filesystem::path&) const;
  void load(const std::filesystem::path&);

  std::string_view name() const;  // "AdamW", ...

 protected:
  Optimizer(std::vector<ParamGroup> groups, std::unique_ptr<detail::Algorithm> algorithm);
  // A plain parameter list as groups: one group, or none when empty (which the base rejects).
  static std::vector<ParamGroup> one_group(std::vector<Tensor> params);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace optimi::optim
