#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

// The checkpoint readers as fuzz targets. Each writes the input to a file and loads it the way a
// user would. Only std::runtime_error and std::invalid_argument (the documented exceptions) are
// caught; anything else escapes to the driver as a finding: libFuzzer (fuzz_main.cpp) or the
// replay executable that CTest runs over the regression inputs (replay_main.cpp).
namespace optimi_fuzz {

struct Target {
  std::string_view name;  // also the folder name under corpus/ and regressions/
  // True when the input loaded, false when it was rejected with a documented exception.
  bool (*run)(const uint8_t* data, size_t size);
  // Writes the seed corpus: valid files produced by the library's own writers.
  void (*write_seeds)(const std::filesystem::path& dir);
};

// nullptr for an unknown name.
const Target* find_target(std::string_view name);
const Target* all_targets(size_t& count);

}  // namespace optimi_fuzz
