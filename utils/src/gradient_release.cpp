#include "optimi/utils/gradient_release.hpp"

#include <stdexcept>

#include "optimi/warning.hpp"

namespace optimi::utils {

void prepare_for_gradient_release(nn::Module& model, optim::Optimizer& optimizer,
                                  bool ignore_existing_hooks) {
  if (!optimizer.gradient_release())
    throw std::invalid_argument(
        "prepare_for_gradient_release: `optimizer` must be initialized with "
        "`gradient_release=True`");
  std::vector<RemovableHandle> handles;
  for (Tensor& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    if (p.has_post_accumulate_grad_hooks() && !ignore_existing_hooks) {
      for (RemovableHandle& h : handles) h.remove();
      throw std::invalid_argument(
          "prepare_for_gradient_release: Model already has post_accumulate_grad_hooks. If this is "
          "expected, rerun with `ignore_existing_hooks=True`.");
    }
    handles.push_back(p.register_post_accumulate_grad_hook([&optimizer](Tensor& param) {
      optimizer.step(param);
      optimizer.zero_grad(param);
    }));
  }
  model.gradient_release_hooks() = std::move(handles);
}

void remove_gradient_release(nn::Module& model) {
  auto& hooks = model.gradient_release_hooks();
  if (!hooks) {
    warn("`model` does not have any gradient release post_accumulate_grad_hooks to remove.");
    return;
  }
  for (RemovableHandle& h : *hooks) h.remove();
  hooks.reset();
}

}  // namespace optimi::utils
