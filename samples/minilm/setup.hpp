#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include <optimi/optimi.hpp>

#include "checkpoint.hpp"
#include "cli.hpp"
#include "model.hpp"

// From the command line (and the checkpoint it resumes) to a checked configuration and a model
// ready to train: the steps every run takes before the Trainer, shared with the checkpoint fuzzer
// so that it exercises exactly what `minilm --resume` does.
namespace minilm {

ModelConfig architecture(const Config& c);

// The command line over the resumed checkpoint's settings over the defaults, validated and
// checked to fit in `memory_bytes`. The architecture always comes from the checkpoint;
// contradicting it is an error.
Config prepare_config(const Flags& flags, const std::optional<Checkpoint>& ck,
                      int64_t memory_bytes);

// This machine's physical memory, in bytes.
int64_t physical_memory();

// The model of `c`, with the checkpoint's weights when there is one, in `c`'s dtype on `device`.
std::shared_ptr<MiniLM> build_model(const Config& c, const std::optional<Checkpoint>& ck,
                                    optimi::Device device);

}  // namespace minilm
