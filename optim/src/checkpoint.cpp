#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "optim/src/optimizer_impl.hpp"
#include "optimi/nn/safetensors.hpp"

// Optimizer checkpoints as safetensors files: state buffers as tensors, everything else in
// __metadata__ as JSON strings (spec decision 10).
namespace optimi::optim {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "optimi.optimizer";
constexpr const char* kVersion = "1";

std::string state_key(size_t param, const std::string& buffer) {
  return "state." + std::to_string(param) + "." + buffer;
}

// The hyperparameters a checkpoint restores: the common ones that outlive construction, then
// the optimizer's own.
std::vector<detail::Hyperparameter> hyperparameters(detail::Algorithm& a) {
  std::vector<detail::Hyperparameter> all = {{"decouple_lr", &a.common.decouple_lr},
                                             {"max_lr", &a.common.max_lr}};
  for (auto& h : a.hyperparameters()) all.push_back(std::move(h));
  return all;
}

json value_of(const detail::Hyperparameter& h) {
  return std::visit(
      [](auto* p) -> json {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::optional<double>>) {
          return *p ? json(**p) : json(nullptr);
        } else {
          return json(*p);
        }
      },
      h.value);
}

void assign(const detail::Hyperparameter& h, const json& j) {
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::optional<double>>) {
          *p = j.is_null() ? std::nullopt : std::optional<double>(j.get<double>());
        } else {
          *p = j.get<T>();
        }
      },
      h.value);
}

}  // namespace

void Optimizer::save(const std::filesystem::path& path) const {
  const Impl& s = *impl_;
  std::map<std::string, Tensor> tensors;
  json params = json::array(), groups = json::array(), states = json::array(),
       hyper = json::object();
  for (size_t i = 0; i < s.params.size(); ++i) {
    const Tensor& p = s.params[i];
    params.push_back({{"shape", p.shape()},
                      {"dtype", std::string(dtype_name(p.dtype()))},
                      {"group", s.group_of[i]}});
    const detail::ParamState& st = s.states[i];
    states.push_back(
        {{"initialized", st.initialized}, {"step", st.step}, {"kahan", st.kahan_comp.defined()}});
    if (!st.initialized) continue;
    std::vector<std::string> names = s.algorithm->buffers();
    for (size_t b = 0; b < names.size(); ++b) tensors[state_key(i, names[b])] = st.buffers[b];
    if (st.kahan_comp.defined()) tensors[state_key(i, "kahan_comp")] = st.kahan_comp;
  }
  for (const detail::GroupState& g : s.groups) {
    groups.push_back({{"lr", g.lr},
                      {"weight_decay", g.weight_decay},
                      {"kahan_sum", g.kahan_sum ? json(*g.kahan_sum) : json(nullptr)},
                      {"step", g.step}});
  }
  for (const auto& h : hyperparameters(*s.algorithm)) hyper[h.name] = value_of(h);
  nn::save_safetensors(path, tensors,
                       {{"format", kFormat},
                        {"version", kVersion},
                        {"optimizer", std::string(name())},
                        {"params", params.dump()},
                        {"groups", groups.dump()},
                        {"state", states.dump()},
                        {"hyperparameters", hyper.dump()}});
}

