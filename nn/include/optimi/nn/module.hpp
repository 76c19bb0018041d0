#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "optimi/device.hpp"
#include "optimi/dtype.hpp"
#include "optimi/tensor.hpp"

namespace optimi::nn {

// Base of every layer and model: owns named parameters, buffers and child modules, and walks them
// the way torch.nn.Module does (dotted qualified names, registration order, own tensors before
// children, shared tensors and modules listed once under the first name that reaches them).
class Module {
 public:
  Module() = default;
  virtual ~Module();
  // Layers keep Tensor members aliasing their registered tensors; a copied module would alias the
  // original's tensors and children, which is never what a copy means.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The returned reference stays valid for the module's lifetime. A non-leaf value is detached so
  // that the parameter is a leaf that accumulates gradients.
  Tensor& register_parameter(std::string name, Tensor value, bool requires_grad = true);
  Tensor& register_buffer(std::string name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> child) {
    static_assert(std::is_base_of_v<Module, M>, "register_module: M must derive from Module");
    register_child(std::move(name), child);
    return child;
  }

  // recurse = false: this module's own tensors only.
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // Pre-order, this module first under the name "".
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

  // Casts in place (Tensor::set_data), so every handle to a parameter sees the change. to(DType)
  // takes a floating-point dtype and leaves non-floating tensors alone. Gradients follow.
  Module& to(DType dtype);
  Module& to(Device device);
  Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }
  // set_to_none = false zeroes existing gradients in place instead of dropping them.
  void zero_grad(bool set_to_none = true);

  // Parameters and buffers by qualified name, as detached tensors sharing their data. Like PyTorch,
  // a tensor reachable under several names appears under each of them.
  std::map<std::string, Tensor> state_dict() const;
  // Copies values in (converting dtype and device). Shape mismatches always throw; with strict,
  // missing or unexpected keys throw too. Nothing is copied when it throws.
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

  virtual std::string type_name() const { return "Module"; }

  // Where prepare_for_gradient_release keeps the hooks it installed on a model: empty when the
  // model is not prepared.
  std::optional<std::vector<RemovableHandle>>& gradient_release_hooks() {
    return gradient_release_hooks_;
  }
  const std::optional<std::vector<RemovableHandle>>& gradient_release_hooks() const {
    return gradient_release_hooks_;
  }

 private:
  // Deques keep references returned by register_* valid as more entries are added.
  using TensorEntries = std::deque<std::pair<std::string, Tensor>>;

  void register_child(std::string name, std::shared_ptr<Module> child);
  void check_new_name(const char* op, const std::string& name) const;
  std::vector<std::pair<std::string, Tensor>> collect(TensorEntries Module::*entries,
                                                      bool recurse) const;
  // Live handles of every parameter and buffer under every name that reaches it.
  // Live handles of every parameter and buffer, under every name that reaches it.
  void add_state(const std::string& prefix, std::map<std::string, Tensor>& out) const;
  // Every distinct parameter and buffer, each once.
  std::vector<Tensor> all_tensors() const;

  TensorEntries parameters_;
  TensorEntries buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::optional<std::vector<RemovableHandle>> gradient_release_hooks_;
};

}  // namespace optimi::nn
