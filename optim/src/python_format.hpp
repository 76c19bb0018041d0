#pragma once

#include <string>

namespace optimi::optim::detail {

// repr() of a Python float ("1.0", "0.005", "1e-05", "nan"), so that messages read as optimi's.
std::string python_float(double x);

}  // namespace optimi::optim::detail
