#include "optimizers.hpp"

#include <stdexcept>

namespace minilm {
namespace {

namespace optim = optimi::optim;

// Every Options aggregate has these fields; the rest keep optimi's defaults.
template <class Options>
Options common(const OptimizerSettings& s) {
  Options o;
  o.lr = s.lr;
  o.weight_decay = s.weight_decay;
  o.decouple_lr = s.decouple_lr;
  o.kahan_sum = s.kahan;
  o.gradient_release = s.gradient_release;
  return o;
}

template <class O, class Options>
std::unique_ptr<optim::Optimizer> build(std::vector<optim::ParamGroup> groups, Options options) {
  return std::make_unique<O>(std::move(groups), options);
}

}  // namespace

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerSettings& s,
                                                 std::vector<optim::ParamGroup> groups) {
  if (s.name == "sgd") {
    auto o = common<optim::SGDOptions>(s);
    o.momentum = 0.9;  // plain SGD would make a poor showing
    return build<optim::SGD>(std::move(groups), o);
  }
  if (s.name == "adam") return build<optim::Adam>(std::move(groups), common<optim::AdamOptions>(s));
  if (s.name == "adamw")
    return build<optim::AdamW>(std::move(groups), common<optim::AdamWOptions>(s));
  if (s.name == "adan") return build<optim::Adan>(std::move(groups), common<optim::AdanOptions>(s));
  if (s.name == "lion") return build<optim::Lion>(std::move(groups), common<optim::LionOptions>(s));
  if (s.name == "radam")
    return build<optim::RAdam>(std::move(groups), common<optim::RAdamOptions>(s));
  if (s.name == "ranger")
    return build<optim::Ranger>(std::move(groups), common<optim::RangerOptions>(s));
  if (s.name == "stableadamw")
    return build<optim::StableAdamW>(std::move(groups), common<optim::StableAdamWOptions>(s));
  throw std::invalid_argument("unknown optimizer '" + s.name + "'");
}

}  // namespace minilm