void Optimizer::load(const std::filesystem::path& path) {
  Impl& s = *impl_;
  const std::string where = "Optimizer::load: " + path.string();
  nn::SafetensorsFile file = nn::load_safetensors(path);
  auto corrupt = [&](const std::string& why) { return std::runtime_error(where + ": " + why); };
  auto meta = [&](const char* key) -> const std::string& {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw corrupt(std::string("no \"") + key + "\" metadata");
    return it->second;
  };
  if (meta("format") != kFormat || meta("version") != kVersion) {
    throw corrupt("not an optimi-cpp optimizer checkpoint (format version " +
                  std::string(kVersion) + ")");
  }
  if (meta("optimizer") != name()) {
    throw std::invalid_argument(where + " holds a " + meta("optimizer") + " optimizer, not " +
                                std::string(name()));
  }

  std::vector<detail::Hyperparameter> hyper = hyperparameters(*s.algorithm);
  std::vector<json> previous;
  for (const auto& h : hyper) previous.push_back(value_of(h));
  auto restore_hyperparameters = [&] {
    for (size_t h = 0; h < hyper.size(); ++h) assign(hyper[h], previous[h]);
  };
  std::vector<detail::GroupState> groups = s.groups;
  std::vector<detail::ParamState> states(s.params.size());
  try {
    json params = json::parse(meta("params"));
    json saved_groups = json::parse(meta("groups"));
    json saved_states = json::parse(meta("state"));
    json saved_hyper = json::parse(meta("hyperparameters"));
    if (params.size() != s.params.size()) {
      throw std::invalid_argument(where + " holds " + std::to_string(params.size()) +
                                  " parameters, this optimizer has " +
                                  std::to_string(s.params.size()));
    }
    if (saved_groups.size() != s.groups.size()) {
      throw std::invalid_argument(where + " holds " + std::to_string(saved_groups.size()) +
                                  " parameter groups, this optimizer has " +
                                  std::to_string(s.groups.size()));
    }
    for (size_t i = 0; i < s.params.size(); ++i) {
      const Tensor& p = s.params[i];
      const std::string param = "parameter " + std::to_string(i);
      auto group = params.at(i).at("group").get<size_t>();
      if (group != s.group_of[i]) {
        throw std::invalid_argument(where + ": " + param + " is in group " + std::to_string(group) +
                                    " there, in group " + std::to_string(s.group_of[i]) + " here");
      }
      auto shape = params.at(i).at("shape").get<Shape>();
      if (shape != p.shape()) {
        throw std::invalid_argument(where + ": " + param + " has shape " + shape_str(shape) +
                                    " there, " + shape_str(p.shape()) + " here");
      }
      auto dtype = params.at(i).at("dtype").get<std::string>();
      if (dtype != dtype_name(p.dtype())) {
        throw std::invalid_argument(where + ": " + param + " has dtype " + dtype + " there, " +
                                    std::string(dtype_name(p.dtype())) + " here");
      }
    }
    for (size_t g = 0; g < groups.size(); ++g) {
      const json& j = saved_groups.at(g);
      groups[g].lr = j.at("lr").get<double>();
      groups[g].weight_decay = j.at("weight_decay").get<double>();
      groups[g].kahan_sum =
          j.at("kahan_sum").is_null() ? std::nullopt : std::optional(j.at("kahan_sum").get<bool>());
      groups[g].step = j.at("step").get<int64_t>();
    }
    // The buffers an optimizer keeps can depend on its options (SGD's momentum).
    for (const auto& h : hyper) assign(h, saved_hyper.at(h.name));
    // A file's values get the checks the constructor's got: a bad one would fail mid-training.
    try {
      s.algorithm->validate();
      for (size_t g = 0; g < groups.size(); ++g) {
        detail::check_group(groups[g].lr, groups[g].weight_decay,
                            " in param group " + std::to_string(g));
      }
    } catch (const std::invalid_argument& e) {
      throw corrupt(e.what());
    }
    const std::vector<std::string> names = s.algorithm->buffers();
    auto take = [&](size_t i, const std::string& buffer) {
      auto it = file.tensors.find(state_key(i, buffer));
      if (it == file.tensors.end()) throw corrupt("missing tensor " + state_key(i, buffer));
      const Tensor& p = s.params[i];
      if (it->second.shape() != p.shape() || it->second.dtype() != p.dtype()) {
        throw corrupt("tensor " + state_key(i, buffer) + " is " + it->second.str() +
                      ", its parameter " + p.str());
      }
      return it->second.to(p.device());
    };
    for (size_t i = 0; i < states.size(); ++i) {
      const json& j = saved_states.at(i);
      detail::ParamState& st = states[i];
      st.initialized = j.at("initialized").get<bool>();
      st.step = j.at("step").get<int64_t>();
      if (!st.initialized) continue;
      for (const std::string& b : names) st.buffers.push_back(take(i, b));
      if (j.at("kahan").get<bool>()) st.kahan_comp = take(i, "kahan_comp");
    }
  } catch (const json::exception& e) {
    restore_hyperparameters();
    throw corrupt(std::string("malformed metadata: ") + e.what());
  } catch (...) {
    restore_hyperparameters();
    throw;
  }
  // Per-parameter state refers to groups by position, so it stays linked to the live groups and
  // their schedules (spec decision 6).
  s.groups = std::move(groups);
  s.states = std::move(states);
}

}  // namespace optimi::optim
