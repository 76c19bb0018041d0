#include "optimi/random.hpp"

#include <cmath>

namespace optimi {

uint64_t Generator::next_u64() {
  // splitmix64: a single word of state, so saving and restoring the stream is trivial.
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Generator::uniform() {
  return double(next_u64() >> 11) * 0x1.0p-53;
}

double Generator::normal() {
  // Box-Muller; 1 - u keeps the logarithm finite.
  double u1 = 1.0 - uniform();
  double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) {
  default_generator().set_state(seed);
}

}  // namespace optimi
