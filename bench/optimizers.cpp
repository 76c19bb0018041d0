// Optimizer step benchmark (spec benchmarks.md, section 1): every optimizer over 10,000,000
// parameters (20 tensors of 500,000) with random gradients in place, in float32 and in bfloat16
// with Kahan summation, on the CPU. Each figure is the median of 20 steps after 3 warm-up steps.
// Effective bandwidth counts the minimum bytes an optimizer must read and write per parameter; a
// STREAM-style triad in the same binary gives the machine's bandwidth for comparison. Triad runs
// alternate with each optimizer's steps, so that both see the same machine (shared machines
// drift), and each optimizer is compared with the median of its own triad runs.
//
//   optimizers [--threads N] [--json PATH]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "optimi/optim.hpp"
#include "optimi/random.hpp"

using namespace optimi;

namespace {

constexpr int64_t kTensors = 20;
constexpr int64_t kTensorSize = 500'000;
constexpr int64_t kParams = kTensors * kTensorSize;
constexpr int kWarmup = 3;
constexpr int kSteps = 20;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double seconds(const std::function<void()>& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// STREAM triad a = b + s c over three float32 arrays of kParams elements; bytes counted as STREAM
// does (two reads and one write per element).
class Triad {
 public:
  Triad() : a_(kParams), b_(kParams), c_(kParams) {
    float* a = a_.data();
    float* b = b_.data();
    float* c = c_.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < kParams; ++i) {
      a[i] = 0.0f;
      b[i] = 1.0f;
      c[i] = 2.0f;
    }
  }

  // Bytes per second of one run.
  double run() {
    float* a = a_.data();
    const float* b = b_.data();
    const float* c = c_.data();
    const float s = 3.0f;
    double t = seconds([&] {
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < kParams; ++i) a[i] = b[i] + s * c[i];
    });
    return 3.0 * sizeof(float) * double(kParams) / t;
  }

 private:
  std::vector<float> a_, b_, c_;
};

struct Timing {
  double step_seconds;  // median
  double triad;         // median bytes per second of the interleaved triad runs
};

// kWarmup steps, then kSteps steps each followed by a triad run.
Timing measure(const std::function<void()>& step, Triad& triad) {
  for (int i = 0; i < kWarmup; ++i) step();
  std::vector<double> steps, triads;
  for (int i = 0; i < kSteps; ++i) {
    steps.push_back(seconds(step));
    triads.push_back(triad.run());
  }
  return {median(steps), median(triads)};
}

struct Benchmark {
  std::string name;
  double read_bytes;  // per parameter, float32
  double write_bytes;
  std::function<std::unique_ptr<optim::Optimizer>(const std::vector<Tensor>&)> make;
};

std::vector<Benchmark> benchmarks() {
  using namespace optim;
  const double lr = 1e-3;
  // Kahan summation is automatic for bfloat16 except in Adan, whose default is off.
  return {
      {"SGD", 12, 8,
       [=](auto& p) { return std::make_unique<SGD>(p, SGDOptions{.lr = lr, .momentum = 0.9}); }},
      {"Adam", 16, 12, [=](auto& p) { return std::make_unique<Adam>(p, AdamOptions{.lr = lr}); }},
      {"AdamW", 16, 12,
       [=](auto& p) { return std::make_unique<AdamW>(p, AdamWOptions{.lr = lr}); }},
      {"Adan", 24, 20,
       [=](auto& p) {
         return std::make_unique<Adan>(p, AdanOptions{.lr = lr, .kahan_sum = std::nullopt});
       }},
      {"Lion", 12, 8, [=](auto& p) { return std::make_unique<Lion>(p, LionOptions{.lr = lr}); }},
      {"RAdam", 16, 12,
       [=](auto& p) { return std::make_unique<RAdam>(p, RAdamOptions{.lr = lr}); }},
      {"Ranger", 20, 16,
       [=](auto& p) { return std::make_unique<Ranger>(p, RangerOptions{.lr = lr}); }},
      {"StableAdamW", 16, 12,
       [=](auto& p) { return std::make_unique<StableAdamW>(p, StableAdamWOptions{.lr = lr}); }},
  };
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--json PATH]\n", argv[0]);
      return 2;
    }
  }
  omp_set_num_threads(threads);

  Triad triad;
  std::vector<double> triads;
  nlohmann::json results = nlohmann::json::array();
  std::vector<std::string> rows;
  bool all_pass = true;
  manual_seed(0);
  for (DType dtype : {DType::Float32, DType::BFloat16}) {
    bool low = dtype == DType::BFloat16;
    std::vector<Tensor> params;
    for (int64_t i = 0; i < kTensors; ++i) {
      Tensor p = Tensor::randn({kTensorSize}, dtype).requires_grad_();
      p.set_grad(Tensor::randn({kTensorSize}, dtype));
      params.push_back(p);
    }
    for (const Benchmark& b : benchmarks()) {
      auto opt = b.make(params);
      Timing t = measure([&] { opt->step(); }, triad);
      triads.push_back(t.triad);
      // bfloat16: every buffer is 2 bytes, and the Kahan buffer is one more read and write.
      double bytes =
          low ? b.read_bytes / 2 + 2 + b.write_bytes / 2 + 2 : b.read_bytes + b.write_bytes;
      double bandwidth = bytes * double(kParams) / t.step_seconds;
      double fraction = bandwidth / t.triad;
      double bar = low ? 0.70 : 0.80;
      bool pass = fraction >= bar;
      all_pass = all_pass && pass;
      std::string label = low ? "bfloat16+Kahan" : "float32";
      char row[160];
      std::snprintf(row, sizeof(row), "%-12s %-15s %9.3f %11.1f %8.1f %8.1f %8.2f %6s",
                    b.name.c_str(), label.c_str(), t.step_seconds * 1e3,
                    double(kParams) / t.step_seconds / 1e6, bandwidth / 1e9, t.triad / 1e9,
                    fraction, pass ? "ok" : "BELOW");
      rows.push_back(row);
      results.push_back({{"optimizer", b.name},
                         {"dtype", label},
                         {"ms_per_step", t.step_seconds * 1e3},
                         {"params_per_second", double(kParams) / t.step_seconds},
                         {"bytes_per_param", bytes},
                         {"bandwidth_gb_s", bandwidth / 1e9},
                         {"triad_gb_s", t.triad / 1e9},
                         {"fraction_of_triad", fraction},
                         {"bar", bar},
                         {"pass", pass}});
    }
  }

  std::printf("Optimizer step, %lld parameters (%lld tensors of %lld), CPU, %d threads\n",
              (long long)kParams, (long long)kTensors, (long long)kTensorSize, threads);
  std::printf("STREAM triad over 3 x %lld float32, median of all runs: %.1f GB/s\n\n",
              (long long)kParams, median(triads) / 1e9);
  std::printf("%-12s %-15s %9s %11s %8s %8s %8s %6s\n", "optimizer", "dtype", "ms/step",
              "Mparams/s", "GB/s", "triad", "x triad", "bar");
  for (const std::string& row : rows) std::printf("%s\n", row.c_str());
  std::printf("\n%s\n",
              all_pass ? "every optimizer meets its bar" : "some optimizers are below their bar");
  if (!json_path.empty()) {
    nlohmann::json out = {{"benchmark", "optimizers"},
                          {"threads", threads},
                          {"params", kParams},
                          {"tensors", kTensors},
                          {"warmup_steps", kWarmup},
                          {"timed_steps", kSteps},
                          {"triad_gb_s", median(triads) / 1e9},
                          {"results", results}};
    std::ofstream(json_path) << out.dump(2) << "\n";
  }
  return 0;
}
