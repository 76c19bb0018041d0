#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "optimi/optim.hpp"

// Builds any of the eight optimizers from optimi's option names (the golden files' format).
namespace optimi::testing {

inline const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names = {"SGD",  "Adam",  "AdamW",  "Adan",
                                                 "Lion", "RAdam", "Ranger", "StableAdamW"};
  return names;
}

template <class O>
O options_from_json(const nlohmann::json& j, bool gradient_release) {
  O o;
  size_t used = 0;
  auto take = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    ++used;
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, std::optional<bool>>) {
      field = j[key].is_null() ? std::nullopt : std::optional<bool>(j[key].get<bool>());
    } else if constexpr (std::is_same_v<T, std::optional<double>>) {
      field = j[key].is_null() ? std::nullopt : std::optional<double>(j[key].get<double>());
    } else if constexpr (requires { field.size(); }) {
      if (j[key].size() != field.size()) throw std::invalid_argument("betas of the wrong length");
      for (size_t i = 0; i < field.size(); ++i) field[i] = j[key][i].get<double>();
    } else {
      field = j[key].get<T>();
    }
  };
  take("lr", o.lr);
  take("weight_decay", o.weight_decay);
  take("decouple_lr", o.decouple_lr);
  take("max_lr", o.max_lr);
  take("kahan_sum", o.kahan_sum);
  if constexpr (requires { o.betas; }) take("betas", o.betas);
  if constexpr (requires { o.eps; }) take("eps", o.eps);
  if constexpr (requires { o.momentum; }) take("momentum", o.momentum);
  if constexpr (requires { o.dampening; }) take("dampening", o.dampening);
  if constexpr (requires { o.torch_init; }) take("torch_init", o.torch_init);
  if constexpr (requires { o.decouple_wd; }) take("decouple_wd", o.decouple_wd);
  if constexpr (requires { o.adam_wd; }) take("adam_wd", o.adam_wd);
  if constexpr (requires { o.k; }) take("k", o.k);
  if constexpr (requires { o.alpha; }) take("alpha", o.alpha);
  if (used != j.size()) throw std::invalid_argument("unknown option in " + j.dump());
  o.gradient_release = gradient_release;
  return o;
}

inline std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name,
                                                        const nlohmann::json& options,
                                                        std::vector<optim::ParamGroup> groups,
                                                        bool gradient_release = false) {
  using namespace optim;
  auto make = [&]<class Opt, class O>() -> std::unique_ptr<Optimizer> {
    return std::make_unique<Opt>(std::move(groups),
                                 options_from_json<O>(options, gradient_release));
  };
  if (name == "SGD") return make.operator()<SGD, SGDOptions>();
  if (name == "Adam") return make.operator()<Adam, AdamOptions>();
  if (name == "AdamW") return make.operator()<AdamW, AdamWOptions>();
  if (name == "Adan") return make.operator()<Adan, AdanOptions>();
  if (name == "Lion") return make.operator()<Lion, LionOptions>();
  if (name == "RAdam") return make.operator()<RAdam, RAdamOptions>();
  if (name == "Ranger") return make.operator()<Ranger, RangerOptions>();
  if (name == "StableAdamW") return make.operator()<StableAdamW, StableAdamWOptions>();
  throw std::invalid_argument("unknown optimizer " + name);
}

inline std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name,
                                                        const nlohmann::json& options,
                                                        std::vector<Tensor> params,
                                                        bool gradient_release = false) {
  return make_optimizer(name, options, std::vector<optim::ParamGroup>{{std::move(params)}},
                        gradient_release);
}

}  // namespace optimi::testing
