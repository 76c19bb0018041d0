// libFuzzer driver: one executable per target, chosen by OPTIMI_FUZZ_TARGET at compile time.
#include <cstdio>
#include <cstdlib>
#include <optimi/optimi.hpp>
#include <string>

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const optimi_fuzz::Target* target = [] {
    const optimi_fuzz::Target* t = optimi_fuzz::find_target(OPTIMI_FUZZ_TARGET);
    if (!t) {
      std::fprintf(stderr, "unknown fuzz target %s\n", OPTIMI_FUZZ_TARGET);
      std::abort();
    }
    // Warnings (a fuzzed file's high weight decay, say) are not findings, and printing one per
    // input would slow the fuzzer down.
    optimi::set_warning_handler([](const std::string&) {});
    return t;
  }();
  target->run(data, size);
  return 0;
}
