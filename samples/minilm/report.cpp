#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <ostream>
#include <set>

namespace minilm {
namespace {

std::string scientific(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2g", v);
  return buf;
}

// "blocks.3.qkv.bias" -> "blocks.*.qkv.bias": one entry per layer kind instead of per layer.
std::vector<std::string> collapse_layers(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (std::string n : names) {
    if (n.starts_with("blocks.")) {
      const size_t dot = n.find('.', 7);
      if (dot != std::string::npos) n = "blocks.*" + n.substr(dot);
    }
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : sep) + i;
  return s;
}

// Word-wraps `text` at `width` columns, continuation lines indented by `indent`.
std::string wrap(const std::string& text, size_t first_column, size_t indent, size_t width = 98) {
  std::string out, word;
  size_t column = first_column;
  auto flush = [&] {
    if (word.empty()) return;
    if (column + word.size() + 1 > width && column > indent) {
      out.push_back('\n');
      out.append(indent, ' ');
      column = indent;
    } else if (!out.empty()) {
      out.push_back(' ');
      ++column;
    }
    out.append(word);
    column += word.size();
    word.clear();
  };
  for (char c : text) {
    if (c == ' ') {
      flush();
    } else {
      word += c;
    }
  }
  flush();
  return out;
}

}  // namespace

std::string format_fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string format_count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string format_bytes(int64_t n) {
  if (n < 1024) return std::to_string(n) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = double(n) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) v /= 1024, ++u;
  return format_fixed(v, v < 10 ? 2 : 1) + " " + units[u];
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const int64_t s = int64_t(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600),
                  (long long)(s / 60 % 60), (long long)(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  }
  return buf;
}

void print_header(std::ostream& os, const Config& c, const MiniLM& model, const Dataset& data,
                  const optimi::optim::Optimizer& optimizer, int64_t start_step,
                  const std::string& resumed_from) {
  const size_t indent = 14;
  auto row = [&](const std::string& label, const std::string& text) {
    os << "  " << label << std::string(indent - 2 - label.size(), ' ') << wrap(text, indent, indent)
       << "\n";
  };
  os << "MiniLM: a byte-level transformer language model trained with optimi\n";
  row("data", data.source + ": " + format_count(int64_t(data.train.size())) + " training, " +
                  format_count(int64_t(data.val.size())) + " validation bytes");
  if (data.floor)
    row("", "best achievable loss (the grammar's entropy rate): " + format_fixed(*data.floor, 4) +
                " nats/byte");

  int64_t count = 0;
  std::map<const optimi::TensorImpl*, std::string> names;
  for (const auto& [name, p] : model.named_parameters()) {
    count += p.numel();
    names[p.impl()] = name;
  }
  const ModelConfig& a = model.config();
  row("model", "d_model " + std::to_string(a.d_model) + ", " + std::to_string(a.layers) +
                   (a.layers == 1 ? " layer, " : " layers, ") + std::to_string(a.heads) +
                   " heads, max_seq " + std::to_string(a.max_seq) + ", " +
                   (a.rope ? "rotary positions" : "learned positions") + ": " +
                   format_count(count) + " parameters");

  // Module families and the dtypes to_low_precision left them in.
  std::map<std::string, std::set<std::string>> families;
  std::vector<std::string> order;
  for (const auto& [name, m] : model.named_modules()) {
    if (!m->named_children().empty()) continue;
    std::string family = m->type_name();
    if (!families.contains(family)) order.push_back(family);
    for (const auto& [n, t] : m->named_parameters(false))
      families[family].insert(std::string(optimi::dtype_name(t.dtype())));
    for (const auto& [n, t] : m->named_buffers(false))
      families[family].insert(std::string(optimi::dtype_name(t.dtype())) + " buffers");
  }
  std::vector<std::string> dtypes;
  for (const auto& f : order)
    dtypes.push_back(f + " " + join({families[f].begin(), families[f].end()}, "/"));
  row("dtypes", join(dtypes, ", "));

  std::string opt = std::string(optimizer.name()) + ", lr " + scientific(c.lr) + ", " +
                    (c.decouple_lr ? "decoupled" : "coupled") + " weight decay";
  if (c.dtype != "float32") opt += c.kahan ? ", Kahan summation" : ", no Kahan summation";
  if (c.gradient_release) opt += ", gradient release";
  if (c.accumulation > 1)
    opt += std::string(c.gradient_release ? ", optimizer" : ", gradient") + " accumulation over " +
           std::to_string(c.accumulation) + " micro-batches";
  row("optimizer", opt);
  row("schedule", "linear warmup over " + std::to_string(c.warmup) + " steps, then cosine to " +
                      scientific(c.lr / 10) + " at step " + std::to_string(c.steps));
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    std::vector<std::string> group_names;
    int64_t n = 0;
    for (const auto& p : optimizer.group_params(g)) {
      group_names.push_back(names[p.impl()]);
      n += p.numel();
    }
    const double wd = optimizer.weight_decay(g);
    row(g == 0 ? "groups" : "", std::string(wd == 0 ? "no decay" : "decay " + scientific(wd)) +
                                    ": " + format_count(n) + " parameters in " +
                                    std::to_string(group_names.size()) +
                                    " tensors: " + join(collapse_layers(group_names), ", "));
  }
  row("training", std::to_string(c.steps) + " steps of " + std::to_string(c.batch) + " x " +
                      std::to_string(c.seq) + " bytes" +
                      (c.accumulation > 1 ? " x " + std::to_string(c.accumulation) : "") + ", " +
                      c.dtype + " on " + c.device + ", seed " + std::to_string(c.seed) +
                      ", validation every " + std::to_string(c.eval_every) + " steps");
  if (!resumed_from.empty())
    row("resumed", resumed_from + " at step " + std::to_string(start_step));
  os << std::flush;
}

