#pragma once

#include <functional>
#include <string>

namespace optimi {

using WarningHandler = std::function<void(const std::string&)>;
WarningHandler set_warning_handler(WarningHandler);  // returns the previous one
void warn(const std::string& message);               // default handler prints to stderr

}  // namespace optimi
