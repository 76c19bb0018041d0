// bench/minilm (benchmarks.md section 2): one MiniLM training step (forward, backward, optimizer
// step, zero_grad) timed like ../shared/reference/minilm_torch.py times PyTorch, on random bytes,
// on the CPU or on a CUDA device (each step timed between two synchronizations; the device's peak
// memory is reported beside the peak RSS).
//   minilm [--device cpu|cuda] [--d 256 --layers 4 --heads 4 --seq 128 --batch 16]
//          [--dtype float32|bfloat16] [--steps 10] [--gradient-release] [--json PATH]
//   minilm --help
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/common.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "samples/minilm/model.hpp"

using namespace optimi;
using bench::median;

namespace {

constexpr const char* kUsage =
    "usage: minilm [--device cpu|cuda] [--d 256 --layers 4 --heads 4 --seq 128 --batch 16]\n"
    "              [--dtype float32|bfloat16] [--steps 10] [--gradient-release] [--json PATH]\n"
    "  --device cpu|cuda   where the model, its optimizer state and the batch live (default cpu)\n"
    "  --d, --layers, --heads, --seq, --batch   the MiniLM configuration (default: small)\n"
    "  --dtype float32|bfloat16   bfloat16: utils::to_low_precision (default float32)\n"
    "  --steps N           timed steps, after 2 warm-up steps (default 10)\n"
    "  --gradient-release  StableAdamW with gradient release\n"
    "  --json PATH         also write the figures to PATH as JSON\n"
    "  --help              print this and exit\n";

struct Config {
  int64_t d = 256, layers = 4, heads = 4, seq = 128, batch = 16, steps = 10;
  std::string dtype = "float32";
  Device device = Device::cpu();
  bool gradient_release = false;
  bool help = false;
  std::string json;
};

minilm::ModelConfig model_config(const Config& c) {
  minilm::ModelConfig mc;
  mc.d_model = c.d;
  mc.layers = c.layers;
  mc.heads = c.heads;
  mc.max_seq = c.seq;
  return mc;
}

// std::invalid_argument for an unknown flag, a bad value or an inconsistent model.
Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    auto integer = [&]() { return bench::positive_integer(a, value()); };
    if (a == "--help" || a == "-h")
      c.help = true;
    else if (a == "--device")
      c.device = bench::parse_device(value());
    else if (a == "--d")
      c.d = integer();
    else if (a == "--layers")
      c.layers = integer();
    else if (a == "--heads")
      c.heads = integer();
    else if (a == "--seq")
      c.seq = integer();
    else if (a == "--batch")
      c.batch = integer();
    else if (a == "--steps")
      c.steps = integer();
    else if (a == "--dtype")
      c.dtype = value();
    else if (a == "--gradient-release")
      c.gradient_release = true;
    else if (a == "--json")
      c.json = value();
    else
      throw std::invalid_argument("unknown argument '" + a + "'");
  }
  if (c.dtype != "float32" && c.dtype != "bfloat16")
    throw std::invalid_argument("--dtype must be float32 or bfloat16, got '" + c.dtype + "'");
  if (!c.help) model_config(c).validate();
  return c;
}

int run(const Config& c) {
  const Device device = c.device;
  manual_seed(0);
  minilm::MiniLM model(model_config(c));
  if (c.dtype == "bfloat16")
    utils::to_low_precision(model, {.dtype = DType::BFloat16, .device = device});
  else
    model.to(device);
  auto groups = utils::param_groups_weight_decay(model, 1e-5, {"tok_embeddings"});
  optim::StableAdamW opt(groups,
                         {.lr = 1e-3, .decouple_lr = true, .gradient_release = c.gradient_release});
  if (c.gradient_release) utils::prepare_for_gradient_release(model, opt);

  std::vector<int64_t> bytes(size_t(c.batch * (c.seq + 1)));
  Generator g(1);
  for (int64_t& b : bytes) b = int64_t(g.next_u64() % 256);
  Tensor data = Tensor::from_vector(bytes, {c.batch, c.seq + 1});
  Tensor inputs = data.slice(1, 0, c.seq).contiguous().to(device);
  Tensor targets = data.slice(1, 1, c.seq + 1).contiguous().to(device);

  int64_t params = 0;
  for (const Tensor& p : model.parameters()) params += p.numel();
  std::vector<double> times;
  double loss = 0;
  for (int64_t i = 0; i < c.steps + 2; ++i) {
    cuda::synchronize(device);  // returns at once for the CPU
    auto t0 = std::chrono::steady_clock::now();
    Tensor l = model.loss(inputs, targets);
    l.backward();
    opt.step();
    opt.zero_grad();
    cuda::synchronize(device);
    auto t1 = std::chrono::steady_clock::now();
    loss = l.item();
    if (i >= 2) times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  double med = median(times);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  double peak_rss_mb = double(usage.ru_maxrss) / 1024.0;
  double tokens_per_s = double(c.batch * c.seq) / med;
  std::printf(
      "params=%lld device=%s dtype=%s median step=%.3f ms tokens/s=%.0f loss=%.3f "
      "peak_rss=%.1f MB",
      (long long)params, device.str().c_str(), c.dtype.c_str(), med * 1e3, tokens_per_s, loss,
      peak_rss_mb);
  // On CUDA also the device's peak of live tensor bytes (memory_stats: the caching allocator's
  // cached blocks are not counted).
  std::optional<double> peak_device_mb;
  if (device.is_cpu()) {
    // The CPU kernels' team (a far one shares out only larger loops: see TeamInfo).
    const kernels::cpu::TeamInfo team = kernels::cpu::team_info();
    std::printf(" threads=%d handoff=%.0f ns%s", team.threads, team.handoff_ns,
                team.sharing_factor > 1 ? " (far cores)" : "");
  }
  if (device.is_cuda()) {
    peak_device_mb = double(memory_stats(device).peak_bytes) / (1024.0 * 1024.0);
    std::printf(" peak_device=%.1f MB", *peak_device_mb);
  }
  std::printf("\n");
  if (!c.json.empty()) {
    nlohmann::json j = {{"params", params},
                        {"device", device.str()},
                        {"dtype", c.dtype},
                        {"d", c.d},
                        {"layers", c.layers},
                        {"heads", c.heads},
                        {"seq", c.seq},
                        {"batch", c.batch},
                        {"median_step_ms", med * 1e3},
                        {"tokens_per_s", tokens_per_s},
                        {"peak_rss_mb", peak_rss_mb},
                        {"loss", loss},
                        {"gradient_release", c.gradient_release}};
    if (peak_device_mb) j["peak_device_mb"] = *peak_device_mb;
    std::ofstream(c.json) << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_main("minilm", kUsage, argc, argv, parse, run);
}
