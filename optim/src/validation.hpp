#pragma once

#include <span>
#include <string>

// optimi's checks of option values (spec 1.1), shared by the optimizers, their param groups,
// checkpoint loading and the schedulers. Each throws std::invalid_argument naming the option,
// optimi's key and the value; `where` is appended to the message.
namespace optimi::optim::detail {

// Betas and eps, most specific checks first.
void check_betas(std::span<const double> betas);
void check_eps(double eps);
// optimi's `not 0.0 <= x` test for lrs and weight decays, which also rejects NaN; infinities are
// rejected as well, as they would turn every parameter into NaN at the first step.
void check_rate(const char* what, const char* key, double value, const std::string& where = "");
// A value in [0, 1] (an interpolation weight or a starting fraction).
void check_fraction(const char* what, const char* key, double value, const std::string& where = "");
// A param group's lr and weight decay.
void check_group(double lr, double weight_decay, const std::string& where);

}  // namespace optimi::optim::detail
