// End-to-end tests of the minilm sample: each runs the executable on a tiny configuration and
// checks what a user would (exit status, output, the files it writes).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A few seconds per run on two cores; big enough for the loss to move.
const std::vector<std::string> kTiny = {"--steps",      "16", "--batch",  "4",   "--seq",   "32",
                                        "--d-model",    "32", "--layers", "1",   "--heads", "2",
                                        "--eval-every", "4",  "--lr",     "1e-2"};

struct Result {
  int exit_code;  // -signal when killed
  std::string out;
  std::string err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A fresh directory per test case.
fs::path workdir() {
  const std::string name = Catch::getResultCapture().getCurrentTestName();
  std::string safe;
  for (char c : name) safe += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  const fs::path dir = fs::path(MINILM_TEST_DIR) / safe;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

Result run(const fs::path& dir, std::vector<std::string> args, bool tiny = true) {
  if (tiny) args.insert(args.begin(), kTiny.begin(), kTiny.end());
  std::string cmd = "cd " + quote(dir.string()) + " && " + quote(MINILM_EXE);
  for (const auto& a : args) {
    cmd.push_back(' ');
    cmd.append(quote(a));
  }
  cmd += " > stdout.txt 2> stderr.txt";
  const int status = std::system(cmd.c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  r.out = slurp(dir / "stdout.txt");
  r.err = slurp(dir / "stderr.txt");
  return r;
}

json read_json(const fs::path& p) {
  return json::parse(slurp(p));
}

// Whether `out` says `text`, wherever the header's word wrapping broke the lines.
bool says(const std::string& out, const std::string& text) {
  std::string flat;
  for (char c : out) {
    const bool space = c == ' ' || c == '\n';
    if (!(space && !flat.empty() && flat.back() == ' ')) flat += space ? ' ' : c;
  }
  return flat.find(text) != std::string::npos;
}

// Training loss falls: the mean of the last quarter of the steps is well below the first.
void check_loss_falls(const json& m) {
  const auto& train = m.at("train");
  REQUIRE(train.size() >= 8);
  const size_t q = train.size() / 4;
  double first = 0, last = 0;
  for (size_t i = 0; i < q; ++i) {
    first += train[i].at("loss").get<double>() / double(q);
    last += train[train.size() - 1 - i].at("loss").get<double>() / double(q);
  }
  INFO("first quarter " << first << ", last quarter " << last);
  CHECK(last < first - 0.3);
  CHECK(m.at("final_val_loss").get<double>() < m.at("val").at(0).at("loss").get<double>());
}

void check_one_line_error(const Result& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.starts_with("minilm: error: "));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(needle) != std::string::npos);
}

// A copy of a safetensors file with one __metadata__ entry changed.
void rewrite_metadata(const fs::path& from, const fs::path& to, const std::string& key,
                      const std::string& value) {
  const std::string bytes = slurp(from);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(bytes[size_t(i)]);
  json header = json::parse(bytes.substr(8, n));
  header["__metadata__"][key] = value;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string length(8, '\0');
  for (size_t i = 0; i < 8; ++i) length[i] = char(text.size() >> (8 * i) & 0xff);
  std::ofstream(to, std::ios::binary) << length << text << bytes.substr(8 + n);
}

pid_t spawn(const fs::path& dir, const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    FILE* out = freopen("stdout.txt", "w", stdout);
    FILE* err = freopen("stderr.txt", "w", stderr);
    (void)out;
    (void)err;
    std::vector<std::string> all = {MINILM_EXE};
    all.insert(all.end(), kTiny.begin(), kTiny.end());
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(MINILM_EXE, argv.data());
    _exit(127);
  }
  return pid;
}

