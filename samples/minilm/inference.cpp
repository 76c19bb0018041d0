#include "inference.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "data.hpp"

namespace minilm {

double evaluate(MiniLM& model, std::string_view text, int64_t batch, optimi::Device device) {
  const int64_t seq = model.config().max_seq, windows = window_count(text, seq);
  if (windows == 0)
    throw std::runtime_error("no evaluation window: the text has " + std::to_string(text.size()) +
                             " bytes, a window needs " + std::to_string(seq + 1));
  optimi::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double total = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t count = std::min(batch, windows - first);
    Batch b = window_batch(text, first, count, seq, device);
    total += model.loss(b.inputs, b.targets).item() * double(count);
  }
  model.train(was_training);
  return total / double(windows);
}

std::string sample(MiniLM& model, std::string prompt, int64_t n, optimi::Generator& rng,
                   optimi::Device device) {
  optimi::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const size_t context = size_t(model.config().max_seq);
  if (prompt.empty()) prompt.push_back('\n');
  for (int64_t i = 0; i < n; ++i) {
    const size_t start = prompt.size() > context ? prompt.size() - context : 0;
    std::vector<int64_t> idx;
    for (size_t j = start; j < prompt.size(); ++j)
      idx.push_back(static_cast<unsigned char>(prompt[j]));
    const int64_t t = int64_t(idx.size());
    optimi::Tensor logits =
        model.forward(optimi::Tensor::from_vector(idx, {1, t}, device)).select(1, t - 1);
    std::vector<double> p = logits.to_vector<double>();
    const double top = *std::max_element(p.begin(), p.end());
    double total = 0;
    for (double& v : p) total += (v = std::exp(v - top));
    double u = rng.uniform() * total;
    size_t byte = 0;
    while (byte + 1 < p.size() && (u -= p[byte]) >= 0) ++byte;
    prompt += char(byte);
  }
  model.train(was_training);
  return prompt;
}

}  // namespace minilm
