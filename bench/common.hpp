#pragma once

// What both benchmarks share: the median, and the checks of their command-line values.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "optimi/cuda.hpp"
#include "optimi/device.hpp"

namespace bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

// The value of `flag` as an integer in [1, max]; std::invalid_argument naming the flag otherwise.
inline int64_t positive_integer(const std::string& flag, const std::string& value,
                                int64_t max = std::numeric_limits<int64_t>::max()) {
  size_t end = 0;
  long long n = 0;
  try {
    n = std::stoll(value, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  if (end == 0 || end != value.size() || n <= 0)
    throw std::invalid_argument(flag + " needs a positive integer, got '" + value + "'");
  if (n > max)
    throw std::invalid_argument(flag + " is at most " + std::to_string(max) + ", got " + value);
  return n;
}

// --device cpu|cuda; std::invalid_argument for anything else.
inline optimi::Device parse_device(const std::string& value) {
  if (value == "cpu") return optimi::Device::cpu();
  if (value == "cuda") return optimi::Device::cuda();
  throw std::invalid_argument("--device must be cpu or cuda, got '" + value + "'");
}

// Empty when the benchmark can run on `device`, else why not.
inline std::string device_problem(optimi::Device device) {
  if (device.is_cuda() && optimi::cuda::device_count() == 0)
    return "--device cuda: no usable CUDA device (cuda::device_count() is 0: no GPU or driver is "
           "visible, or this is a CPU-only build)";
  return "";
}

// The whole main() of a benchmark: parse the command line, print the usage for --help, check the
// device, run. Exit status: 0 done, 1 the benchmark could not run (no CUDA device, an error on the
// way), 2 a bad command line. Config has `help` and `device`.
template <class Config>
int run_main(const char* name, const char* usage, int argc, char** argv,
             Config (*parse)(int, char**), int (*run)(const Config&)) {
  Config c;
  try {
    c = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", name, e.what(), name);
    return 2;
  }
  if (c.help) {
    std::printf("%s", usage);
    return 0;
  }
  if (std::string problem = device_problem(c.device); !problem.empty()) {
    std::fprintf(stderr, "%s: %s\n", name, problem.c_str());
    return 1;
  }
  try {
    return run(c);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace bench
