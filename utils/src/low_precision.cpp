#include "optimi/utils/low_precision.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "optimi/autograd.hpp"

namespace optimi::utils {

bool ModuleTypes::matches(const nn::Module& m) const {
  return std::any_of(checks_.begin(), checks_.end(), [&](const auto& check) { return check(m); });
}

Fp32Buffers::Fp32Buffers(std::vector<std::string> keywords, ModuleTypes types)
    : keywords_(std::move(keywords)), types_(std::move(types)) {
  for (std::string& k : keywords_)
    std::transform(k.begin(), k.end(), k.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
}

bool Fp32Buffers::matches(const std::string& qualified_name, const nn::Module& m) const {
  for (const std::string& k : keywords_)
    if (qualified_name.find(k) != std::string::npos) return true;
  return types_.matches(m);
}

namespace {
// Floating tensors become `dtype` on `device`; the others only move.
void convert(Tensor t, DType dtype, const std::optional<Device>& device) {
  Device target = device.value_or(t.device());
  t.set_data(t.is_floating_point() ? t.detach().to(dtype, target) : t.detach().to(target));
}
}  // namespace

nn::Module& to_low_precision(nn::Module& model, const LowPrecisionOptions& options) {
  if (!is_floating_point(options.dtype))
    throw std::invalid_argument("to_low_precision: dtype must be floating point, got " +
                                std::string(dtype_name(options.dtype)));
  NoGradGuard no_grad;
  for (auto& [name, module] : model.named_modules()) {
    bool keep_params = options.fp32_modules.matches(*module);
    bool keep_buffers = keep_params || options.fp32_buffers.matches(name, *module);
    for (auto& [pname, p] : module->named_parameters(false))
      convert(p, keep_params ? DType::Float32 : options.dtype, options.device);
    for (auto& [bname, b] : module->named_buffers(false))
      convert(b, keep_buffers ? DType::Float32 : options.dtype, options.device);
  }
  return model;
}

}  // namespace optimi::utils
