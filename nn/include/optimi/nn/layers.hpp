#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "optimi/nn/functional.hpp"
#include "optimi/nn/module.hpp"
#include "optimi/tensor.hpp"

// The torch.nn layers the project needs, with PyTorch's names, argument order and default
// initialisation (drawn from the global generator, so manual_seed makes models reproducible).
// Parameter members are handles to the registered tensors: they follow Module::to.
namespace optimi::nn {

// y = x W^T + b. W and b ~ U(-1/sqrt(in), 1/sqrt(in)), PyTorch's kaiming_uniform(a = sqrt(5)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "Linear"; }

  int64_t in_features;
  int64_t out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out]; undefined without bias
};

// Rows of `weight` ~ N(0, 1), gathered by Int64 indices.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  Tensor forward(const Tensor& indices) const;
  Tensor operator()(const Tensor& indices) const { return forward(indices); }
  std::string type_name() const override { return "Embedding"; }

  int64_t num_embeddings;
  int64_t embedding_dim;
  Tensor weight;  // [num, dim]
};

// Normalises the last dimension; weight ones and bias zeros when elementwise_affine.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "LayerNorm"; }

  int64_t normalized_shape;
  double eps;
  bool elementwise_affine;
  Tensor weight;  // [dim]; undefined without elementwise_affine
  Tensor bias;    // [dim]; undefined without elementwise_affine
};

class Mish : public Module {
 public:
  Tensor forward(const Tensor& x) const { return functional::mish(x); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "Mish"; }
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return functional::relu(x); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "ReLU"; }
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return functional::silu(x); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "SiLU"; }
};

class GELU : public Module {
 public:
  explicit GELU(functional::GeluApproximation approximate = functional::GeluApproximation::None)
      : approximate(approximate) {}
  // PyTorch's spelling: "none" or "tanh".
  explicit GELU(std::string_view approximate);
  Tensor forward(const Tensor& x) const { return functional::gelu(x, approximate); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "GELU"; }

  functional::GeluApproximation approximate;
};

// Inverted dropout while training, identity in eval mode.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) const { return functional::dropout(x, p, is_training()); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "Dropout"; }

  double p;
};

template <class M>
concept TensorModule = std::derived_from<M, Module> && requires(M& m, const Tensor& x) {
  { m.forward(x) } -> std::convertible_to<Tensor>;
};

// Children "0", "1", ... applied in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  template <TensorModule... Ms>
  explicit Sequential(std::shared_ptr<Ms>... modules) {
    (push_back(std::move(modules)), ...);
  }

  template <TensorModule M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    register_module(std::to_string(modules_.size()), module);
    modules_.push_back(module);
    // The concrete type is known only here, so the call to its forward is captured here.
    forwards_.push_back([module](const Tensor& x) { return module->forward(x); });
    return module;
  }
  size_t size() const { return modules_.size(); }
  const std::shared_ptr<Module>& operator[](size_t index) const;

  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string type_name() const override { return "Sequential"; }

 private:
  std::vector<std::shared_ptr<Module>> modules_;
  std::vector<std::function<Tensor(const Tensor&)>> forwards_;
};

// Children "0", "1", ... that the owner calls itself (no forward of its own, as in PyTorch).
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    register_module(std::to_string(modules_.size()), module);
    modules_.push_back(module);
    return module;
  }
  size_t size() const { return modules_.size(); }
  const std::shared_ptr<Module>& operator[](size_t index) const;
  // The module at `index` as an M; throws std::invalid_argument when it is not one.
  template <class M>
  std::shared_ptr<M> at(size_t index) const {
    auto module = std::dynamic_pointer_cast<M>((*this)[index]);
    if (!module) throw_wrong_type(index);
    return module;
  }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }
  std::string type_name() const override { return "ModuleList"; }

 private:
  [[noreturn]] void throw_wrong_type(size_t index) const;

  std::vector<std::shared_ptr<Module>> modules_;
};

}  // namespace optimi::nn
