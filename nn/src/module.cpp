#include "optimi/nn/module.hpp"

#include <set>
#include <stdexcept>

#include "optimi/autograd.hpp"

namespace optimi::nn {
namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "'" : ", '") + name + "'";
  return out;
}

// Casts `t` and its gradient in place with `convert`.
template <class Convert>
void cast_in_place(Tensor& t, Convert convert) {
  NoGradGuard no_grad;
  t.set_data(convert(t));
  if (Tensor g = t.grad(); g.defined()) t.set_grad(convert(g));
}

}  // namespace

Module::~Module() = default;

void Module::check_new_name(const char* op, const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos) {
    throw std::invalid_argument(std::string(op) + ": name '" + name + "' must be non-empty and " +
                                "contain no '.'");
  }
  auto taken = [&](const auto& entries) {
    for (const auto& [other, value] : entries) {
      if (other == name) return true;
    }
    return false;
  };
  if (taken(parameters_) || taken(buffers_) || taken(children_)) {
    throw std::invalid_argument(std::string(op) + ": name '" + name + "' is already used in " +
                                type_name());
  }
}

Tensor& Module::register_parameter(std::string name, Tensor value, bool requires_grad) {
  check_new_name("register_parameter", name);
  if (!value.defined()) {
    throw std::invalid_argument("register_parameter: tensor '" + name + "' is undefined");
  }
  if (!value.is_leaf()) value = value.detach();
  value.requires_grad_(requires_grad);
  parameters_.emplace_back(std::move(name), std::move(value));
  return parameters_.back().second;
}

Tensor& Module::register_buffer(std::string name, Tensor value) {
  check_new_name("register_buffer", name);
  if (!value.defined()) {
    throw std::invalid_argument("register_buffer: tensor '" + name + "' is undefined");
  }
  buffers_.emplace_back(std::move(name), std::move(value));
  return buffers_.back().second;
}

void Module::register_child(std::string name, std::shared_ptr<Module> child) {
  check_new_name("register_module", name);
  if (!child) throw std::invalid_argument("register_module: module '" + name + "' is null");
  children_.emplace_back(std::move(name), std::move(child));
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  std::set<const Module*> seen;
  // Explicit recursion through a lambda keeps the pre-order of torch.nn.Module.named_modules.
  auto visit = [&](auto& self, const std::string& prefix, const Module* module) -> void {
    if (!seen.insert(module).second) return;
    out.emplace_back(prefix, module);
    for (const auto& [name, child] : module->children_) self(self, join(prefix, name), child.get());
  };
  visit(visit, "", this);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  for (const auto& [name, module] : std::as_const(*this).named_modules()) {
    out.emplace_back(name, const_cast<Module*>(module));
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::collect(TensorEntries Module::*entries,
                                                            bool recurse) const {
  std::vector<std::pair<std::string, const Module*>> modules;
  if (recurse) {
    modules = named_modules();
  } else {
    modules.emplace_back("", this);
  }
  std::vector<std::pair<std::string, Tensor>> out;
  std::set<const TensorImpl*> seen;
  for (const auto& [prefix, module] : modules) {
    for (const auto& [name, tensor] : module->*entries) {
      if (seen.insert(tensor.impl()).second) out.emplace_back(join(prefix, name), tensor);
    }
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  return collect(&Module::parameters_, recurse);
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters(recurse)) out.push_back(std::move(tensor));
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  return collect(&Module::buffers_, recurse);
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_buffers(recurse)) out.push_back(std::move(tensor));
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  std::set<const Module*> seen;
  for (const auto& [name, child] : children_) {
    if (seen.insert(child.get()).second) out.emplace_back(name, child);
  }
  return out;
}

std::vector<Tensor> Module::all_tensors() const {
  std::vector<Tensor> out = parameters();
  std::set<const TensorImpl*> seen;
  for (const auto& t : out) seen.insert(t.impl());
  for (auto& t : buffers()) {
    if (seen.insert(t.impl()).second) out.push_back(std::move(t));
  }
  return out;
}

Module& Module::to(DType dtype) {
  if (!is_floating_point(dtype)) {
    throw std::invalid_argument("Module::to: expected a floating-point dtype, got " +
                                std::string(dtype_name(dtype)));
  }
  for (Tensor& t : all_tensors()) {
    if (t.is_floating_point() && t.dtype() != dtype) {
      cast_in_place(t, [dtype](const Tensor& x) { return x.to(dtype); });
    }
  }
  return *this;
}

Module& Module::to(Device device) {
  for (Tensor& t : all_tensors()) {
    if (t.device() != device) {
      cast_in_place(t, [device](const Tensor& x) { return x.to(device); });
    }
  }
  return *this;
}

Module& Module::train(bool on) {
  for (auto& [name, module] : named_modules()) module->training_ = on;
  return *this;
}

void Module::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (Tensor& p : parameters()) {
    if (set_to_none) {
      p.set_grad(Tensor());
    } else if (Tensor g = p.grad(); g.defined()) {
      g.zero_();
    }
  }
}

void Module::add_state(const std::string& prefix, std::map<std::string, Tensor>& out) const {
  for (const auto* entries : {&parameters_, &buffers_}) {
    for (const auto& [name, tensor] : *entries) out.emplace(join(prefix, name), tensor);
  }
  for (const auto& [name, child] : children_) child->add_state(join(prefix, name), out);
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  add_state("", out);
  for (auto& [name, tensor] : out) tensor = tensor.detach();
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::map<std::string, Tensor> targets;
  add_state("", targets);

  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  for (const auto& [name, target] : targets) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
      continue;
    }
    if (!it->second.defined()) {
      throw std::invalid_argument("load_state_dict: tensor for '" + name + "' is undefined");
    }
    if (it->second.shape() != target.shape()) {
      throw std::invalid_argument("load_state_dict: shape mismatch for '" + name + "': model has " +
                                  shape_str(target.shape()) + ", state dict has " +
                                  shape_str(it->second.shape()));
    }
  }
  for (const auto& [name, value] : state) {
    if (!targets.contains(name)) unexpected.push_back(name);
  }
  if (strict && (!missing.empty() || !unexpected.empty())) {
    std::string message = "load_state_dict: error loading state dict into " + type_name();
    if (!missing.empty()) message += "; missing keys: " + join_names(missing);
    if (!unexpected.empty()) message += "; unexpected keys: " + join_names(unexpected);
    throw std::invalid_argument(message);
  }

  NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    if (auto it = state.find(name); it != state.end()) target.copy_(it->second);
  }
}

}  // namespace optimi::nn
