#pragma once

#include <memory>
#include <string>
#include <vector>

#include <optimi/optimi.hpp>

// --optimizer NAME to one of optimi's eight optimizers, configured the way the optimi
// documentation recommends: fully decoupled weight decay unless --no-decouple-lr, Kahan summation
// for low-precision parameters unless --no-kahan.
namespace minilm {

struct OptimizerSettings {
  std::string name;
  double lr;
  double weight_decay;
  bool decouple_lr;
  bool kahan;
  bool gradient_release;
};

std::unique_ptr<optimi::optim::Optimizer> make_optimizer(
    const OptimizerSettings& settings, std::vector<optimi::optim::ParamGroup> groups);

}  // namespace minilm
