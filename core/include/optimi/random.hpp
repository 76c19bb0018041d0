#pragma once

#include <cstdint>

namespace optimi {

void manual_seed(uint64_t seed);

// The global generator behind randn, dropout and initialisation (a 64-bit PCG-style stream).
// Its state is a single word so that checkpoints can save and restore it.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { set_state(seed); }
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // standard normal
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  uint64_t state_;
};
Generator& default_generator();

}  // namespace optimi
