#include <sys/wait.h>
#include <unistd.h>

#include <omp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "kernels/cpu/thread_pool.hpp"
#include "optimi/nn/functional.hpp"
#include "optimi/optim.hpp"
#include "optimi/random.hpp"
#include "optimi/tensor.hpp"

using namespace optimi::kernels::cpu;

namespace {

// How many times each index in [0, n) was visited by `loop`.
template <class Loop>
std::vector<int> visits(int64_t n, Loop&& loop) {
  std::vector<std::atomic<int>> count(static_cast<size_t>(n));
  loop(n, [&](int64_t i) { count[size_t(i)].fetch_add(1); });
  std::vector<int> out;
  for (auto& c : count) out.push_back(c.load());
  return out;
}

}  // namespace

TEST_CASE("team loops visit every index once", "[thread_pool]") {
  for (int64_t n : {0, 1, 2, 3, 7, 1000}) {
    INFO("n = " << n);
    const std::vector<int> once(size_t(n), 1);
    for (bool parallel : {false, true}) {
      CHECK(visits(n, [&](int64_t m, auto f) { parallel_for(m, parallel, f); }) == once);
      CHECK(visits(n, [&](int64_t m, auto f) { parallel_for_dynamic(m, parallel, f); }) == once);
      CHECK(visits(n, [&](int64_t m, auto f) {
              parallel_ranges(m, parallel, [&](int64_t begin, int64_t end) {
                for (int64_t i = begin; i < end; ++i) f(i);
              });
            }) == once);
    }
    // Several dynamic loops in one job, each on its own counter.
    CHECK(visits(n, [&](int64_t m, auto f) {
            parallel_region(true, [&](const Team& team) {
              team.for_dynamic(m, [&](int64_t i) {
                if (i % 2 == 0) f(i);
              });
              team.for_dynamic(m, [&](int64_t i) {
                if (i % 2 == 1) f(i);
              });
            });
          }) == once);
  }
}

TEST_CASE("a team barrier holds every thread until all have arrived", "[thread_pool]") {
  std::vector<std::atomic<int>> written(static_cast<size_t>(team_size()));
  std::atomic<bool> all_seen{true};
  for (int round = 0; round < 200; ++round) {
    parallel_region(true, [&](const Team& team) {
      written[size_t(team.thread())].store(round + 1);
      team.barrier();
      for (int t = 0; t < team.threads(); ++t) {
        if (written[size_t(t)].load() != round + 1) all_seen = false;
      }
      team.barrier();  // nobody starts the next round's writes before all have checked
    });
  }
  CHECK(all_seen);
}

TEST_CASE("a job started inside a job runs on its caller alone", "[thread_pool]") {
  std::atomic<int> inner_threads{0}, inner_calls{0};
  parallel_region(true, [&](const Team&) {
    parallel_region(true, [&](const Team& inner) {
      inner_threads = inner.threads();
      inner_calls.fetch_add(1);
    });
  });
  CHECK(inner_threads == 1);
  CHECK(inner_calls == team_size());
}

TEST_CASE("jobs from several threads of the program each complete", "[thread_pool]") {
  constexpr int kCallers = 4;
  std::vector<int64_t> sums(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&sums, c] {
      for (int repeat = 0; repeat < 200; ++repeat) {
        std::vector<int64_t> values(1000, 0);
        parallel_for(int64_t(values.size()), true, [&](int64_t i) { values[size_t(i)] = i; });
        int64_t sum = 0;
        for (int64_t v : values) sum += v;
        sums[size_t(c)] += sum;
      }
    });
  }
  for (std::thread& t : callers) t.join();
  for (int64_t s : sums) CHECK(s == 200 * 999 * 1000 / 2);
}

