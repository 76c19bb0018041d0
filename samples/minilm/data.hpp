#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <optimi/optimi.hpp>

// The bytes a run trains and validates on, and how they are cut into batches.
namespace minilm {

struct Dataset {
  std::string source;  // what the user is told the text is
  std::string train;
  std::string val;
  // Only for the generated corpus: the grammar's entropy rate (the best loss any model can
  // reach), and the generator's own loss on this validation text.
  std::optional<double> floor;
  std::optional<double> val_floor;
};

// The generated corpus (`path` empty) or the bytes of `path`, split into training text and a
// held-out validation tail. Throws std::runtime_error when the file cannot be read or holds too
// few bytes for one training and one validation window of `seq` + 1 bytes.
Dataset load_dataset(const std::string& path, int64_t seq, uint64_t seed);
std::string read_file(const std::string& path, const char* what);

struct Batch {
  optimi::Tensor inputs;   // Int64 [B, T]
  optimi::Tensor targets;  // Int64 [B, T], the inputs shifted by one byte
};

// `batch` windows of seq + 1 bytes at uniformly random offsets, drawn from `rng`.
Batch random_batch(std::string_view text, int64_t batch, int64_t seq, optimi::Generator& rng,
                   optimi::Device device);
// The evaluation windows of `text` are seq + 1 bytes at offsets 0, seq, 2 seq, ..., a shorter
// tail dropped. window_batch gathers windows first .. first + count - 1.
int64_t window_count(std::string_view text, int64_t seq);
Batch window_batch(std::string_view text, int64_t first, int64_t count, int64_t seq,
                   optimi::Device device);

}  // namespace minilm
