#include "optimi/warning.hpp"

#include <iostream>
#include <mutex>

namespace optimi {
namespace {
std::mutex handler_mutex;
WarningHandler& handler() {
  static WarningHandler h = [](const std::string& m) {
    std::cerr << "optimi warning: " << m << "\n";
  };
  return h;
}
}  // namespace

WarningHandler set_warning_handler(WarningHandler h) {
  std::lock_guard<std::mutex> lock(handler_mutex);
  WarningHandler previous = std::move(handler());
  handler() = std::move(h);
  return previous;
}

void warn(const std::string& message) {
  WarningHandler h;
  {
    std::lock_guard<std::mutex> lock(handler_mutex);
    h = handler();
  }
  if (h) h(message);
}

}  // namespace optimi
