#include "optim/src/python_format.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace optimi::optim::detail {

std::string python_float(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, as Python's repr picks them, in scientific form d.ddde±XX.
  char buf[64];
  auto end = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific).ptr;
  std::string s(buf, end);
  size_t e = s.find('e');
  int exponent = std::atoi(s.c_str() + e + 1);
  bool negative = s[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e; ++i) {
    if (s[i] != '.') digits += s[i];
  }
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {  // Python switches to scientific notation here
    out.append(digits, 0, 1);
    if (digits.size() > 1) out.append(".").append(digits, 1);
    out.append(exponent < 0 ? "e-" : "e+");
    if (std::abs(exponent) < 10) out.append("0");
    return out.append(std::to_string(std::abs(exponent)));
  }
  if (exponent < 0) return out.append("0.").append(size_t(-exponent - 1), '0').append(digits);
  size_t int_digits = size_t(exponent) + 1;
  if (digits.size() <= int_digits) {
    return out.append(digits).append(int_digits - digits.size(), '0').append(".0");
  }
  return out.append(digits, 0, int_digits).append(".").append(digits, int_digits);
}

}  // namespace optimi::optim::detail
