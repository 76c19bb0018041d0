// Runs the [cuda] tests (argv[1..]: the test binary and its arguments) when a CUDA device is
// present, and otherwise exits with 77, which CTest reports as a skip (SKIP_RETURN_CODE).
#include <unistd.h>

#include <cstdio>

#include <optimi/optimi.hpp>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TEST_BINARY [ARGS...]\n", argv[0]);
    return 2;
  }
  if (!optimi::cuda_is_available()) {
    std::printf(
        "SKIPPED: no CUDA device (cuda_is_available() is false: no GPU or driver, or a CPU-only "
        "build); the [cuda] tests did not run\n");
    return 77;
  }
  execv(argv[1], argv + 1);
  std::perror("cuda_suite: cannot run the test binary");
  return 1;
}
