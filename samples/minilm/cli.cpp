#include "cli.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <stdexcept>

#include <optimi/optimi.hpp>

namespace minilm {
namespace {

int64_t parse_int(const std::string& flag, const std::string& s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    throw std::invalid_argument("--" + flag + ": expected an integer, got '" + s + "'");
  return v;
}

double parse_double(const std::string& flag, const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    throw std::invalid_argument("--" + flag + ": expected a number, got '" + s + "'");
  return v;
}

// The shortest text that reads back as the same double: exact in checkpoints, tidy in --help.
std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

struct Option {
  std::string name;
  std::string metavar;  // empty: a switch
  std::string help;
  bool run_setting;
  std::function<void(Config&, const std::string&)> set;
  std::function<std::string(const Config&)> get;  // run settings a checkpoint stores
};

template <class T>
Option integer(std::string name, std::string help, T Config::*field, bool run = true) {
  return {name,
          "N",
          std::move(help),
          run,
          [field, name](Config& c, const std::string& v) { c.*field = T(parse_int(name, v)); },
          [field](const Config& c) { return std::to_string(c.*field); }};
}
Option real(std::string name, std::string help, double Config::*field) {
  return {name,
          "X",
          std::move(help),
          true,
          [field, name](Config& c, const std::string& v) { c.*field = parse_double(name, v); },
          [field](const Config& c) { return format_double(c.*field); }};
}
Option text(std::string name, std::string metavar, std::string help, std::string Config::*field,
            bool run) {
  return {name,
          std::move(metavar),
          std::move(help),
          run,
          [field](Config& c, const std::string& v) { c.*field = v; },
          [field](const Config& c) { return c.*field; }};
}
// A boolean setting: "--name" turns it on, "--no-name" off; stored as "1"/"0".
std::vector<Option> toggle(std::string name, std::string help, bool Config::*field) {
  return {{name, "", help, true, [field](Config& c, const std::string& v) { c.*field = v != "0"; },
           [field](const Config& c) { return std::string(c.*field ? "1" : "0"); }},
          {"no-" + name, "", "", true, [field](Config& c, const std::string&) { c.*field = false; },
           nullptr}};
}

const std::vector<Option>& options() {
  static const std::vector<Option> table = [] {
    std::vector<Option> t = {
        integer("steps", "optimizer steps in the whole run", &Config::steps),
        integer("batch", "sequences per micro-batch", &Config::batch),
        integer("seq", "context length in bytes (max_seq)", &Config::seq),
        integer("d-model", "model width", &Config::d_model),
        integer("layers", "transformer blocks", &Config::layers),
        integer("heads", "attention heads (must divide --d-model)", &Config::heads),
        real("lr", "peak learning rate", &Config::lr),
        real("weight-decay", "weight decay of the decay group", &Config::weight_decay),
        integer("warmup", "linear warmup steps before the cosine decay", &Config::warmup),
        text("optimizer", "NAME", "sgd, adam, adamw, adan, lion, radam, ranger or stableadamw",
             &Config::optimizer, true),
        text("dtype", "T", "float32, or bfloat16 via to_low_precision", &Config::dtype, true),
        integer("accumulation", "micro-batches per optimizer step", &Config::accumulation),
        text("device", "D", "cpu or cuda", &Config::device, true),
        text("data", "FILE", "train on any file's bytes instead of the generated corpus",
             &Config::data, true),
        integer("seed", "seed of the corpus, initialisation and batches", &Config::seed),
        integer("eval-every", "validate (and checkpoint) every N steps", &Config::eval_every),
        text("checkpoint", "PATH", "write model (+ optimizer) safetensors here",
             &Config::checkpoint, false),
        text("resume", "PATH", "continue the run saved in PATH (or start from its weights)",
             &Config::resume, false),
        integer("stop-after", "stop (and checkpoint) after step N, to resume later",
                &Config::stop_after, false),
        text("metrics-json", "PATH", "write every logged figure as JSON", &Config::metrics_json,
             false),
        text("plot", "PATH.svg", "write the train and validation loss curves", &Config::plot,
             false),
        integer("generate",
                "sample N bytes at the end (with --resume and --steps 0: from the file as is)",
                &Config::generate, false),
        text("score", "FILE", "with --resume: mean loss on FILE's windows, no training",
             &Config::score, false),
        text("dump-corpus", "DIR", "write the train and validation text to DIR",
             &Config::dump_corpus, false),
    };
    for (auto& o :
         toggle("rope", "rotary positions instead of learned pos_embeddings", &Config::rope))
      t.push_back(std::move(o));
    for (auto& o :
         toggle("decouple-lr", "fully decoupled weight decay (default on)", &Config::decouple_lr))
      t.push_back(std::move(o));
    for (auto& o :
         toggle("kahan", "Kahan summation for bfloat16 parameters (default on)", &Config::kahan))
      t.push_back(std::move(o));
    for (auto& o : toggle("gradient-release", "step each parameter during backward",
                          &Config::gradient_release))
      t.push_back(std::move(o));
    for (auto& o : toggle("detect-anomaly",
                          "stop at the first op whose forward or backward "
                          "produces NaN or Inf, naming it (slow)",
                          &Config::detect_anomaly))
      t.push_back(std::move(o));
    t.push_back({"help", "", "show this help", false,
                 [](Config& c, const std::string&) { c.help = true; }, nullptr});
    return t;
  }();
  return table;
}

const Option* find_option(const std::string& name) {
  for (const Option& o : options())
    if (o.name == name) return &o;
  return nullptr;
}

}  // namespace

Flags parse_flags(int argc, const char* const* argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h") arg = "--help";
    if (!arg.starts_with("--") || arg.size() == 2)
      throw std::invalid_argument("unexpected argument '" + arg + "' (see --help)");
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Option* o = find_option(name);
    if (!o) throw std::invalid_argument("unknown flag --" + name + " (see --help)");
    if (o->metavar.empty()) {
      if (inline_value) throw std::invalid_argument("--" + name + " takes no value");
    } else if (!inline_value) {
      if (i + 1 >= argc) throw std::invalid_argument("--" + name + " needs a value");
      value = argv[++i];
    }
    flags.emplace_back(std::move(name), std::move(value));
  }
  return flags;
}

