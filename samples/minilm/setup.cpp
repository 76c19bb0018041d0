#include "setup.hpp"

#include <unistd.h>
#include <algorithm>
#include <stdexcept>
#include <string>

#include "report.hpp"

namespace minilm {

using optimi::DType;

ModelConfig architecture(const Config& c) {
  return {.vocab = 256,
          .d_model = c.d_model,
          .layers = c.layers,
          .heads = c.heads,
          .max_seq = c.seq,
          .rope = c.rope};
}

namespace {

Config resolve_config(const Flags& flags, const std::optional<Checkpoint>& ck) {
  Config c;
  if (ck && ck->run) apply_run_settings(c, ck->run->settings);
  apply_flags(c, flags);
  if (!ck) return c;
  const ModelConfig& a = ck->arch;
  auto fixed_by_file = [&](const std::string& flag, int64_t value, int64_t saved) {
    if (given(flags, flag) && value != saved)
      throw std::invalid_argument("--" + flag + " " + std::to_string(value) +
                                  " contradicts the checkpoint, which has " +
                                  std::to_string(saved));
  };
  fixed_by_file("d-model", c.d_model, a.d_model);
  fixed_by_file("layers", c.layers, a.layers);
  fixed_by_file("heads", c.heads, a.heads);
  fixed_by_file("seq", c.seq, a.max_seq);
  if ((given(flags, "rope") || given(flags, "no-rope")) && c.rope != a.rope)
    throw std::invalid_argument(std::string("--") + (c.rope ? "" : "no-") +
                                "rope contradicts the checkpoint");
  c.d_model = a.d_model;
  c.layers = a.layers;
  c.heads = a.heads;
  c.seq = a.max_seq;
  c.rope = a.rope;
  // A weights-only file (from PyTorch, say) runs in the precision it was saved in.
  if (!ck->run && !given(flags, "dtype")) {
    auto head = ck->weights.find("head.weight");
    if (head != ck->weights.end() && head->second.dtype() == DType::BFloat16) c.dtype = "bfloat16";
  }
  // Continuing a saved run keeps checkpointing where it was saved.
  if (ck->run && c.checkpoint.empty()) c.checkpoint = c.resume;
  return c;
}

// A configuration far too large for the machine would get the process killed by the OS midway
// rather than fail cleanly, so it is refused up front. The estimate is deliberately generous:
// parameters with gradients and two optimizer moments, and per token and layer the float32
// activations a transformer keeps for backward (about 34 d + 5 heads seq values).
void check_fits_in_memory(const Config& c, int64_t memory_bytes) {
  const double d = double(c.d_model), layers = double(c.layers), seq = double(c.seq);
  const double params = 2 * 256 * d + 256 + 2 * d + seq * d + layers * (12 * d * d + 13 * d);
  const double activations =
      double(c.batch) * seq * (layers * (34 * d + 5 * double(c.heads) * seq) + 3 * 256);
  const double need = 16 * params + 4 * activations;
  const double have = double(memory_bytes);
  if (have > 0 && need > have)
    throw std::invalid_argument(
        "this configuration needs about " + format_bytes(int64_t(std::min(need, 9e18))) +
        " of memory to train, more than this machine's " + format_bytes(int64_t(have)) +
        ": lower --d-model, --layers, --seq or --batch");
}

}  // namespace

Config prepare_config(const Flags& flags, const std::optional<Checkpoint>& ck,
                      int64_t memory_bytes) {
  Config c = resolve_config(flags, ck);
  validate(c);
  check_fits_in_memory(c, memory_bytes);
  c.warmup = std::min(c.warmup, std::max<int64_t>(c.steps - 1, 0));
  return c;
}

int64_t physical_memory() {
  return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE));
}

std::shared_ptr<MiniLM> build_model(const Config& c, const std::optional<Checkpoint>& ck,
                                    optimi::Device device) {
  optimi::manual_seed(c.seed);
  auto model = std::make_shared<MiniLM>(architecture(c));
  if (ck) {
    try {
      model->load_state_dict(ck->weights);
    } catch (const std::exception& e) {
      throw std::runtime_error("--resume " + c.resume + ": " + e.what());
    }
  }
  if (c.dtype == "bfloat16") {
    optimi::utils::to_low_precision(*model, {.dtype = DType::BFloat16, .device = device});
  } else {
    model->to(device);
  }
  return model;
}

}  // namespace minilm