bool wait_for_file(const fs::path& p, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(p)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TEST_CASE("float32 run: loss falls, files and report are complete") {
  const fs::path dir = workdir();
  Result r = run(dir, {"--metrics-json", "m.json", "--plot", "loss.svg", "--generate", "20"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json m = read_json(dir / "m.json");
  check_loss_falls(m);
  CHECK(m.at("train").size() == 16);
  CHECK(m.at("val").size() == 4);  // steps 4, 8, 12, 16
  CHECK(m.at("floor").get<double>() > 0.3);
  CHECK(m.at("memory").at("kahan_buffers") == 0);
  CHECK(m.at("memory").at("gradients_peak") == m.at("memory").at("parameters"));
  CHECK(m.at("generated").get<std::string>().size() >= 20);
  for (const char* text : {"best achievable loss", "no decay", "tok_embeddings.weight",
                           "memory (measured)", "Kahan buffers", "validation loss"})
    CHECK(says(r.out, text));
  const std::string svg = slurp(dir / "loss.svg");
  CHECK(svg.starts_with("<svg"));
  CHECK(svg.find("<polyline") != std::string::npos);
  CHECK(svg.ends_with("</svg>\n"));
}

TEST_CASE("bfloat16 run: low precision with Kahan buffers, loss falls") {
  const fs::path dir = workdir();
  Result r = run(dir, {"--dtype", "bfloat16", "--metrics-json", "m.json"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json m = read_json(dir / "m.json");
  check_loss_falls(m);
  CHECK(says(r.out, "Embedding float32"));
  CHECK(says(r.out, "Linear bfloat16"));
  // Every bfloat16 parameter has a 2-byte Kahan buffer; the float32 embeddings have none.
  const json& mem = m.at("memory");
  CHECK(mem.at("kahan_buffers").get<int64_t>() > 0);
  CHECK(mem.at("parameters").get<int64_t>() < 4 * m.at("parameters").get<int64_t>());

  Result nk = run(dir, {"--dtype", "bfloat16", "--no-kahan", "--metrics-json", "nk.json"});
  REQUIRE(nk.exit_code == 0);
  CHECK(read_json(dir / "nk.json").at("memory").at("kahan_buffers") == 0);
}

TEST_CASE("gradient release: loss falls, peak gradients below the model's") {
  const fs::path dir = workdir();
  Result r = run(dir, {"--gradient-release", "--metrics-json", "m.json"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json m = read_json(dir / "m.json");
  check_loss_falls(m);
  CHECK(m.at("memory").at("gradients_peak").get<int64_t>() <
        m.at("memory").at("parameters").get<int64_t>() / 2);
}

TEST_CASE("accumulation: gradient accumulation and optimizer accumulation both train") {
  const fs::path dir = workdir();
  Result g = run(dir, {"--accumulation", "3", "--metrics-json", "g.json"});
  INFO(g.out << g.err);
  REQUIRE(g.exit_code == 0);
  check_loss_falls(read_json(dir / "g.json"));
  CHECK(says(g.out, "gradient accumulation over 3"));

  Result o = run(dir, {"--accumulation", "3", "--gradient-release", "--metrics-json", "o.json"});
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  const json m = read_json(dir / "o.json");
  check_loss_falls(m);
  CHECK(says(o.out, "optimizer accumulation over 3"));
  CHECK(m.at("memory").at("gradients_peak").get<int64_t>() <
        m.at("memory").at("parameters").get<int64_t>() / 2);
}

TEST_CASE("every optimizer and rotary positions run") {
  const fs::path dir = workdir();
  for (const char* opt :
       {"sgd", "adam", "adamw", "adan", "lion", "radam", "ranger", "stableadamw"}) {
    Result r = run(dir, {"--optimizer", opt, "--steps", "3", "--lr", "1e-3"});
    INFO(opt << ": " << r.err);
    CHECK(r.exit_code == 0);
  }
  Result r = run(dir, {"--rope", "--metrics-json", "m.json", "--checkpoint", "rope.safetensors"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  check_loss_falls(read_json(dir / "m.json"));
  CHECK(says(r.out, "rotary positions"));
  CHECK(says(r.out, "Rotary float32 buffers"));
}

TEST_CASE("resume continues the run exactly") {
  const fs::path dir = workdir();
  for (const std::vector<std::string>& variant : {std::vector<std::string>{},
                                                  {"--dtype", "bfloat16", "--gradient-release"},
                                                  {"--accumulation", "2"}}) {
    std::vector<std::string> whole = variant, first = variant;
    whole.insert(whole.end(), {"--metrics-json", "whole.json"});
    first.insert(first.end(), {"--stop-after", "6", "--checkpoint", "ck.safetensors"});
    REQUIRE(run(dir, whole).exit_code == 0);
    Result a = run(dir, first);
    INFO(a.out << a.err);
    REQUIRE(a.exit_code == 0);
    CHECK(says(a.out, "continue with --resume ck.safetensors"));
    // The second half gets only --resume: settings, step, schedule and RNG come from the file.
    Result b = run(dir, {"--resume", "ck.safetensors", "--metrics-json", "resumed.json"}, false);
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
    const json w = read_json(dir / "whole.json"), r = read_json(dir / "resumed.json");
    CHECK(r.at("train") == w.at("train"));
    CHECK(r.at("val") == w.at("val"));
    CHECK(r.at("final_val_loss") == w.at("final_val_loss"));
    // One optimizer file remains, the one the final checkpoint refers to.
    int optimizer_files = 0;
    for (const auto& e : fs::directory_iterator(dir))
      optimizer_files += e.path().filename().string().starts_with("ck.optim-");
    CHECK(optimizer_files == 1);
  }
}

TEST_CASE("score agrees with the in-process validation") {
  const fs::path dir = workdir();
  for (const char* dtype : {"float32", "bfloat16"}) {
    Result t = run(dir, {"--dtype", dtype, "--dump-corpus", "corpus", "--checkpoint",
                         "ck.safetensors", "--metrics-json", "train.json"});
    INFO(t.out << t.err);
    REQUIRE(t.exit_code == 0);
    Result s = run(
        dir,
        {"--resume", "ck.safetensors", "--score", "corpus/val.txt", "--metrics-json", "score.json"},
        false);
    INFO(s.out << s.err);
    REQUIRE(s.exit_code == 0);
    CHECK(s.out.starts_with("score: "));
    CHECK(says(s.out, " over 128 windows"));
    const double in_process = read_json(dir / "train.json").at("final_val_loss").get<double>();
    const double scored = read_json(dir / "score.json").at("score").get<double>();
    CHECK(scored == Approx(in_process).margin(1e-6));
  }
}

TEST_CASE("Ctrl-C stops at a step boundary and leaves a good checkpoint") {
  const fs::path dir = workdir();
  const pid_t pid = spawn(dir, {"--steps", "100000", "--eval-every", "2", "--checkpoint",
                                "ck.safetensors", "--dump-corpus", "corpus"});
  REQUIRE(wait_for_file(dir / "ck.safetensors", 120));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(slurp(dir / "stdout.txt").find("interrupted after step") != std::string::npos);
  Result s = run(dir, {"--resume", "ck.safetensors", "--score", "corpus/val.txt"}, false);
  INFO(s.err);
  CHECK(s.exit_code == 0);
}

TEST_CASE("killing the process mid-run never corrupts the checkpoint") {
  const fs::path dir = workdir();
  // A checkpoint every step, killed at moments that fall at different points of the writes.
  for (int attempt = 0; attempt < 6; ++attempt) {
    fs::remove(dir / "ck.safetensors");
    const pid_t pid = spawn(dir, {"--steps", "100000", "--eval-every", "1", "--checkpoint",
                                  "ck.safetensors", "--dump-corpus", "corpus"});
    REQUIRE(wait_for_file(dir / "ck.safetensors", 120));
    std::this_thread::sleep_for(std::chrono::milliseconds(37 * attempt + 11));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    Result s = run(dir, {"--resume", "ck.safetensors", "--score", "corpus/val.txt"}, false);
    INFO("attempt " << attempt << ": " << s.err);
    CHECK(s.exit_code == 0);
    // Resuming training loads the optimizer file the checkpoint refers to (--stop-after 1,
    // long past, ends the run right after loading).
    Result t = run(dir, {"--resume", "ck.safetensors", "--stop-after", "1"}, false);
    INFO(t.err);
    CHECK(t.exit_code == 0);
  }
}

TEST_CASE("bad input: one line on stderr and a non-zero exit") {
  const fs::path dir = workdir();
  std::ofstream(dir / "empty.txt").close();
  std::ofstream(dir / "short.txt") << "too short for a window";
  std::ofstream(dir / "garbage.safetensors") << "this is not a safetensors file at all";
  fs::create_directory(dir / "a_directory");

  check_one_line_error(run(dir, {"--data", "missing.txt"}), "missing.txt");
  check_one_line_error(run(dir, {"--data", "a_directory"}), "a_directory");
  check_one_line_error(run(dir, {"--data", "empty.txt"}), "empty");
  check_one_line_error(run(dir, {"--data", "short.txt"}), "too short");
  check_one_line_error(run(dir, {"--steps", "-5"}), "--steps");
  check_one_line_error(run(dir, {"--heads", "3"}), "--heads 3");
  check_one_line_error(run(dir, {"--lr", "fast"}), "--lr");
  check_one_line_error(run(dir, {"--lr", "-1"}), "--lr");
  check_one_line_error(run(dir, {"--seq", "0"}), "--seq");
  check_one_line_error(run(dir, {"--steps", "99999999999999999999"}), "--steps");
  // Far too big to allocate: refused before the OS would kill the process.
  check_one_line_error(run(dir, {"--d-model", "4000000"}), "memory");
  check_one_line_error(run(dir, {"--dtype", "float8"}), "--dtype");
  check_one_line_error(run(dir, {"--optimizer", "magic"}), "--optimizer");
  check_one_line_error(run(dir, {"--frobnicate"}), "--frobnicate");
  check_one_line_error(run(dir, {"--batch"}, false), "--batch");
  check_one_line_error(run(dir, {"--score", "short.txt"}), "--resume");
  check_one_line_error(run(dir, {"--resume", "missing.safetensors"}), "missing.safetensors");
  check_one_line_error(run(dir, {"--resume", "garbage.safetensors"}), "garbage.safetensors");

  // A real checkpoint, then damaged copies of it.
  REQUIRE(run(dir, {"--steps", "2", "--checkpoint", "ck.safetensors"}).exit_code == 0);
  const std::string good = slurp(dir / "ck.safetensors");
  std::ofstream(dir / "truncated.safetensors", std::ios::binary) << good.substr(0, good.size() / 2);
  check_one_line_error(run(dir, {"--resume", "truncated.safetensors"}, false), "truncated");
  std::string flipped = good;
  flipped[10] = '\x01';  // inside the JSON header
  std::ofstream(dir / "flipped.safetensors", std::ios::binary) << flipped;
  check_one_line_error(run(dir, {"--resume", "flipped.safetensors"}, false), "flipped");
  // Mismatches: metadata against the tensors, a flag against the file's architecture, another
  // optimizer against its state, and a score file shorter than one window.
  rewrite_metadata(dir / "ck.safetensors", dir / "wide.safetensors", "d_model", "64");
  check_one_line_error(run(dir, {"--resume", "wide.safetensors"}, false), "");
  rewrite_metadata(dir / "ck.safetensors", dir / "odd.safetensors", "heads", "3");
  check_one_line_error(run(dir, {"--resume", "odd.safetensors"}, false), "heads");
  // The optimizer file name must not reach outside the checkpoint's directory.
  rewrite_metadata(dir / "ck.safetensors", dir / "escape.safetensors", "minilm.optimizer",
                   "../ck.optim-2.safetensors");
  check_one_line_error(run(dir, {"--resume", "escape.safetensors"}, false), "optimizer file");
  check_one_line_error(run(dir, {"--resume", "ck.safetensors", "--d-model", "64"}, false),
                       "--d-model 64");
  check_one_line_error(
      run(dir, {"--resume", "ck.safetensors", "--optimizer", "adamw", "--steps", "4"}, false), "");
  check_one_line_error(run(dir, {"--resume", "ck.safetensors", "--score", "short.txt"}, false),
                       "short.txt");
  // The damaged copies left the original alone.
  CHECK(run(dir, {"--resume", "ck.safetensors", "--steps", "3"}, false).exit_code == 0);
}
