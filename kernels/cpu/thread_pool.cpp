#include "kernels/cpu/thread_pool.hpp"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>
#include <thread>

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

struct alignas(64) Counter {
  std::atomic<int64_t> next{0};
};

}  // namespace

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : size_(threads) {
    for (int t = 1; t < size_; ++t) std::thread([this, t] { work(t); }).detach();
  }
  int size() const { return size_; }

  // False (nothing run) when a job is already running.
  bool try_run(JobRef job) {
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    job_ = &job;
    for (Counter& c : counters_) c.next.store(0, std::memory_order_relaxed);
    running_.store(size_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes the job
    if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
    run_here(job, Team(this, 0, size_));
    while (running_.load(std::memory_order_acquire) != 0) cpu_relax();
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

}  // namespace optimi::kernels::cpu
