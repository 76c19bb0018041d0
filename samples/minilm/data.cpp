#include "data.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "corpus.hpp"

namespace minilm {
namespace {

constexpr size_t kGeneratedTrainBytes = size_t(2) << 20;
// Validation windows: enough for a steady figure, few enough to validate often.
constexpr int64_t kValWindows = 128;

Batch make_batch(std::string_view text, const std::vector<size_t>& offsets, int64_t seq,
                 optimi::Device device) {
  const int64_t b = int64_t(offsets.size());
  std::vector<int64_t> inputs(size_t(b * seq)), targets(inputs.size());
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t t = 0; t < seq; ++t) {
      inputs[size_t(i * seq + t)] =
          static_cast<unsigned char>(text[offsets[size_t(i)] + size_t(t)]);
      targets[size_t(i * seq + t)] =
          static_cast<unsigned char>(text[offsets[size_t(i)] + size_t(t) + 1]);
    }
  }
  return {optimi::Tensor::from_vector(inputs, {b, seq}, device),
          optimi::Tensor::from_vector(targets, {b, seq}, device)};
}

}  // namespace

std::string read_file(const std::string& path, const char* what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(std::string(what) + " " + path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string(what) + " " + path + ": " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(std::string(what) + " " + path + ": read error");
  return bytes;
}

Dataset load_dataset(const std::string& path, int64_t seq, uint64_t seed) {
  Dataset d;
  const size_t window = size_t(seq) + 1;
  if (path.empty()) {
    const Grammar& grammar = Grammar::english();
    // Distinct streams for the two splits, so validation text is never trained on.
    Grammar::Text train = grammar.generate(std::max(kGeneratedTrainBytes, 4 * window), 2 * seed);
    Grammar::Text val = grammar.generate(size_t(kValWindows) * size_t(seq) + 1, 2 * seed + 1);
    d.source = "generated grammar corpus (seed " + std::to_string(seed) + ")";
    d.train = std::move(train.bytes);
    d.val = std::move(val.bytes);
    d.floor = grammar.entropy_rate();
    d.val_floor = val.nll_per_byte;
    return d;
  }
  std::string bytes = read_file(path, "--data");
  if (bytes.empty()) throw std::runtime_error("--data " + path + ": the file is empty");
  if (bytes.size() < 2 * window)
    throw std::runtime_error("--data " + path + ": " + std::to_string(bytes.size()) +
                             " bytes is too short for --seq " + std::to_string(seq) +
                             ": need at least " + std::to_string(2 * window) +
                             " (one training and one validation window)");
  // A tenth for validation, at least one window and at most kValWindows of them.
  const size_t val_bytes =
      std::clamp(bytes.size() / 10, window, size_t(kValWindows) * size_t(seq) + 1);
  const size_t cut = bytes.size() - val_bytes;
  d.source = path;
  d.val = bytes.substr(cut);
  bytes.resize(cut);
  d.train = std::move(bytes);
  return d;
}

Batch random_batch(std::string_view text, int64_t batch, int64_t seq, optimi::Generator& rng,
                   optimi::Device device) {
  const uint64_t positions = text.size() - size_t(seq);  // offsets 0 .. size - seq - 1
  std::vector<size_t> offsets(static_cast<size_t>(batch));
  for (size_t& o : offsets) o = size_t(rng.next_u64() % positions);
  return make_batch(text, offsets, seq, device);
}

int64_t window_count(std::string_view text, int64_t seq) {
  return text.size() < size_t(seq) + 1 ? 0 : int64_t((text.size() - 1) / size_t(seq));
}

Batch window_batch(std::string_view text, int64_t first, int64_t count, int64_t seq,
                   optimi::Device device) {
  std::vector<size_t> offsets;
  for (int64_t w = first; w < first + count; ++w) offsets.push_back(size_t(w * seq));
  return make_batch(text, offsets, seq, device);
}

}  // namespace minilm
