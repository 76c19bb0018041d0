#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "optim/src/algorithm.hpp"
#include "optimi/optim/optimizer.hpp"

namespace optimi::optim {

// The state behind an Optimizer, shared by its stepping (optimizer.cpp) and its checkpoints
// (checkpoint.cpp).
struct Optimizer::Impl {
  std::unique_ptr<detail::Algorithm> algorithm;
  std::vector<detail::GroupState> groups;
  std::vector<Tensor> params;                           // every parameter, in group order
  std::vector<size_t> group_of;                         // per parameter
  std::vector<detail::ParamState> states;               // per parameter
  std::unordered_map<const TensorImpl*, size_t> index;  // parameter identity -> position
  bool accumulation = false;

  detail::GroupState& group(size_t g, const char* op);
  // The position of one of this optimizer's parameters in `params`.
  size_t index_of(const Tensor& param, const std::string& op) const;
  // Parameter i's step, creating its state on its first (spec 1.5: Kahan summation is decided
  // here).
  detail::ParamStep prepare(size_t i, Tensor grad);
};

}  // namespace optimi::optim
