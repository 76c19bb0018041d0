#include "optimi/dtype.hpp"

#include <stdexcept>

namespace optimi {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Float32:
      return "float32";
    case DType::Float16:
      return "float16";
    case DType::BFloat16:
      return "bfloat16";
    case DType::Int64:
      return "int64";
    case DType::Float64:
      return "float64";
    case DType::Bool:
      return "bool";
  }
  throw std::invalid_argument("dtype_name: unknown dtype " + std::to_string(int(t)));
}

bool is_floating_point(DType t) {
  return t == DType::Float32 || t == DType::Float16 || t == DType::BFloat16 || t == DType::Float64;
}

int64_t element_size(DType t) {
  switch (t) {
    case DType::Float32:
      return 4;
    case DType::Float16:
    case DType::BFloat16:
      return 2;
    case DType::Int64:
    case DType::Float64:
      return 8;
    case DType::Bool:
      return 1;
  }
  throw std::invalid_argument("element_size: unknown dtype " + std::to_string(int(t)));
}

namespace {
int rank(DType t) {
  switch (t) {
    case DType::Bool:
      return 0;
    case DType::Int64:
      return 1;
    case DType::Float16:
    case DType::BFloat16:
      return 2;
    case DType::Float32:
      return 3;
    case DType::Float64:
      return 4;
  }
  return 0;
}
}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // The two 16-bit formats cannot represent each other: PyTorch promotes the pair to float32.
  if ((a == DType::BFloat16 && b == DType::Float16) ||
      (a == DType::Float16 && b == DType::BFloat16))
    return DType::Float32;
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace optimi
