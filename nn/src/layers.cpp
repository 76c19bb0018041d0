#include "optimi/nn/layers.hpp"

#include <cmath>
#include <stdexcept>

namespace optimi::nn {
namespace {

void check_size(const char* op, const char* what, int64_t value) {
  if (value < 0) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must be non-negative, got " +
                                std::to_string(value));
  }
}

const std::shared_ptr<Module>& checked_at(const char* op,
                                          const std::vector<std::shared_ptr<Module>>& modules,
                                          size_t index) {
  if (index >= modules.size()) {
    throw std::invalid_argument(std::string(op) + ": index " + std::to_string(index) +
                                " out of range for " + std::to_string(modules.size()) + " modules");
  }
  return modules[index];
}

}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features(in_features), out_features(out_features) {
  check_size("Linear", "in_features", in_features);
  check_size("Linear", "out_features", out_features);
  // PyTorch's bound for both weight and bias; 0 when there are no inputs.
  const double bound = in_features > 0 ? 1.0 / std::sqrt(double(in_features)) : 0.0;
  weight =
      register_parameter("weight", Tensor::uniform({out_features, in_features}, -bound, bound));
  if (bias) this->bias = register_parameter("bias", Tensor::uniform({out_features}, -bound, bound));
}

Tensor Linear::forward(const Tensor& x) const {
  return functional::linear(x, weight, bias);
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim)
    : num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
  check_size("Embedding", "num_embeddings", num_embeddings);
  check_size("Embedding", "embedding_dim", embedding_dim);
  weight = register_parameter("weight", Tensor::randn({num_embeddings, embedding_dim}));
}

Tensor Embedding::forward(const Tensor& indices) const {
  return functional::embedding(indices, weight);
}

LayerNorm::LayerNorm(int64_t normalized_shape, double eps, bool elementwise_affine)
    : normalized_shape(normalized_shape), eps(eps), elementwise_affine(elementwise_affine) {
  check_size("LayerNorm", "normalized_shape", normalized_shape);
  if (elementwise_affine) {
    weight = register_parameter("weight", Tensor::ones({normalized_shape}));
    bias = register_parameter("bias", Tensor::zeros({normalized_shape}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) const {
  return functional::layer_norm(x, {normalized_shape}, weight, bias, eps);
}

GELU::GELU(std::string_view approximate) {
  if (approximate == "none") {
    this->approximate = functional::GeluApproximation::None;
  } else if (approximate == "tanh") {
    this->approximate = functional::GeluApproximation::Tanh;
  } else {
    throw std::invalid_argument("GELU: approximate must be 'none' or 'tanh', got '" +
                                std::string(approximate) + "'");
  }
}

Dropout::Dropout(double p) : p(p) {
  if (!(p >= 0.0 && p <= 1.0)) {
    throw std::invalid_argument("Dropout: p must be in [0, 1], got " + std::to_string(p));
  }
}

const std::shared_ptr<Module>& Sequential::operator[](size_t index) const {
  return checked_at("Sequential[]", modules_, index);
}

Tensor Sequential::forward(const Tensor& x) const {
  Tensor y = x;
  for (const auto& forward : forwards_) y = forward(y);
  return y;
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t index) const {
  return checked_at("ModuleList[]", modules_, index);
}

void ModuleList::throw_wrong_type(size_t index) const {
  throw std::invalid_argument("ModuleList::at: module " + std::to_string(index) + " is a " +
                              modules_[index]->type_name() + ", not the requested type");
}

}  // namespace optimi::nn
