#include "model.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <tuple>

namespace minilm {

using optimi::Tensor;
namespace F = optimi::nn::functional;

namespace {

int64_t parse_metadata_int(const std::map<std::string, std::string>& metadata,
                           const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end())
    throw std::runtime_error("the file's __metadata__ lacks the architecture key '" + key + "'");
  const std::string& s = it->second;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size())
    throw std::runtime_error("__metadata__ key '" + key + "' is not an integer: '" + s + "'");
  return value;
}

}  // namespace

std::map<std::string, std::string> ModelConfig::to_metadata() const {
  return {{"vocab", std::to_string(vocab)},     {"d_model", std::to_string(d_model)},
          {"layers", std::to_string(layers)},   {"heads", std::to_string(heads)},
          {"max_seq", std::to_string(max_seq)}, {"rope", rope ? "1" : "0"}};
}

ModelConfig ModelConfig::from_metadata(const std::map<std::string, std::string>& metadata) {
  ModelConfig c;
  c.vocab = parse_metadata_int(metadata, "vocab");
  c.d_model = parse_metadata_int(metadata, "d_model");
  c.layers = parse_metadata_int(metadata, "layers");
  c.heads = parse_metadata_int(metadata, "heads");
  c.max_seq = parse_metadata_int(metadata, "max_seq");
  // Files from the PyTorch reference have no rotary variant, so the key is optional.
  c.rope = metadata.contains("rope") && parse_metadata_int(metadata, "rope") != 0;
  return c;
}

void ModelConfig::validate() const {
  auto positive = [](const char* what, int64_t v) {
    if (v < 1)
      throw std::invalid_argument(std::string(what) + " must be positive, got " +
                                  std::to_string(v));
  };
  if (vocab != 256)
    throw std::invalid_argument("vocab must be 256 (the model reads bytes), got " +
                                std::to_string(vocab));
  positive("d_model", d_model);
  positive("layers", layers);
  positive("heads", heads);
  positive("max_seq (--seq)", max_seq);
  if (d_model % heads != 0)
    throw std::invalid_argument("heads (" + std::to_string(heads) + ") must divide d_model (" +
                                std::to_string(d_model) + ")");
  if (rope && (d_model / heads) % 2 != 0)
    throw std::invalid_argument("rope needs an even head dimension, got d_model / heads = " +
                                std::to_string(d_model / heads));
}

std::map<std::string, optimi::Shape> ModelConfig::state_shapes() const {
  const int64_t d = d_model;
  std::map<std::string, optimi::Shape> s = {{"tok_embeddings.weight", {vocab, d}},
                                            {"norm.weight", {d}},
                                            {"norm.bias", {d}},
                                            {"head.weight", {vocab, d}},
                                            {"head.bias", {vocab}}};
  if (rope) {
    s["rotary.cos"] = s["rotary.sin"] = {max_seq, d / heads / 2};
  } else {
    s["pos_embeddings.weight"] = {max_seq, d};
  }
  for (int64_t i = 0; i < layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* norm : {"norm1", "norm2"}) {
      s[b + norm + ".weight"] = {d};
      s[b + norm + ".bias"] = {d};
    }
    for (const auto& [name, out, in] : {std::tuple{"qkv", 3 * d, d}, std::tuple{"proj", d, d},
                                        std::tuple{"fc1", 4 * d, d}, std::tuple{"fc2", d, 4 * d}}) {
      s[b + name + ".weight"] = {out, in};
      s[b + name + ".bias"] = {out};
    }
  }
  return s;
}

Rotary::Rotary(int64_t head_dim, int64_t max_seq) {
  const int64_t half = head_dim / 2;
  std::vector<float> c(size_t(max_seq * half)), s(c.size());
  for (int64_t t = 0; t < max_seq; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(t) * std::pow(10000.0, -2.0 * double(i) / double(head_dim));
      c[size_t(t * half + i)] = float(std::cos(angle));
      s[size_t(t * half + i)] = float(std::sin(angle));
    }
  }
  cos = register_buffer("cos", Tensor::from_vector(c, {max_seq, half}));
  sin = register_buffer("sin", Tensor::from_vector(s, {max_seq, half}));
}

