// minilm: trains a small byte-level language model with optimi and shows what happened.
// Run with no arguments for the default two-minute run; --help lists every flag.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <optional>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <optimi/optimi.hpp>

#include "checkpoint.hpp"
#include "cli.hpp"
#include "data.hpp"
#include "history.hpp"
#include "inference.hpp"
#include "model.hpp"
#include "plot_svg.hpp"
#include "report.hpp"
#include "train.hpp"

namespace {

using namespace minilm;
using optimi::DType;

constexpr int kInterruptedExit = 130;  // what shells report for Ctrl-C

ModelConfig architecture(const Config& c) {
  return {.vocab = 256,
          .d_model = c.d_model,
          .layers = c.layers,
          .heads = c.heads,
          .max_seq = c.seq,
          .rope = c.rope};
}

// The command line over the resumed checkpoint's settings over the defaults. The architecture
// always comes from the checkpoint; contradicting it is an error.
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
void check_fits_in_memory(const Config& c) {
  const double d = double(c.d_model), layers = double(c.layers), seq = double(c.seq);
  const double params = 2 * 256 * d + 256 + 2 * d + seq * d + layers * (12 * d * d + 13 * d);
  const double activations =
      double(c.batch) * seq * (layers * (34 * d + 5 * double(c.heads) * seq) + 3 * 256);
  const double need = 16 * params + 4 * activations;
  const double have = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  if (have > 0 && need > have)
    throw std::invalid_argument(
        "this configuration needs about " + format_bytes(int64_t(std::min(need, 9e18))) +
        " of memory to train, more than this machine's " + format_bytes(int64_t(have)) +
        ": lower --d-model, --layers, --seq or --batch");
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

void write_metrics(const Config& c, nlohmann::json j) {
  if (c.metrics_json.empty()) return;
  j["settings"] = run_settings(c);
  write_json_atomically(c.metrics_json, j);
}

void print_sample(const Config& c, MiniLM& model, std::string_view prompt_source,
                  optimi::Device device, nlohmann::json& metrics) {
  if (c.generate == 0) return;
  // A prompt from the validation text: the model continues something it has not trained on.
  std::string prompt(prompt_source.substr(0, std::min<size_t>(prompt_source.size(), 24)));
  std::string text = sample(model, prompt, c.generate, optimi::default_generator(), device);
  metrics["generated"] = text;
  // Control bytes (an undertrained model emits any byte) would garble the terminal.
  for (char& ch : text)
    if ((static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f) ch = '?';
  std::cout << "sample (prompt, then " << c.generate << " generated bytes):\n" << text << "\n";
}

int score(const Config& c, const std::optional<Checkpoint>& ck, optimi::Device device) {
  auto model = build_model(c, ck, device);
  const std::string bytes = read_file(c.score, "--score");
  const int64_t windows = window_count(bytes, c.seq);
  if (windows == 0)
    throw std::runtime_error(
        "--score " + c.score + ": " + std::to_string(bytes.size()) +
        " bytes is shorter than one window of --seq + 1 = " + std::to_string(c.seq + 1) + " bytes");
  const double loss = evaluate(*model, bytes, c.batch, device);
  std::printf("score: %.6f over %lld windows\n", loss, static_cast<long long>(windows));
  nlohmann::json metrics = {{"score", loss}, {"score_windows", windows}, {"score_file", c.score}};
  print_sample(c, *model, bytes, device, metrics);
  write_metrics(c, metrics);
  return 0;
}

int train(const Config& c, const std::optional<Checkpoint>& ck, optimi::Device device) {
  const Dataset data = load_dataset(c.data, c.seq, c.seed);
  if (!c.dump_corpus.empty()) {
    std::filesystem::create_directories(c.dump_corpus);
    for (const auto& [name, text] : {std::pair{"train.txt", &data.train}, {"val.txt", &data.val}}) {
      std::ofstream out(std::filesystem::path(c.dump_corpus) / name, std::ios::binary);
      out << *text;
      if (!out) throw std::runtime_error("--dump-corpus: cannot write " + c.dump_corpus);
    }
  }
  auto model = build_model(c, ck, device);
  Trainer trainer(c, *model, data, device, ck ? &*ck : nullptr);
  print_header(std::cout, c, *model, data, trainer.optimizer(), trainer.step(), ck ? c.resume : "");
  Progress progress(std::cout, isatty(STDOUT_FILENO) != 0, c.steps, trainer.step());
  const int64_t first_step = trainer.step();
  const auto started = std::chrono::steady_clock::now();
  const Trainer::Outcome outcome = trainer.run(progress);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const History& h = trainer.history();
  nlohmann::json metrics = h.to_json();
  metrics["step"] = trainer.step();
  metrics["wall_seconds"] = seconds;
  int64_t parameters = 0;
  for (const optimi::Tensor& p : model->parameters()) parameters += p.numel();
  metrics["parameters"] = parameters;
  if (data.floor) metrics["floor"] = *data.floor;
  if (data.val_floor) metrics["val_floor"] = *data.val_floor;

  std::cout << "trained " << h.train.size() << " steps in all, this session "
            << format_duration(seconds) << "\n";
  if (!h.val.empty()) {
    const double final_val = h.val.back().loss;
    metrics["final_val_loss"] = final_val;
    std::printf("validation loss %.4f nats/byte at step %lld", final_val,
                static_cast<long long>(h.val.back().step));
    if (data.floor)
      std::printf("; best achievable %.4f (this text under the grammar: %.4f), gap %.4f",
                  *data.floor, *data.val_floor, final_val - *data.floor);
    std::printf("\n");
  }
  // Gradients and activations are measured while training: not when there was nothing to do.
  if (trainer.step() > first_step) {
    const MemoryReport m = trainer.memory();
    metrics["memory"] = {{"parameters", m.parameters},
                         {"gradients_peak", m.gradients_peak},
                         {"optimizer_state", m.optimizer_state},
                         {"kahan_buffers", m.kahan},
                         {"peak_all_tensors", m.peak_all}};
    print_memory_table(std::cout, m);
  }
  if (!c.plot.empty()) write_loss_plot(c.plot, h, data.floor);

  if (outcome != Trainer::Outcome::kFinished) {
    const bool saved = trainer.last_checkpoint_step().has_value();
    std::cout << (outcome == Trainer::Outcome::kInterrupted ? "interrupted" : "stopped")
              << " after step " << trainer.step();
    if (saved) {
      std::cout << "; checkpoint " << c.checkpoint << " holds step "
                << *trainer.last_checkpoint_step() << ": continue with --resume " << c.checkpoint;
    } else {
      std::cout << " (nothing saved: no --checkpoint)";
    }
    std::cout << "\n";
    write_metrics(c, metrics);
    return outcome == Trainer::Outcome::kInterrupted ? kInterruptedExit : 0;
  }
  print_sample(c, *model, data.val, device, metrics);
  write_metrics(c, metrics);
  return 0;
}

int run(int argc, char** argv) {
  const Flags flags = parse_flags(argc, argv);
  Config c;
  apply_flags(c, flags);
  if (c.help) {
    std::cout << usage();
    return 0;
  }
  std::optional<Checkpoint> ck;
  if (!c.resume.empty()) ck = read_checkpoint(c.resume);
  c = resolve_config(flags, ck);
  validate(c);
  check_fits_in_memory(c);
  c.warmup = std::min(c.warmup, std::max<int64_t>(c.steps - 1, 0));
  const optimi::Device device = c.device == "cuda" ? optimi::Device::cuda() : optimi::Device::cpu();
  optimi::set_detect_anomaly(c.detect_anomaly);
  return c.score.empty() ? train(c, ck, device) : score(c, ck, device);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cout << std::flush;
    std::cerr << "minilm: error: out of memory: the model or batch is too large for this machine"
              << std::endl;
  } catch (const std::exception& e) {
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::cout << std::flush;
    std::cerr << "minilm: error: " << message << std::endl;
  } catch (...) {
    std::cerr << "minilm: error: unexpected failure" << std::endl;
  }
  return 1;
}
