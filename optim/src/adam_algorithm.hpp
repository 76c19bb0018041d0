#pragma once

#include "optim/src/algorithm.hpp"
#include "optimi/optim/adam.hpp"

namespace optimi::optim::detail {

// Adam, and AdamW as Adam with decouple_wd always on (spec 2.3).
class AdamAlgorithm final : public Algorithm {
 public:
  AdamAlgorithm(std::string_view name, const AdamOptions& o);

  std::string_view name() const override { return name_; }
  std::vector<std::string> buffers() const override { return {"exp_avg", "exp_avg_sq"}; }
  void update(const StepBatch& b) const override;
  std::vector<Hyperparameter> hyperparameters() override;

 private:
  void check_options() const override;

  std::string_view name_;
  AdamOptions o_;
};

}  // namespace optimi::optim::detail
