// Helper of test_crash_safety.cpp: checkpoints crash_safety::State into DIR after every step,
// forever, printing "ready" once set up and then each iteration number once both of its files
// are written. The test kills it with SIGKILL at varying moments.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "crash_safety_state.hpp"

namespace {

// Unbuffered, so the test sees exactly the iterations that completed before the kill.
void say(const std::string& line) {
  const std::string text = line + "\n";
  if (::write(STDOUT_FILENO, text.data(), text.size()) != ssize_t(text.size())) std::_Exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  crash_safety::State state;
  say("ready");
  for (int64_t iteration = 1;; ++iteration) {
    state.advance(iteration);
    state.save(argv[1]);
    say(std::to_string(iteration));
  }
}
