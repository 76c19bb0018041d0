#include "optim/src/validation.hpp"

#include <cmath>
#include <stdexcept>

#include "optim/src/python_format.hpp"

namespace optimi::optim::detail {
namespace {

[[noreturn]] void invalid(const char* what, const char* key, double value,
                          const std::string& where) {
  throw std::invalid_argument(std::string("Invalid ") + what + ": " + key + "=" +
                              python_float(value) + where);
}

}  // namespace

void check_betas(std::span<const double> betas) {
  for (size_t i = 0; i < betas.size(); ++i) {
    if (!(0.0 <= betas[i] && betas[i] < 1.0)) {
      throw std::invalid_argument("Invalid beta" + std::to_string(i + 1) + " parameter: betas[" +
                                  std::to_string(i) + "]=" + python_float(betas[i]));
    }
  }
}

void check_eps(double eps) {
  check_rate("epsilon", "eps", eps);
}

void check_rate(const char* what, const char* key, double value, const std::string& where) {
  if (!(0.0 <= value && std::isfinite(value))) invalid(what, key, value, where);
}

void check_fraction(const char* what, const char* key, double value, const std::string& where) {
  if (!(0.0 <= value && value <= 1.0)) invalid(what, key, value, where);
}

void check_group(double lr, double weight_decay, const std::string& where) {
  check_rate("learning rate", "lr", lr, where);
  check_rate("weight decay", "weight_decay", weight_decay, where);
}

}  // namespace optimi::optim::detail
