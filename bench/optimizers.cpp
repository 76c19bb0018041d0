// Optimizer step benchmark (spec benchmarks.md, section 1): every optimizer over 10,000,000
// parameters (20 tensors of 500,000) with random gradients in place, in float32 and in bfloat16
// with Kahan summation, on the CPU or on a CUDA device. Each figure is the median of 20 steps after
// 3 warm-up steps; on CUDA each step is timed between two synchronizations. Effective bandwidth
// counts the minimum bytes an optimizer must read and write per parameter; the same binary measures
// the device's bandwidth for comparison: a STREAM-style triad on the CPU, a device-to-device copy
// on CUDA. Reference runs alternate with each optimizer's steps, so that both see the same machine
// (shared machines drift), and each optimizer is compared with the median of its own reference
// runs.
//
//   optimizers [--device cpu|cuda] [--threads N] [--json PATH]
//   optimizers --help
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "optimi/cuda.hpp"
#include "optimi/optim.hpp"
#include "optimi/random.hpp"

using namespace optimi;
using bench::median;

namespace {

constexpr int64_t kTensors = 20;
constexpr int64_t kTensorSize = 500'000;
constexpr int64_t kParams = kTensors * kTensorSize;
constexpr int kWarmup = 3;
constexpr int kSteps = 20;

// Wall time of f, waiting for the work queued on `device` before and after (no wait on the CPU).
double seconds(const std::function<void()>& f, Device device) {
  cuda::synchronize(device);
  auto start = std::chrono::steady_clock::now();
  f();
  cuda::synchronize(device);
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
    // On the kernels' own threads, which then hold the pages each touches first.
    kernels::cpu::parallel_ranges(kParams, true, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
      }
    });
  }

  // Bytes per second of one run.
  double run() {
    float* a = a_.data();
    const float* b = b_.data();
    const float* c = c_.data();
    const float s = 3.0f;
    double t = seconds(
        [&] {
          kernels::cpu::parallel_ranges(kParams, true, [&](int64_t begin, int64_t end) {
#pragma omp simd
            for (int64_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
          });
        },
        Device::cpu());
    return 3.0 * sizeof(float) * double(kParams) / t;
  }

 private:
  std::vector<float> a_, b_, c_;
};

// The device's own memory bandwidth, the yardstick of the optimizer steps, with the bars of spec
// section 1 relative to it.
struct Reference {
  std::string name;         // "triad" or "copy": the table's column and the JSON keys' stem
  std::string description;  // for the header line
  double bar_float32, bar_bfloat16;
  std::function<double()> run;  // bytes per second of one run
};

Reference reference(Device device) {
  char description[96];
  if (device.is_cpu()) {
    auto triad = std::make_shared<Triad>();
    std::snprintf(description, sizeof(description), "STREAM triad over 3 x %lld float32",
                  (long long)kParams);
    return {"triad", description, 0.80, 0.70, [triad] { return triad->run(); }};
  }
  // Device-to-device copy between two float32 tensors of kParams elements: one read and one write
  // per element.
  Tensor src = Tensor::ones({kParams}, DType::Float32, device);
  Tensor dst = Tensor::zeros({kParams}, DType::Float32, device);
  std::snprintf(description, sizeof(description),
                "device-to-device copy of %lld float32 (read + write)", (long long)kParams);
  return {"copy", description, 0.85, 0.85, [src, dst, device]() mutable {
            double t = seconds([&] { dst.copy_(src); }, device);
            return 2.0 * sizeof(float) * double(kParams) / t;
          }};
}

struct Timing {
  double step_seconds;  // median
  double reference;     // median bytes per second of the interleaved reference runs
};

// kWarmup steps, then kSteps steps each followed by a reference run.
Timing measure(const std::function<void()>& step, const Reference& ref, Device device) {
  for (int i = 0; i < kWarmup; ++i) step();
  std::vector<double> steps, refs;
  for (int i = 0; i < kSteps; ++i) {
    steps.push_back(seconds(step, device));
    refs.push_back(ref.run());
  }
  return {median(steps), median(refs)};
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

constexpr const char* kUsage =
    "usage: optimizers [--device cpu|cuda] [--threads N] [--json PATH]\n"
    "  --device cpu|cuda  where parameters, gradients and optimizer state live (default cpu);\n"
    "                     the yardstick is a STREAM triad on cpu, a device-to-device copy on cuda\n"
    "  --threads N        OpenMP threads (default 2)\n"
    "  --json PATH        also write the figures to PATH as JSON\n"
    "  --help             print this and exit\n";

struct Config {
  Device device = Device::cpu();
  int threads = 2;
  std::string json_path;
  bool help = false;
};

// std::invalid_argument for an unknown flag or a bad value.
Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h")
      c.help = true;
    else if (arg == "--device")
      c.device = bench::parse_device(value());
    else if (arg == "--threads")
      c.threads = int(bench::positive_integer(arg, value(), std::numeric_limits<int>::max()));
    else if (arg == "--json")
      c.json_path = value();
    else
      throw std::invalid_argument("unknown argument '" + arg + "'");
  }
  return c;
}