TEST_CASE("a forked child runs jobs on a team of its own", "[thread_pool]") {
  parallel_for(100, true, [](int64_t) {});  // the parent's team exists
  const pid_t child = fork();
  if (child == 0) {
    std::vector<int64_t> values(1000, 0);
    parallel_for(1000, true, [&](int64_t i) { values[size_t(i)] = 1; });
    int64_t sum = 0;
    for (int64_t v : values) sum += v;
    _exit(sum == 1000 ? 0 : 1);
  }
  REQUIRE(child > 0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a team on far cores shares out only larger loops", "[thread_pool]") {
  // ~0.25 us for an empty job on neighbouring cores, ~1 us far apart (see TeamInfo).
  CHECK(sharing_factor_for(250) == 1);
  CHECK(sharing_factor_for(1000) == kFarTeamFactor);
  const TeamInfo team = team_info();
  CHECK(team.threads == team_size());
  CHECK(team.sharing_factor == sharing_factor_for(team.handoff_ns));
  if (team.threads > 1) CHECK(team.handoff_ns > 0);
  // Alone, the calling thread is the whole team: nothing to hand over.
  if (team.threads == 1) CHECK(team.handoff_ns == 0);
}

namespace {

// What f returns, computed in a forked child whose kernels run on one thread.
std::vector<float> on_one_thread(const std::function<std::vector<float>()>& f) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  if (child == 0) {
    omp_set_num_threads(1);  // the child's team starts on its first kernel, with this size
    const std::vector<float> out = team_size() == 1 ? f() : std::vector<float>{};
    const uint64_t n = out.size();
    bool ok = write(fds[1], &n, sizeof n) == ssize_t(sizeof n);
    ok = ok && write(fds[1], out.data(), n * sizeof(float)) == ssize_t(n * sizeof(float));
    _exit(ok ? 0 : 1);
  }
  REQUIRE(child > 0);
  close(fds[1]);
  uint64_t n = 0;
  REQUIRE(read(fds[0], &n, sizeof n) == ssize_t(sizeof n));
  std::vector<float> out(n);
  size_t got = 0;
  while (got < n * sizeof(float)) {
    const ssize_t r =
        read(fds[0], reinterpret_cast<char*>(out.data()) + got, n * sizeof(float) - got);
    REQUIRE(r > 0);
    got += size_t(r);
  }
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  return out;
}

}  // namespace

TEST_CASE("kernels that reduce give the same bits on one thread as on the team", "[thread_pool]") {
  // Sums are taken over fixed parts of the data and added in part order, so neither the number
  // of threads nor the team's choice to share a loop out (it decides by timing) changes a result:
  // a resumed training run must continue exactly. (Where the team finds its threads on far cores
  // it shares these loops out no more than one thread would; the check then holds trivially.)
  auto run = [] {
    optimi::manual_seed(5);
    using optimi::Tensor;
    // Layer norm's weight and bias gradients: partial sums over rows.
    Tensor x = Tensor::randn({1000, 24}).requires_grad_();
    Tensor w = Tensor::randn({24}).requires_grad_(), b = Tensor::randn({24}).requires_grad_();
    (optimi::nn::functional::layer_norm(x, {24}, w, b) * Tensor::randn({1000, 24}))
        .sum()
        .backward();
    // An optimizer step over a tensor shared out element-wise and small ones taken whole.
    std::vector<Tensor> params = {Tensor::randn({70000}), Tensor::randn({3000}),
                                  Tensor::randn({7})};
    optimi::optim::StableAdamW opt(params, {.lr = 1e-2, .weight_decay = 0.1});
    for (Tensor& p : params) p.set_grad(Tensor::randn(p.shape()));
    opt.step();
    // A reduction over the leading dim (a bias gradient's shape) and a cross entropy.
    Tensor column_sums = Tensor::randn({4096, 40}).sum(0);
    Tensor logits = Tensor::randn({600, 50}).requires_grad_();
    optimi::nn::functional::cross_entropy(logits,
                                          Tensor::from_vector(std::vector<int64_t>(600, 3), {600}))
        .backward();
    std::vector<float> out;
    for (const Tensor& t : {w.grad(), b.grad(), x.grad(), params[0], params[1], params[2],
                            column_sums, logits.grad()}) {
      const std::vector<float> v = t.to_vector<float>();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  const std::vector<float> team = run();
  const std::vector<float> one = on_one_thread(run);
  REQUIRE(one.size() == team.size());
  CHECK(std::memcmp(one.data(), team.data(), team.size() * sizeof(float)) == 0);
}
