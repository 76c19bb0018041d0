#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "optimi/nn/layers.hpp"
#include "optimi/nn/module.hpp"

namespace optimi::utils {

// A set of module types matched like Python's isinstance: subclasses match too.
class ModuleTypes {
 public:
  ModuleTypes() = default;
  bool matches(const nn::Module& m) const;
  bool empty() const { return checks_.empty(); }

  template <class... M>
  friend ModuleTypes module_types();

 private:
  std::vector<std::function<bool(const nn::Module&)>> checks_;
};

template <class... M>
ModuleTypes module_types() {
  static_assert((std::is_base_of_v<nn::Module, M> && ...),
                "module_types: every M must derive from nn::Module");
  ModuleTypes t;
  (t.checks_.push_back([](const nn::Module& m) { return dynamic_cast<const M*>(&m) != nullptr; }),
   ...);
  return t;
}

// Which modules keep their buffers in float32: those whose qualified name contains a keyword
// (compared lower-cased against the name as written; inherited by descendants, whose names
// contain their ancestors'), and those of the given types (not inherited).
class Fp32Buffers {
 public:
  Fp32Buffers() = default;  // none
  Fp32Buffers(std::initializer_list<std::string> keywords)
      : Fp32Buffers(std::vector<std::string>(keywords)) {}
  Fp32Buffers(ModuleTypes types) : types_(std::move(types)) {}
  Fp32Buffers(std::vector<std::string> keywords, ModuleTypes types = {});

  bool matches(const std::string& qualified_name, const nn::Module& m) const;

 private:
  std::vector<std::string> keywords_;  // lower-cased
  ModuleTypes types_;
};

struct LowPrecisionOptions {
  DType dtype = DType::BFloat16;
  std::optional<Device> device = std::nullopt;
  ModuleTypes fp32_modules = module_types<nn::Embedding>();
  Fp32Buffers fp32_buffers = {"rope", "rotary"};  // {} keeps no buffer in float32
};

// Casts the model's floating parameters and buffers to `dtype` in place, except the parameters
// of `fp32_modules` and the buffers `fp32_buffers` selects (and those of fp32_modules), which are
// cast to float32. Non-floating tensors are never cast, only moved to `device`. Parameter
// identity survives; gradients are not converted. Returns the model.
nn::Module& to_low_precision(nn::Module& model, const LowPrecisionOptions& options = {});

}  // namespace optimi::utils
