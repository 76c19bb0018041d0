#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <optimi/optimi.hpp>

#include "cli.hpp"
#include "data.hpp"
#include "model.hpp"

// What the user sees: the header, the progress display and the memory table.
namespace minilm {

std::string format_fixed(double v, int digits);  // 0.5292
std::string format_count(int64_t n);             // 1,234,567
std::string format_bytes(int64_t n);             // 3.28 MiB
std::string format_duration(double seconds);     // 1:05

void print_header(std::ostream& os, const Config& config, const MiniLM& model, const Dataset& data,
                  const optimi::optim::Optimizer& optimizer, int64_t start_step,
                  const std::string& resumed_from);

// A live bar redrawn in place on a terminal; plain lines every so often otherwise.
class Progress {
 public:
  Progress(std::ostream& os, bool terminal, int64_t total_steps, int64_t first_step);
  void update(int64_t step, double loss, double lr, double tokens_per_s, double eta_seconds);
  // A whole line, printed above the bar.
  void message(const std::string& line);
  void finish();  // leaves the cursor on a fresh line

 private:
  void clear();

  std::ostream& os_;
  bool terminal_;
  int64_t total_;
  int64_t every_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

// Bytes each kind of training memory holds, measured on the run's configuration.
struct MemoryReport {
  int64_t num_parameters = 0;
  int64_t parameters = 0;
  int64_t gradients_peak = 0;
  int64_t optimizer_state = 0;  // without the Kahan buffers
  int64_t kahan = 0;
  int64_t peak_all = 0;  // every tensor, activations included
};
void print_memory_table(std::ostream& os, const MemoryReport& m);

}  // namespace minilm