void apply_flags(Config& config, const Flags& flags, bool run_settings_only) {
  for (const auto& [name, value] : flags) {
    const Option* o = find_option(name);
    if (!run_settings_only || o->run_setting) o->set(config, value);
  }
}

std::map<std::string, std::string> run_settings(const Config& config) {
  std::map<std::string, std::string> out;
  for (const Option& o : options())
    if (o.run_setting && o.get) out[o.name] = o.get(config);
  return out;
}

void apply_run_settings(Config& config, const std::map<std::string, std::string>& settings) {
  for (const auto& [name, value] : settings) {
    const Option* o = find_option(name);
    if (!o || !o->run_setting || !o->get)
      throw std::runtime_error("the checkpoint stores an unknown setting '" + name + "'");
    o->set(config, value);
  }
}

bool given(const Flags& flags, const std::string& name) {
  return std::any_of(flags.begin(), flags.end(), [&](const auto& f) { return f.first == name; });
}

void validate(const Config& c) {
  auto at_least = [](const char* flag, int64_t v, int64_t min) {
    if (v < min)
      throw std::invalid_argument(std::string("--") + flag + " must be at least " +
                                  std::to_string(min) + ", got " + std::to_string(v));
  };
  auto one_of = [](const char* flag, const std::string& v, std::vector<std::string> allowed) {
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    throw std::invalid_argument(std::string("--") + flag + " must be one of " + list + ", got '" +
                                v + "'");
  };
  at_least("steps", c.steps, 0);
  at_least("batch", c.batch, 1);
  at_least("seq", c.seq, 1);
  at_least("d-model", c.d_model, 1);
  at_least("layers", c.layers, 1);
  at_least("heads", c.heads, 1);
  at_least("warmup", c.warmup, 0);
  at_least("accumulation", c.accumulation, 1);
  at_least("eval-every", c.eval_every, 1);
  at_least("generate", c.generate, 0);
  at_least("stop-after", c.stop_after, 0);
  if (c.d_model % c.heads != 0)
    throw std::invalid_argument("--heads " + std::to_string(c.heads) +
                                " does not divide --d-model " + std::to_string(c.d_model));
  if (c.rope && (c.d_model / c.heads) % 2 != 0)
    throw std::invalid_argument("--rope needs an even head size, got --d-model / --heads = " +
                                std::to_string(c.d_model / c.heads));
  if (!(c.lr > 0)) throw std::invalid_argument("--lr must be positive, got " + format_double(c.lr));
  if (!(c.weight_decay >= 0))
    throw std::invalid_argument("--weight-decay must be non-negative, got " +
                                format_double(c.weight_decay));
  one_of("optimizer", c.optimizer,
         {"sgd", "adam", "adamw", "adan", "lion", "radam", "ranger", "stableadamw"});
  one_of("dtype", c.dtype, {"float32", "bfloat16"});
  one_of("device", c.device, {"cpu", "cuda"});
  if (c.device == "cuda" && !optimi::cuda_is_available())
    throw std::invalid_argument("--device cuda: no CUDA device is available in this build");
  if (!c.score.empty() && c.resume.empty())
    throw std::invalid_argument("--score needs --resume PATH: the model to score");
}

std::string usage() {
  std::ostringstream os;
  const Config defaults;
  const auto values = run_settings(defaults);
  os << "usage: minilm [flags]\n\n"
        "Trains a small byte-level transformer language model with optimi, on a generated\n"
        "corpus whose best achievable loss is known (or on --data FILE), and reports how it "
        "went.\n\n";
  for (const Option& o : options()) {
    if (o.help.empty()) continue;
    std::string left = "  --" + o.name;
    if (o.metavar.empty() && o.get) left += ", --no-" + o.name;  // a toggle
    if (!o.metavar.empty()) left += " " + o.metavar;
    const size_t column = 30;
    os << left
       << (left.size() < column ? std::string(column - left.size(), ' ')
                                : "\n" + std::string(column, ' '))
       << o.help;
    if (!o.metavar.empty() && o.get && o.run_setting && !values.at(o.name).empty())
      os << " [" << values.at(o.name) << "]";
    os << "\n";
  }
  return os.str();
}

}  // namespace minilm
