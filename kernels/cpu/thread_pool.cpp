#include "kernels/cpu/thread_pool.hpp"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace optimi::kernels::cpu {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Pauses a worker spins for before it sleeps: a few hundred microseconds, longer than the gaps
// between the kernels of a training step, far shorter than a program's idle stretches.
constexpr int kSpins = 20000;
// Dynamic loops a job may run (each has its own counter, reset when a job starts).
constexpr int kLoops = 8;
// An empty job slower than this means threads on cores far apart (see TeamInfo): ~0.25 us on
// neighbouring cores, ~1 us far apart, on the machines this was measured on.
constexpr double kFarHandoffNs = 500;
// The placement can change while a program runs (a virtual machine's threads move between host
// cores every few seconds at times), so the handoff is measured again after this many sharing
// decisions (about every 40 steps of the MiniLM seed: 20 ms), over a few empty jobs (~5 us).
constexpr int64_t kDecisionsPerMeasure = 4096;
constexpr int kJobsPerMeasure = 9;

struct alignas(64) Counter {
  std::atomic<int64_t> next{0};
};

}  // namespace

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : size_(threads) {
    for (int t = 1; t < size_; ++t) std::thread([this, t] { work(t); }).detach();
    // The first jobs wait for the workers to start.
    if (size_ > 1) measure_handoff(50 + 101);
  }
  int size() const { return size_; }
  double handoff_ns() const { return handoff_ns_.load(std::memory_order_relaxed); }

  // The factor of TeamInfo, measured again now and then.
  int64_t sharing_factor() {
    if (size_ > 1 && decisions_.fetch_add(1, std::memory_order_relaxed) % kDecisionsPerMeasure ==
                         kDecisionsPerMeasure - 1)
      measure_handoff(kJobsPerMeasure);
    return sharing_factor_for(handoff_ns());
  }

  // False (nothing run) when a job is already running.
  bool try_run(JobRef job) {
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    dispatch(job);
    busy_.store(false, std::memory_order_release);
    return true;
  }

  void barrier() {
    const uint64_t generation = barrier_generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      barrier_generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    while (barrier_generation_.load(std::memory_order_acquire) == generation) cpu_relax();
  }

  int64_t claim(int loop) {
    if (loop >= kLoops) throw std::logic_error("thread pool: too many dynamic loops in one job");
    return counters_[size_t(loop)].next.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  // Runs the job on every thread of the team; the caller holds busy_.
  void dispatch(JobRef job) {
    job_ = &job;
    for (Counter& c : counters_) c.next.store(0, std::memory_order_relaxed);
    running_.store(size_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes the job
    if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
    run_here(job, Team(this, 0, size_));
    while (running_.load(std::memory_order_acquire) != 0) cpu_relax();
  }

  // handoff_ns_ = the median time of the last of `jobs` empty jobs (the first ones may wake
  // sleeping workers); nothing when the team is busy.
  void measure_handoff(int jobs) {
    if (busy_.exchange(true, std::memory_order_acquire)) return;
    auto empty = [](const Team&) {};
    std::vector<double> ns;
    for (int i = 0; i < jobs; ++i) {
      const auto start = std::chrono::steady_clock::now();
      dispatch(JobRef(empty));
      const auto end = std::chrono::steady_clock::now();
      ns.push_back(std::chrono::duration<double, std::nano>(end - start).count());
    }
    busy_.store(false, std::memory_order_release);
    const auto timed = ns.begin() + std::min(jobs / 3, 50);
    const auto middle = timed + (ns.end() - timed) / 2;
    std::nth_element(timed, middle, ns.end());
    handoff_ns_.store(*middle, std::memory_order_relaxed);
  }

  // Other threads may be waiting for this one at a barrier: an exception cannot leave the job
  // (as from an OpenMP parallel region, it ends the program).
  static void run_here(JobRef job, const Team& team) noexcept { job(team); }

  void work(int thread) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t generation;
      int spins = 0;
      while ((generation = generation_.load(std::memory_order_acquire)) == seen) {
        if (++spins < kSpins) {
          cpu_relax();
          continue;
        }
        // Either the publisher sees this sleeper or this thread sees the new generation.
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (generation_.load(std::memory_order_seq_cst) == seen)
          generation_.wait(seen, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        spins = 0;
      }
      seen = generation;
      run_here(*job_, Team(this, thread, size_));
      running_.fetch_sub(1, std::memory_order_release);
    }
  }

  const int size_;
  std::atomic<double> handoff_ns_{0};
  std::atomic<int64_t> decisions_{0};
  const JobRef* job_ = nullptr;
  alignas(64) std::atomic<bool> busy_{false};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> running_{0};
  alignas(64) std::atomic<int> sleepers_{0};
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint64_t> barrier_generation_{0};
  std::array<Counter, kLoops> counters_;
};

namespace {

std::atomic<ThreadPool*> current_pool{nullptr};
std::mutex pool_creation;

ThreadPool& pool() {
  if (ThreadPool* p = current_pool.load(std::memory_order_acquire)) return *p;
  std::lock_guard<std::mutex> lock(pool_creation);
  ThreadPool* p = current_pool.load(std::memory_order_relaxed);
  if (!p) {
    // A forked child has none of the workers: it starts a team of its own on first use.
    static const int registered =
        pthread_atfork(nullptr, nullptr, [] { current_pool.store(nullptr); });
    (void)registered;
    // Never destroyed: its workers outlive static destructors, which may still run kernels.
    p = new ThreadPool(std::max(omp_get_max_threads(), 1));
    current_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

void Team::barrier() const {
  if (threads_ > 1) pool_->barrier();
}

int64_t Team::claim(int loop) const {
  return pool_->claim(loop);
}

void run_on_team(bool parallel, JobRef job) {
  if (parallel && pool().size() > 1 && pool().try_run(job)) return;
  job(Team(nullptr, 0, 1));
}

int team_size() {
  return pool().size();
}

int64_t sharing_factor_for(double handoff_ns) {
  return handoff_ns > kFarHandoffNs ? kFarTeamFactor : 1;
}

TeamInfo team_info() {
  const ThreadPool& p = pool();
  const double handoff_ns = p.handoff_ns();
  return {p.size(), handoff_ns, sharing_factor_for(handoff_ns)};
}

bool worth_sharing(int64_t work, int64_t grain) {
  return work >= grain * pool().sharing_factor();
}

}  // namespace optimi::kernels::cpu