int run(const Config& c) {
  const Device device = c.device;
  omp_set_num_threads(c.threads);

  Reference ref = reference(device);
  std::vector<double> refs;
  nlohmann::json results = nlohmann::json::array();
  std::vector<std::string> rows;
  bool all_pass = true;
  manual_seed(0);
  for (DType dtype : {DType::Float32, DType::BFloat16}) {
    bool low = dtype == DType::BFloat16;
    std::vector<Tensor> params;
    for (int64_t i = 0; i < kTensors; ++i) {
      Tensor p = Tensor::randn({kTensorSize}, dtype, device).requires_grad_();
      p.set_grad(Tensor::randn({kTensorSize}, dtype, device));
      params.push_back(p);
    }
    for (const Benchmark& b : benchmarks()) {
      auto opt = b.make(params);
      Timing t = measure([&] { opt->step(); }, ref, device);
      refs.push_back(t.reference);
      // bfloat16: every buffer is 2 bytes, and the Kahan buffer is one more read and write.
      double bytes =
          low ? b.read_bytes / 2 + 2 + b.write_bytes / 2 + 2 : b.read_bytes + b.write_bytes;
      double bandwidth = bytes * double(kParams) / t.step_seconds;
      double fraction = bandwidth / t.reference;
      double bar = low ? ref.bar_bfloat16 : ref.bar_float32;
      bool pass = fraction >= bar;
      all_pass = all_pass && pass;
      std::string label = low ? "bfloat16+Kahan" : "float32";
      char row[160];
      std::snprintf(row, sizeof(row), "%-12s %-15s %9.3f %11.1f %8.1f %8.1f %8.2f %6s",
                    b.name.c_str(), label.c_str(), t.step_seconds * 1e3,
                    double(kParams) / t.step_seconds / 1e6, bandwidth / 1e9, t.reference / 1e9,
                    fraction, pass ? "ok" : "BELOW");
      rows.push_back(row);
      results.push_back({{"optimizer", b.name},
                         {"dtype", label},
                         {"ms_per_step", t.step_seconds * 1e3},
                         {"params_per_second", double(kParams) / t.step_seconds},
                         {"bytes_per_param", bytes},
                         {"bandwidth_gb_s", bandwidth / 1e9},
                         {ref.name + "_gb_s", t.reference / 1e9},
                         {"fraction_of_" + ref.name, fraction},
                         {"bar", bar},
                         {"pass", pass}});
    }
  }

  std::string where = device.is_cpu() ? "CPU, " + std::to_string(c.threads) + " threads"
                                      : "CUDA device " + device.str();
  std::printf("Optimizer step, %lld parameters (%lld tensors of %lld), %s\n", (long long)kParams,
              (long long)kTensors, (long long)kTensorSize, where.c_str());
  std::printf("%s, median of all runs: %.1f GB/s\n\n", ref.description.c_str(), median(refs) / 1e9);
  std::string x_ref = "x " + ref.name;
  std::printf("%-12s %-15s %9s %11s %8s %8s %8s %6s\n", "optimizer", "dtype", "ms/step",
              "Mparams/s", "GB/s", ref.name.c_str(), x_ref.c_str(), "bar");
  for (const std::string& row : rows) std::printf("%s\n", row.c_str());
  std::printf("\n%s\n",
              all_pass ? "every optimizer meets its bar" : "some optimizers are below their bar");
  if (!c.json_path.empty()) {
    nlohmann::json out = {{"benchmark", "optimizers"}, {"device", device.str()},
                          {"threads", c.threads},      {"params", kParams},
                          {"tensors", kTensors},       {"warmup_steps", kWarmup},
                          {"timed_steps", kSteps},     {"results", results}};
    out[ref.name + "_gb_s"] = median(refs) / 1e9;  // triad_gb_s on the CPU, copy_gb_s on CUDA
    std::ofstream(c.json_path) << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("optimizers", kUsage, argc, argv, parse, run);
}
