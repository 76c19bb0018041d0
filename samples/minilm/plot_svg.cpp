#include "plot_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace minilm {
namespace {

constexpr double kWidth = 760, kHeight = 440;
constexpr double kLeft = 64, kRight = 24, kTop = 44, kBottom = 52;

std::string num(double v, int digits = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string label(double v) {  // 0.5, 1, 1.5, 20
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Maps steps and losses to pixels: linear in the step, logarithmic in the loss.
struct Axes {
  double x0, x1, y0, y1;  // data ranges; y as losses
  double x(double step) const {
    return kLeft + (step - x0) / std::max(1e-12, x1 - x0) * (kWidth - kLeft - kRight);
  }
  double y(double loss) const {
    const double t = (std::log(loss) - std::log(y0)) / (std::log(y1) - std::log(y0));
    return kHeight - kBottom - t * (kHeight - kTop - kBottom);
  }
};

std::string polyline(const std::vector<std::pair<double, double>>& points, const Axes& a,
                     const std::string& style) {
  std::string s = "<polyline fill=\"none\" " + style + " points=\"";
  for (const auto& [step, loss] : points) s += num(a.x(step)) + "," + num(a.y(loss)) + " ";
  return s + "\"/>\n";
}

// Round numbers between lo and hi for the loss axis, denser the narrower the range.
std::vector<double> loss_ticks(double lo, double hi) {
  const std::vector<double> mantissas = hi / lo < 8 ? std::vector<double>{1, 1.5, 2, 3, 4, 5, 6, 8}
                                        : hi / lo < 40 ? std::vector<double>{1, 1.5, 2, 3, 5, 7}
                                                       : std::vector<double>{1, 2, 5};
  std::vector<double> ticks;
  for (double decade = std::pow(10.0, std::floor(std::log10(lo))); decade <= hi; decade *= 10)
    for (double m : mantissas)
      if (m * decade >= lo && m * decade <= hi) ticks.push_back(m * decade);
  return ticks;
}

std::vector<double> step_ticks(double hi) {
  const double raw = hi / 6, mag = std::pow(10.0, std::floor(std::log10(std::max(raw, 1.0))));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = 0; v <= hi + 1e-9; v += step) t.push_back(v);
  return t;
}

}  // namespace

void write_loss_plot(const std::filesystem::path& path, const History& h,
                     std::optional<double> floor) {
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kWidth / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">"
      << "MiniLM loss (nats per byte)</text>\n";

  double lo = 1e300, hi = 0, last_step = 1;
  for (const auto& p : h.train) lo = std::min(lo, p.loss), hi = std::max(hi, p.loss);
  for (const auto& p : h.val) lo = std::min(lo, p.loss), hi = std::max(hi, p.loss);
  if (!h.train.empty()) last_step = double(h.train.back().step);
  if (!h.val.empty()) last_step = std::max(last_step, double(h.val.back().step));
  if (floor) lo = std::min(lo, *floor);
  if (hi <= 0 || lo <= 0 || lo > hi) lo = 0.5, hi = 6;  // nothing (positive) to show
  const Axes a{0, last_step, lo / 1.1, hi * 1.1};

  // Grid and axes.
  for (double t : loss_ticks(a.y0, a.y1)) {
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kWidth - kRight << "\" y1=\"" << num(a.y(t))
        << "\" y2=\"" << num(a.y(t)) << "\" stroke=\"#e4e4e4\"/>\n"
        << "<text x=\"" << kLeft - 6 << "\" y=\"" << num(a.y(t) + 4) << "\" text-anchor=\"end\">"
        << label(t) << "</text>\n";
  }
  for (double t : step_ticks(last_step)) {
    svg << "<line x1=\"" << num(a.x(t)) << "\" x2=\"" << num(a.x(t)) << "\" y1=\"" << kTop
        << "\" y2=\"" << kHeight - kBottom << "\" stroke=\"#f0f0f0\"/>\n"
        << "<text x=\"" << num(a.x(t)) << "\" y=\"" << kHeight - kBottom + 18
        << "\" text-anchor=\"middle\">" << num(t, 0) << "</text>\n";
  }
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << kWidth - kLeft - kRight
      << "\" height=\"" << kHeight - kTop - kBottom << "\" fill=\"none\" stroke=\"#888\"/>\n"
      << "<text x=\"" << (kLeft + kWidth - kRight) / 2 << "\" y=\"" << kHeight - 12
      << "\" text-anchor=\"middle\">step</text>\n";

  // Curves: raw training loss faint, its centred moving average bold (a trailing average
  // would lag the steep start), validation with markers.
  std::vector<std::pair<double, double>> raw, smooth, val;
  const size_t n = h.train.size(), stride = std::max<size_t>(1, n / 1500);
  const size_t half = std::clamp<size_t>(n / 100, 1, 25);
  std::vector<size_t> shown;
  for (size_t i = 0; i < n; i += stride) shown.push_back(i);
  if (n > 0 && shown.back() != n - 1) shown.push_back(n - 1);
  for (size_t i : shown) {
    const size_t from = i > half ? i - half : 0, to = std::min(n, i + half + 1);
    double sum = 0;
    for (size_t j = from; j < to; ++j) sum += h.train[j].loss;
    raw.emplace_back(double(h.train[i].step), h.train[i].loss);
    smooth.emplace_back(double(h.train[i].step), sum / double(to - from));
  }
  for (const auto& p : h.val) val.emplace_back(double(p.step), p.loss);
  if (floor) {
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kWidth - kRight << "\" y1=\"" << num(a.y(*floor))
        << "\" y2=\"" << num(a.y(*floor)) << "\" stroke=\"#2a9d4b\" stroke-dasharray=\"6 4\"/>\n";
  }
  svg << polyline(raw, a, "stroke=\"#9cc3e6\" stroke-width=\"1\"")
      << polyline(smooth, a, "stroke=\"#1f5fa8\" stroke-width=\"2\"")
      << polyline(val, a, "stroke=\"#e07020\" stroke-width=\"2\"");
  for (const auto& [step, loss] : val)
    svg << "<circle cx=\"" << num(a.x(step)) << "\" cy=\"" << num(a.y(loss))
        << "\" r=\"3\" fill=\"#e07020\"/>\n";
  if (!val.empty())  // the figure a user looks for: the final validation loss
    svg << "<text x=\"" << num(a.x(val.back().first) - 4) << "\" y=\""
        << num(a.y(val.back().second) - 10) << "\" text-anchor=\"end\" fill=\"#e07020\">"
        << num(val.back().second, 4) << "</text>\n";

  // Legend, top right.
  struct Entry {
    std::string color, label, dash;
  };
  std::vector<Entry> legend = {{"#1f5fa8", "training (moving average)", ""},
                               {"#e07020", "validation", ""}};
  if (floor) legend.push_back({"#2a9d4b", "best achievable " + num(*floor, 3), "6 4"});
  double ly = kTop + 16;
  for (const Entry& e : legend) {
    const double lx = kWidth - kRight - 190;
    svg << "<line x1=\"" << lx << "\" x2=\"" << lx + 24 << "\" y1=\"" << ly - 4 << "\" y2=\""
        << ly - 4 << "\" stroke=\"" << e.color << "\" stroke-width=\"2\""
        << (e.dash.empty() ? "" : " stroke-dasharray=\"" + e.dash + "\"") << "/>\n"
        << "<text x=\"" << lx + 30 << "\" y=\"" << ly << "\">" << e.label << "</text>\n";
    ly += 18;
  }
  svg << "</svg>\n";

  std::ofstream out(path);
  out << svg.str();
  if (!out) throw std::runtime_error("cannot write --plot " + path.string());
}

}  // namespace minilm
