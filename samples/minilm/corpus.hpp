#pragma once

#include <cstdint>
#include <string>
#include <vector>

// The embedded default corpus: English-like sentences from a small stochastic grammar. The
// grammar is a Markov chain over slots; each slot picks one of its strings and moves to that
// string's successor slot. Strings within a slot are prefix-free, so the text determines every
// choice, and the best any model can do is the grammar's entropy rate, which is computed exactly.
namespace minilm {

class Grammar {
 public:
  struct Alternative {
    std::string text;
    double p;  // within the slot, normalised
    size_t next;
  };
  struct Slot {
    std::string name;
    std::vector<Alternative> alternatives;
    std::vector<double> cumulative;  // for sampling
  };

  // The sample's built-in grammar.
  static const Grammar& english();

  // Nats per byte in the long run: sum_s pi_s H_s / sum_s pi_s L_s over the stationary
  // distribution pi of the slot chain, with H_s the entropy of slot s's choice and L_s its
  // expected length in bytes (renewal-reward).
  double entropy_rate() const;

  struct Text {
    std::string bytes;
    double nll_per_byte;  // the generator's own loss on this text: its realised entropy
  };
  // At least `bytes` bytes of whole sentences' worth of text, cut to exactly `bytes`, drawn
  // deterministically from `seed`.
  Text generate(size_t bytes, uint64_t seed) const;

 private:
  friend class GrammarBuilder;
  std::vector<Slot> slots_;
  size_t start_ = 0;
};

}  // namespace minilm
