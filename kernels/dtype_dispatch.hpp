#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "optimi/dtype.hpp"

// From a runtime dtype to the storage type kernels are instantiated for: the one switch the CPU
// and CUDA backends share (host code; the types are the same on both sides).
namespace optimi::kernels {

// Calls f(T{}) with T the storage type of a floating-point dtype.
template <class F>
void visit_floating(const char* op, DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    case DType::BFloat16:
      return f(bfloat16{});
    case DType::Float16:
      return f(float16{});
    default:
      throw std::invalid_argument(std::string(op) + ": expected a floating-point tensor, got " +
                                  std::string(dtype_name(dtype)));
  }
}

// Calls f(T{}) with T the storage type of `dtype`.
template <class F>
void visit_dtype(const char* op, DType dtype, F&& f) {
  if (dtype == DType::Int64) return f(int64_t{});
  if (dtype == DType::Bool) return f(bool{});
  visit_floating(op, dtype, f);
}

}  // namespace optimi::kernels