Progress::Progress(std::ostream& os, bool terminal, int64_t total_steps, int64_t first_step)
    : os_(os),
      terminal_(terminal),
      total_(total_steps),
      every_(std::max<int64_t>(1, (total_steps - first_step) / 20)) {}

void Progress::update(int64_t step, double loss, double lr, double tokens_per_s, double eta) {
  char stats[160];
  std::snprintf(stats, sizeof stats, "loss %.4f  lr %.2e  %s tok/s  ETA %s", loss, lr,
                tokens_per_s >= 1e4 ? (format_fixed(tokens_per_s / 1e3, 1) + "k").c_str()
                                    : format_fixed(tokens_per_s, 0).c_str(),
                format_duration(eta).c_str());
  const std::string counter = "step " + std::to_string(step) + "/" + std::to_string(total_);
  if (!terminal_) {
    if (step % every_ == 0 || step == total_) os_ << counter << "  " << stats << std::endl;
    return;
  }
  // Redrawing costs a terminal write; ten a second is plenty.
  const auto now = std::chrono::steady_clock::now();
  if (bar_shown_ && step != total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const int width = 24;
  const int filled = int(double(width) * double(step) / double(std::max<int64_t>(1, total_)));
  os_ << "\r\033[K" << counter << " [" << std::string(size_t(filled), '#')
      << std::string(size_t(width - filled), '.') << "] " << stats << std::flush;
  bar_shown_ = true;
}

void Progress::clear() {
  if (terminal_ && bar_shown_) os_ << "\r\033[K";
  bar_shown_ = false;
}

void Progress::message(const std::string& line) {
  clear();
  os_ << line << std::endl;
}

void Progress::finish() {
  clear();
}

void print_memory_table(std::ostream& os, const MemoryReport& m) {
  const double n = double(std::max<int64_t>(1, m.num_parameters));
  char line[160];
  auto row = [&](const char* label, int64_t bytes) {
    std::snprintf(line, sizeof line, "  %-22s %12s %10.2f\n", label, format_bytes(bytes).c_str(),
                  double(bytes) / n);
    os << line;
  };
  std::snprintf(line, sizeof line, "memory (measured)        %12s %10s\n", "bytes", "per param");
  os << line;
  row("parameters", m.parameters);
  row("gradients (peak)", m.gradients_peak);
  row("optimizer state", m.optimizer_state);
  row("Kahan buffers", m.kahan);
  row("total", m.parameters + m.gradients_peak + m.optimizer_state + m.kahan);
  row("peak, all tensors", m.peak_all);
}

}  // namespace minilm
