#pragma once

#include <filesystem>
#include <optional>

#include "history.hpp"

namespace minilm {

// An SVG chart of the training loss (raw and smoothed) and the validation loss against the
// step, on a log scale, with the corpus floor when it is known. Throws std::runtime_error when
// the file cannot be written.
void write_loss_plot(const std::filesystem::path& path, const History& history,
                     std::optional<double> floor);

}  // namespace minilm