Tensor Rotary::forward(const Tensor& x) const {
  const int64_t t = x.size(2), half = x.size(3) / 2;
  Tensor c = cos.slice(0, 0, t), s = sin.slice(0, 0, t);
  Tensor x1 = x.slice(3, 0, half), x2 = x.slice(3, half, 2 * half);
  // The tables stay float32, so the rotation is computed in float32 and rounded once.
  return optimi::cat({x1 * c - x2 * s, x2 * c + x1 * s}, 3).to(x.dtype());
}

Block::Block(int64_t d_model, int64_t heads, std::shared_ptr<const Rotary> rotary)
    : heads_(heads), rotary_(std::move(rotary)) {
  // Registration order is PyTorch's attribute order, which fixes named_parameters() order.
  norm1 = register_module("norm1", std::make_shared<optimi::nn::LayerNorm>(d_model));
  qkv = register_module("qkv", std::make_shared<optimi::nn::Linear>(d_model, 3 * d_model));
  proj = register_module("proj", std::make_shared<optimi::nn::Linear>(d_model, d_model));
  norm2 = register_module("norm2", std::make_shared<optimi::nn::LayerNorm>(d_model));
  fc1 = register_module("fc1", std::make_shared<optimi::nn::Linear>(d_model, 4 * d_model));
  fc2 = register_module("fc2", std::make_shared<optimi::nn::Linear>(4 * d_model, d_model));
}

Tensor Block::forward(const Tensor& x) const {
  const int64_t b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads_;
  std::vector<Tensor> parts = optimi::split(qkv->forward(norm1->forward(x)), d, -1);
  for (Tensor& p : parts) p = p.reshape({b, t, heads_, hd}).transpose(1, 2);
  if (rotary_) {
    parts[0] = rotary_->forward(parts[0]);
    parts[1] = rotary_->forward(parts[1]);
  }
  Tensor y = F::scaled_dot_product_attention(parts[0], parts[1], parts[2], /*is_causal=*/true);
  Tensor h = x + proj->forward(y.transpose(1, 2).reshape({b, t, d}));
  return h + fc2->forward(F::gelu(fc1->forward(norm2->forward(h)), F::GeluApproximation::Tanh));
}

MiniLM::MiniLM(const ModelConfig& config) : config_(config) {
  config_.validate();
  const int64_t d = config.d_model;
  tok_embeddings =
      register_module("tok_embeddings", std::make_shared<optimi::nn::Embedding>(config.vocab, d));
  if (config.rope) {
    rotary = register_module("rotary", std::make_shared<Rotary>(d / config.heads, config.max_seq));
  } else {
    pos_embeddings = register_module("pos_embeddings",
                                     std::make_shared<optimi::nn::Embedding>(config.max_seq, d));
  }
  blocks = register_module("blocks", std::make_shared<optimi::nn::ModuleList>());
  for (int64_t i = 0; i < config.layers; ++i)
    blocks->push_back(std::make_shared<Block>(d, config.heads, rotary));
  norm = register_module("norm", std::make_shared<optimi::nn::LayerNorm>(d));
  head = register_module("head", std::make_shared<optimi::nn::Linear>(d, config.vocab));
}

Tensor MiniLM::forward(const Tensor& idx) const {
  const int64_t t = idx.size(1);
  if (t > config_.max_seq)
    throw std::invalid_argument("MiniLM: sequence of " + std::to_string(t) +
                                " bytes exceeds max_seq " + std::to_string(config_.max_seq));
  Tensor x = tok_embeddings->forward(idx);
  if (pos_embeddings)
    x = x + pos_embeddings->forward(Tensor::arange(t, optimi::DType::Int64, idx.device()));
  // Embeddings stay float32 under to_low_precision; the blocks run in the head's dtype.
  x = x.to(head->weight.dtype());
  for (const auto& block : *blocks) x = static_cast<const Block&>(*block).forward(x);
  return head->forward(norm->forward(x));
}

Tensor MiniLM::loss(const Tensor& inputs, const Tensor& targets) const {
  Tensor logits = forward(inputs).to(optimi::DType::Float32);
  return F::cross_entropy(logits.reshape({-1, config_.vocab}), targets.reshape({-1}));
}

}  // namespace minilm
