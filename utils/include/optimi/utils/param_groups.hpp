#pragma once

#include <string>
#include <vector>

#include "optimi/nn/module.hpp"
#include "optimi/optim/optimizer.hpp"

namespace optimi::utils {

// Two parameter groups, no-decay first: 1-D (and 0-D) parameters, names ending in ".bias" and
// names containing any of `additional_layers` get weight_decay 0, the rest `weight_decay`.
// Frozen parameters are left out; order follows named_parameters(). Each group sets its own
// weight_decay, so it overrides the optimizer's default.
std::vector<optim::ParamGroup> param_groups_weight_decay(
    const nn::Module& model, double weight_decay = 1e-2,
    const std::vector<std::string>& additional_layers = {});

}  // namespace optimi::utils
