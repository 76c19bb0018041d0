// Runs a fuzz target over files, with the normal compiler, so CTest replays every input that
// once crashed a fuzzer, and checks that the seed corpus still loads (stale seeds make fuzzing
// shallow).
//
//   optimi_fuzz_replay TARGET [--must-load] DIR...   every file of each DIR; exit 1 on a finding
//   optimi_fuzz_replay --write-seeds CORPUS_ROOT      regenerates CORPUS_ROOT/<target>/ seeds
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <typeinfo>
#include <vector>

#include "targets.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

int write_seeds(const fs::path& root) {
  size_t count = 0;
  const optimi_fuzz::Target* targets = optimi_fuzz::all_targets(count);
  for (size_t i = 0; i < count; ++i) {
    const fs::path dir = root / targets[i].name;
    fs::create_directories(dir);
    targets[i].write_seeds(dir);
    std::printf("wrote seeds to %s\n", dir.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") return write_seeds(argv[2]);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TARGET [--must-load] DIR... | --write-seeds CORPUS_ROOT\n",
                 argv[0]);
    return 2;
  }
  const optimi_fuzz::Target* target = optimi_fuzz::find_target(argv[1]);
  if (!target) {
    std::fprintf(stderr, "unknown target %s\n", argv[1]);
    return 2;
  }
  bool must_load = false;
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--must-load") {
      must_load = true;
      continue;
    }
    for (const auto& entry : fs::directory_iterator(argv[i])) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "no inputs found\n");
    return 2;
  }
  int failures = 0;
  for (const fs::path& file : files) {
    const std::vector<uint8_t> data = read_file(file);
    try {
      const bool loaded = target->run(data.data(), data.size());
      std::printf("%s: %s\n", file.c_str(), loaded ? "loaded" : "rejected");
      if (must_load && !loaded) {
        std::printf("  FAILED: a seed no longer loads; regenerate with --write-seeds\n");
        ++failures;
      }
    } catch (const std::exception& e) {
      // Rejections must be std::runtime_error or std::invalid_argument; this was neither.
      std::printf("%s: FAILED: undocumented exception %s: %s\n", file.c_str(), typeid(e).name(),
                  e.what());
      ++failures;
    }
  }
  std::printf("%zu inputs, %d failed\n", files.size(), failures);
  return failures == 0 ? 0 : 1;
}
