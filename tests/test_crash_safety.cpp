// Crash safety of checkpoints: tests/crash_writer.cpp saves a model (save_state_dict) and its
// optimizer (Optimizer::save) in a loop and is killed with SIGKILL at many moments. After each
// kill the files must hold the previous checkpoint or the new one, complete (byte for byte what
// that iteration writes, and loadable), never a partial one.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crash_safety_state.hpp"

namespace {

namespace fs = std::filesystem;
using crash_safety::kModelFile;
using crash_safety::kOptimizerFile;
using Clock = std::chrono::steady_clock;

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = fs::temp_directory_path() / ("optimi_crash_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Digests of the files every iteration writes, computed by running the same steps in-process.
class Reference {
 public:
  size_t model(int64_t iteration) { return at(iteration).first; }
  size_t optimizer(int64_t iteration) { return at(iteration).second; }

 private:
  const std::pair<size_t, size_t>& at(int64_t iteration) {
    while (int64_t(digests_.size()) <= iteration) {
      const int64_t next = int64_t(digests_.size());
      if (next == 0) {
        digests_.emplace_back(0, 0);  // iteration 0: nothing written yet
        continue;
      }
      state_.advance(next);
      state_.save(dir_.path());
      const std::hash<std::string> hash;
      digests_.emplace_back(hash(read_bytes(dir_.path() / kModelFile)),
                            hash(read_bytes(dir_.path() / kOptimizerFile)));
    }
    return digests_[size_t(iteration)];
  }

  crash_safety::State state_;
  TempDir dir_{"reference"};
  std::vector<std::pair<size_t, size_t>> digests_;
};

// One run of the writer: started, then killed.
class Writer {
 public:
  explicit Writer(const fs::path& dir) {
    // One thread: OpenMP threads spinning on a busy machine would make the steps, not the
    // writes, take most of the time, and the kills should land inside the writes.
    std::vector<std::string> env = {"OMP_NUM_THREADS=1"};
    for (char** e = environ; *e; ++e) {
      if (!std::string(*e).starts_with("OMP_NUM_THREADS=")) env.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string program = OPTIMI_CRASH_WRITER;
    std::string dir_arg = dir.string();
    char* argv[] = {const_cast<char*>(program.c_str()), dir_arg.data(), nullptr};

    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      ::dup2(fds[1], STDOUT_FILENO);
      ::execve(argv[0], argv, envp.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~Writer() {
    if (pid_ > 0) kill();
    ::close(out_);
  }

  // Blocks until the writer prints "ready" (or exits).
  void wait_ready() {
    while (lines_.empty() && read_more()) {
    }
    REQUIRE(!lines_.empty());
    REQUIRE(lines_.front() == "ready");
  }
  // Blocks until `iteration` has been written.
  void wait_for(int64_t iteration) {
    while (last_completed() < iteration) REQUIRE(read_more());
  }
  void kill() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
    pid_ = -1;
    while (read_more()) {
    }
  }
  // The last iteration whose two files were both written (0 for none).
  int64_t last_completed() const { return lines_.size() <= 1 ? 0 : std::stoll(lines_.back()); }

 private:
  bool read_more() {
    char buffer[256];
    const ssize_t n = ::read(out_, buffer, sizeof(buffer));
    if (n <= 0) return false;
    partial_.append(buffer, size_t(n));
    for (size_t end; (end = partial_.find('\n')) != std::string::npos;) {
      lines_.push_back(partial_.substr(0, end));
      partial_.erase(0, end + 1);
    }
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string partial_;  // a line cut short by the kill is never counted
  std::vector<std::string> lines_;
};

bool is_temporary(const std::string& name) {
  return name.starts_with(std::string(".") + kModelFile + ".tmp.") ||
         name.starts_with(std::string(".") + kOptimizerFile + ".tmp.");
}

std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name != kModelFile && name != kOptimizerFile) {
      INFO("unexpected file " << name);
      CHECK(is_temporary(name));
      names.push_back(name);
    }
  }
  return names;
}

// Kills the writer `kills` times: the first run at once (before or during its first write, when
// there is no checkpoint yet), the second once it has written a few checkpoints (which times one
// iteration), the rest once their first checkpoint is written plus a delay spread evenly over two
// iterations, so that most land inside a write. Calls `check(last_completed)` after each kill.
void kill_repeatedly(const fs::path& dir, int kills, const std::function<void(int64_t)>& check) {
  double period_ms = 0;
  for (int i = 0; i < kills; ++i) {
    Writer writer(dir);
    writer.wait_ready();
    if (i == 1) {
      const auto start = Clock::now();
      constexpr int kTimed = 4;
      writer.wait_for(kTimed);
      period_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count() / kTimed;
    } else if (i > 1) {
      writer.wait_for(1);
      // The golden ratio's fractional parts cover [0, 1) evenly in any prefix.
      const double fraction = std::fmod(i * 0.6180339887498949, 1.0);
      std::this_thread::sleep_for(
          std::chrono::duration<double, std::milli>(2 * period_ms * fraction));
    }
    writer.kill();
    check(writer.last_completed());
  }
}

}  // namespace

TEST_CASE("a checkpoint writer killed at any moment leaves the old checkpoint or the new one",
          "[crash]") {
  TempDir dir("files");
  Reference reference;
  crash_safety::State loader;  // same shapes: what a resumed run loads into
  int64_t model_on_disk = 0, optimizer_on_disk = 0;
  std::set<std::string> seen_temporaries;
  int mid_write_kills = 0;
  constexpr int kKills = 40;

  kill_repeatedly(dir.path(), kKills, [&](int64_t last) {
    // Killed after `last` completed, so each file holds `last` or `last + 1`, or, when nothing
    // completed in this run, what the previous run left or this run's first iteration.
    const std::set<int64_t> allowed_model =
        last > 0 ? std::set<int64_t>{last, last + 1} : std::set<int64_t>{model_on_disk, 1};
    const std::set<int64_t> allowed_optimizer =
        last > 0 ? std::set<int64_t>{last, last + 1} : std::set<int64_t>{optimizer_on_disk, 1};
    INFO("after a kill with iteration " << last << " complete");

    const fs::path model_file = dir.path() / kModelFile;
    if (!fs::exists(model_file)) {
      REQUIRE(allowed_model.count(0));
    } else {
      const auto file = optimi::nn::load_safetensors(model_file);
      REQUIRE(file.metadata.count("iteration"));
      model_on_disk = std::stoll(file.metadata.at("iteration"));
      INFO("the model file holds iteration " << model_on_disk);
      REQUIRE(allowed_model.count(model_on_disk));
      REQUIRE(std::hash<std::string>()(read_bytes(model_file)) == reference.model(model_on_disk));
      REQUIRE_NOTHROW(optimi::nn::load_state_dict_file(loader.model(), model_file));
    }

    const fs::path optimizer_file = dir.path() / kOptimizerFile;
    if (!fs::exists(optimizer_file)) {
      REQUIRE(allowed_optimizer.count(0));
    } else {
      const size_t digest = std::hash<std::string>()(read_bytes(optimizer_file));
      int64_t match = -1;
      for (int64_t k : allowed_optimizer) {
        if (k > 0 && digest == reference.optimizer(k)) match = k;
      }
      INFO("the optimizer file matches none of the allowed iterations");
      REQUIRE(match > 0);
      optimizer_on_disk = match;
      REQUIRE_NOTHROW(loader.optimizer().load(optimizer_file));
    }

    // A temporary file that was not there before is the write the kill interrupted.
    for (const std::string& name : temporaries(dir.path())) {
      if (seen_temporaries.insert(name).second) ++mid_write_kills;
    }
  });
  // The figure that says how much this test tested (a kill during a step, or during the
  // directory sync after a rename, leaves no temporary file and is not counted).
  WARN(mid_write_kills << " of " << kKills << " kills left a temporary file: inside a write");
  CHECK(mid_write_kills >= kKills / 5);
}

TEST_CASE("temporary files of killed checkpoint writers do not accumulate", "[crash]") {
  TempDir dir("temporaries");
  int kills = 0;
  kill_repeatedly(dir.path(), 16, [&](int64_t) {
    ++kills;
    // Each destination may hold the one write this kill interrupted; earlier leftovers must
    // have been removed by the writes that followed.
    const std::vector<std::string> names = temporaries(dir.path());
    INFO("after " << kills << " kills: " << names.size() << " temporary files left");
    REQUIRE(names.size() <= 2);
  });
}
