#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <optimi/optimi.hpp>

#include "model.hpp"

// Using a model without training it: the validation figure, --score and --generate.
namespace minilm {

// Mean next-byte cross-entropy (nats per byte) over the evaluation windows of `text`
// (see window_batch), `batch` windows at a time.
double evaluate(MiniLM& model, std::string_view text, int64_t batch, optimi::Device device);

// `prompt` continued by `n` bytes sampled at temperature 1 with `rng`.
std::string sample(MiniLM& model, std::string prompt, int64_t n, optimi::Generator& rng,
                   optimi::Device device);

}  // namespace minilm
