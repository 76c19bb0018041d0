#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <optimi/optimi.hpp>

// The MiniLM byte-level decoder. Module and parameter names match
// shared/reference/minilm_torch.py one for one, so weights move between the two by name.
namespace minilm {

struct ModelConfig {
  int64_t vocab = 256;
  int64_t d_model = 128;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t max_seq = 128;
  bool rope = false;  // rotary position buffers (module `rotary`) instead of pos_embeddings

  // The architecture as the safetensors __metadata__ strings of minilm.md, and back.
  std::map<std::string, std::string> to_metadata() const;
  static ModelConfig from_metadata(const std::map<std::string, std::string>& metadata);
  // Throws std::invalid_argument naming the first inconsistent value.
  void validate() const;
  // Name -> shape of every tensor in MiniLM(*this).state_dict(), without building the model:
  // a checkpoint is checked against it before anything of its declared size is allocated.
  std::map<std::string, optimi::Shape> state_shapes() const;
};

// Rotary position embedding tables: cos and sin of position x frequency, [max_seq, head_dim / 2].
// Buffers, not parameters; to_low_precision keeps them in float32 (its default fp32_buffers
// selects modules named "rotary").
class Rotary : public optimi::nn::Module {
 public:
  Rotary(int64_t head_dim, int64_t max_seq);
  // x [B, heads, T, head_dim] rotated by position, in x's dtype.
  optimi::Tensor forward(const optimi::Tensor& x) const;
  std::string type_name() const override { return "Rotary"; }

  optimi::Tensor cos;
  optimi::Tensor sin;
};

class Block : public optimi::nn::Module {
 public:
  Block(int64_t d_model, int64_t heads, std::shared_ptr<const Rotary> rotary);
  optimi::Tensor forward(const optimi::Tensor& x) const;
  std::string type_name() const override { return "Block"; }

  std::shared_ptr<optimi::nn::LayerNorm> norm1;
  std::shared_ptr<optimi::nn::Linear> qkv;
  std::shared_ptr<optimi::nn::Linear> proj;
  std::shared_ptr<optimi::nn::LayerNorm> norm2;
  std::shared_ptr<optimi::nn::Linear> fc1;
  std::shared_ptr<optimi::nn::Linear> fc2;

 private:
  int64_t heads_;
  std::shared_ptr<const Rotary> rotary_;  // owned (and named) by MiniLM; null without --rope
};

class MiniLM : public optimi::nn::Module {
 public:
  explicit MiniLM(const ModelConfig& config);
  // idx: Int64 [B, T] bytes, T <= max_seq -> logits [B, T, vocab] in the blocks' dtype.
  optimi::Tensor forward(const optimi::Tensor& idx) const;
  // Mean next-byte cross-entropy (nats) of inputs [B, T] against targets [B, T], in float32.
  optimi::Tensor loss(const optimi::Tensor& inputs, const optimi::Tensor& targets) const;
  std::string type_name() const override { return "MiniLM"; }

  const ModelConfig& config() const { return config_; }

  std::shared_ptr<optimi::nn::Embedding> tok_embeddings;
  std::shared_ptr<optimi::nn::Embedding> pos_embeddings;  // null with rope
  std::shared_ptr<Rotary> rotary;                         // null without rope
  std::shared_ptr<optimi::nn::ModuleList> blocks;
  std::shared_ptr<optimi::nn::LayerNorm> norm;
  std::shared_ptr<optimi::nn::Linear> head;

 private:
  ModelConfig config_;
};

}  // namespace minilm
