// Gradient release must save memory for real (issue 4, benchmarks.md section 3): on MiniLM
// `small`, the gradients of one micro-batch are not kept while the next one runs, so the peak
// live bytes of an accumulated training step drop by (almost) the model's gradient bytes.
#include <catch2/catch.hpp>
#include <cstdio>

#include "samples/minilm/model.hpp"

using namespace optimi;

namespace {

struct Peaks {
  int64_t step_peak = 0;       // peak live bytes above the steady state, one optimizer step
  int64_t gradient_bytes = 0;  // all parameters' gradients
  int64_t largest_gradient = 0;
};

// One optimizer step made of `micro_batches` forward/backward passes, after a warm-up step that
// creates the optimizer state (so both runs hold the same state when measured).
Peaks measure(bool release, int micro_batches) {
  manual_seed(0);
  minilm::ModelConfig config;
  config.d_model = 256;
  config.layers = 4;
  config.heads = 4;
  config.max_seq = 128;
  minilm::MiniLM model(config);
  auto groups = utils::param_groups_weight_decay(model, 1e-5, {"tok_embeddings"});
  optim::StableAdamW opt(groups, {.lr = 1e-3, .decouple_lr = true, .gradient_release = release});
  if (release) utils::prepare_for_gradient_release(model, opt);
  Tensor data = (Tensor::rand({16, 129}) * 255.0).to(DType::Int64);
  Tensor inputs = data.slice(1, 0, 128).contiguous(), targets = data.slice(1, 1, 129).contiguous();

  auto step = [&] {
    for (int m = 0; m < micro_batches; ++m) {
      if (release) opt.set_optimizer_accumulation(m + 1 < micro_batches);
      model.loss(inputs, targets).backward();
    }
    opt.step();
    opt.zero_grad();
  };
  step();
  Peaks p;
  for (const Tensor& t : model.parameters()) {
    p.gradient_bytes += t.nbytes();
    p.largest_gradient = std::max(p.largest_gradient, t.nbytes());
  }
  int64_t base = memory_stats().live_bytes;
  reset_peak_memory_stats();
  step();
  p.step_peak = memory_stats().peak_bytes - base;
  return p;
}

}  // namespace

TEST_CASE("gradient release lowers the peak memory of a MiniLM small step",
          "[memory][gradient_release]") {
  Peaks plain = measure(false, 2);
  Peaks released = measure(true, 2);
  double saved = double(plain.step_peak - released.step_peak);
  std::printf(
      "MiniLM small, 2 micro-batches: peak %.1f MB without gradient release, %.1f MB with; "
      "saved %.1f MB of %.1f MB of gradients (%.0f%%)\n",
      plain.step_peak / 1e6, released.step_peak / 1e6, saved / 1e6, plain.gradient_bytes / 1e6,
      100.0 * saved / double(plain.gradient_bytes));
  CHECK(saved >= 0.8 * double(plain.gradient_bytes));

  // A single micro-batch: the activations dominate the peak, but release never costs memory.
  Peaks plain1 = measure(false, 1);
  Peaks released1 = measure(true, 1);
  std::printf("MiniLM small, 1 micro-batch: peak %.1f MB without gradient release, %.1f MB with\n",
              plain1.step_peak / 1e6, released1.step_peak / 1e6);
  CHECK(released1.step_peak <= plain1.step_peak);
}
