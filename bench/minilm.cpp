// bench/minilm (benchmarks.md section 2): one MiniLM training step (forward, backward, optimizer
// step, zero_grad) timed like ../shared/reference/minilm_torch.py times PyTorch, on random bytes.
//   minilm [--d 256 --layers 4 --heads 4 --seq 128 --batch 16] [--dtype float32|bfloat16]
//          [--steps 10] [--gradient-release] [--json PATH]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "samples/minilm/model.hpp"

using namespace optimi;

namespace {

struct Config {
  int64_t d = 256, layers = 4, heads = 4, seq = 128, batch = 16, steps = 10;
  std::string dtype = "float32";
  bool gradient_release = false;
  std::string json;
};

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    auto integer = [&]() {
      std::string v = value();
      int64_t n = std::stoll(v);
      if (n <= 0) throw std::invalid_argument(a + " must be positive, got " + v);
      return n;
    };
    if (a == "--d")
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
      throw std::invalid_argument("unknown flag " + a);
  }
  if (c.dtype != "float32" && c.dtype != "bfloat16")
    throw std::invalid_argument("--dtype must be float32 or bfloat16, got " + c.dtype);
  return c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int run(const Config& c) {
  manual_seed(0);
  minilm::ModelConfig mc;
  mc.d_model = c.d;
  mc.layers = c.layers;
  mc.heads = c.heads;
  mc.max_seq = c.seq;
  mc.validate();
  minilm::MiniLM model(mc);
  if (c.dtype == "bfloat16") utils::to_low_precision(model, {.dtype = DType::BFloat16});
  auto groups = utils::param_groups_weight_decay(model, 1e-5, {"tok_embeddings"});
  optim::StableAdamW opt(groups,
                         {.lr = 1e-3, .decouple_lr = true, .gradient_release = c.gradient_release});
  if (c.gradient_release) utils::prepare_for_gradient_release(model, opt);

  std::vector<int64_t> bytes(size_t(c.batch * (c.seq + 1)));
  Generator g(1);
  for (int64_t& b : bytes) b = int64_t(g.next_u64() % 256);
  Tensor data = Tensor::from_vector(bytes, {c.batch, c.seq + 1});
  Tensor inputs = data.slice(1, 0, c.seq).contiguous();
  Tensor targets = data.slice(1, 1, c.seq + 1).contiguous();

  int64_t params = 0;
  for (const Tensor& p : model.parameters()) params += p.numel();
  std::vector<double> times;
  double loss = 0;
  for (int64_t i = 0; i < c.steps + 2; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor l = model.loss(inputs, targets);
    l.backward();
    opt.step();
    opt.zero_grad();
    auto t1 = std::chrono::steady_clock::now();
    loss = l.item();
    if (i >= 2) times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  double med = median(times);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  double peak_rss_mb = double(usage.ru_maxrss) / 1024.0;
  double tokens_per_s = double(c.batch * c.seq) / med;
  std::printf("params=%lld dtype=%s median step=%.1f ms tokens/s=%.0f loss=%.3f peak_rss=%.1f MB\n",
              (long long)params, c.dtype.c_str(), med * 1e3, tokens_per_s, loss, peak_rss_mb);
  if (!c.json.empty()) {
    nlohmann::json j = {{"params", params},
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
    std::ofstream(c.json) << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "minilm bench: %s\n", e.what());
    return 2;
  }
}
