#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

// The run's logged figures. A checkpoint carries them, so a resumed run's curves and metrics
// continue from where the saved run left off.
namespace minilm {

struct TrainPoint {
  int64_t step;
  double loss;  // mean over the step's micro-batches
  double lr;
};
struct ValPoint {
  int64_t step;
  double loss;
};

struct History {
  std::vector<TrainPoint> train;
  std::vector<ValPoint> val;

  nlohmann::json to_json() const;
  static History from_json(const nlohmann::json& j);  // throws nlohmann::json::exception
};

// Writes `j` to `path` through a temporary file and a rename, so readers never see half a file.
void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace minilm
