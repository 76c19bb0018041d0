#include "optimi/utils/param_groups.hpp"

#include <cmath>
#include <stdexcept>

namespace optimi::utils {

std::vector<optim::ParamGroup> param_groups_weight_decay(
    const nn::Module& model, double weight_decay,
    const std::vector<std::string>& additional_layers) {
  if (!(weight_decay >= 0.0) || std::isinf(weight_decay))
    throw std::invalid_argument("param_groups_weight_decay: invalid weight_decay " +
                                std::to_string(weight_decay));
  std::vector<Tensor> no_decay, decay;
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p.requires_grad()) continue;
    bool excluded = p.dim() <= 1 || name.ends_with(".bias");
    for (const std::string& layer : additional_layers)
      excluded = excluded || name.find(layer) != std::string::npos;
    (excluded ? no_decay : decay).push_back(p);
  }
  return {optim::ParamGroup{std::move(no_decay), std::nullopt, 0.0},
          optim::ParamGroup{std::move(decay), std::nullopt, weight_decay}};
}

}  // namespace optimi::utils
