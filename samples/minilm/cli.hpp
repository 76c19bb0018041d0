#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

// Command-line flags. One table drives parsing, --help, validation and the copy of the run's
// settings that a checkpoint keeps, so that --resume continues with the same settings.
namespace minilm {

struct Config {
  // The run's settings: saved in checkpoints and restored by --resume unless given again.
  int64_t steps = 800;
  int64_t batch = 16;
  int64_t seq = 128;
  int64_t d_model = 128;
  int64_t layers = 4;
  int64_t heads = 4;
  bool rope = false;
  double lr = 3e-3;
  double weight_decay = 1e-5;
  int64_t warmup = 80;
  std::string optimizer = "stableadamw";
  bool decouple_lr = true;
  std::string dtype = "float32";
  bool kahan = true;
  bool gradient_release = false;
  bool detect_anomaly = false;  // name the first op producing NaN/Inf (slow)
  int64_t accumulation = 1;
  std::string device = "cpu";
  std::string data;  // empty: the generated corpus
  uint64_t seed = 0;
  int64_t eval_every = 50;

  // This invocation only.
  std::string checkpoint;
  std::string resume;
  std::string metrics_json;
  std::string plot;
  std::string score;
  std::string dump_corpus;
  int64_t generate = 0;
  int64_t stop_after = 0;  // 0: run to --steps
  bool help = false;
};

// The flags as given, in order: name (without dashes) -> value ("" for switches).
using Flags = std::vector<std::pair<std::string, std::string>>;

// Throws std::invalid_argument for unknown flags, missing values and malformed numbers.
Flags parse_flags(int argc, const char* const* argv);
// Applies flags to a config; run_settings_only skips the invocation flags (used on top of a
// checkpoint's settings).
void apply_flags(Config& config, const Flags& flags, bool run_settings_only = false);
// The run's settings as flag name -> value text, the form a checkpoint stores.
std::map<std::string, std::string> run_settings(const Config& config);
void apply_run_settings(Config& config, const std::map<std::string, std::string>& settings);
// Throws std::invalid_argument naming the first flag with a value out of range.
void validate(const Config& config);
bool given(const Flags& flags, const std::string& name);

std::string usage();

}  // namespace minilm
