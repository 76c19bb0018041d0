#pragma once

#include "optimi/nn/module.hpp"
#include "optimi/optim/optimizer.hpp"

namespace optimi::utils {

// Registers, on every trainable parameter, a post-accumulate-grad hook that steps the optimizer
// for that parameter and frees its gradient, so backward releases gradients layer by layer.
// Throws std::invalid_argument when the optimizer was built without gradient_release, or when a
// parameter already has such hooks and ignore_existing_hooks is false (after removing the hooks
// this call registered). The optimizer must outlive the hooks.
void prepare_for_gradient_release(nn::Module& model, optim::Optimizer& optimizer,
                                  bool ignore_existing_hooks = false);
// Removes the hooks prepare_for_gradient_release installed; warns when there are none.
void remove_gradient_release(nn::Module& model);

}  // namespace optimi::utils
