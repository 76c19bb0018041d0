#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

// The team of threads the CPU kernels share out their loops on, in place of OpenMP's: libgomp
// starts and joins a parallel region through two futex barriers, about a microsecond, which the
// MiniLM seed step (50 regions of a few microseconds each) paid on every one. Here the workers
// spin on a counter between jobs (and sleep after a while), so that a job starts and ends in
// about the time a cache line takes to cross between cores. The team size is OpenMP's
// (OMP_NUM_THREADS), read when the team starts.
namespace optimi::kernels::cpu {

class Team;

// A type-erased reference to a job: no allocation, unlike std::function.
class JobRef {
 public:
  // Not for a JobRef: copying one would otherwise wrap it in another, a second indirect call.
  template <class F>
  requires(!std::is_same_v<std::remove_const_t<F>, JobRef>) JobRef(F& f)
      : object_(&f), call_([](void* o, const Team& t) { (*static_cast<F*>(o))(t); }) {}
  void operator()(const Team& team) const { call_(object_, team); }

 private:
  void* object_;
  void (*call_)(void*, const Team&);
};

// What a job sees on each thread: its index, the team size, and the team-wide loops.
class Team {
 public:
  int thread() const { return thread_; }
  int threads() const { return threads_; }

  // f(begin, end) for this thread's contiguous share of [0, n).
  template <class F>
  void for_range(int64_t n, F&& f) const {
    f(n * thread_ / threads_, n * (thread_ + 1) / threads_);
  }
  // f(i) for i in [0, n), in contiguous blocks, one per thread.
  template <class F>
  void for_static(int64_t n, F&& f) const {
    for_range(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) f(i);
    });
  }
  // f(i) for i in [0, n), each thread taking the next i when it is done with one (for items of
  // uneven cost, or threads held up by others on shared cores). Every thread of the team must
  // call it, the same number of times.
  template <class F>
  void for_dynamic(int64_t n, F&& f) const {
    if (threads_ == 1) {
      for (int64_t i = 0; i < n; ++i) f(i);
      return;
    }
    const int loop = loops_++;
    for (int64_t i = claim(loop); i < n; i = claim(loop)) f(i);
  }
  // Waits until every thread of the team has reached it.
  void barrier() const;

 private:
  friend class ThreadPool;
  friend void run_on_team(bool parallel, JobRef job);
  Team(class ThreadPool* pool, int thread, int threads)
      : pool_(pool), thread_(thread), threads_(threads) {}
  int64_t claim(int loop) const;

  class ThreadPool* pool_;
  int thread_, threads_;
  mutable int loops_ = 0;  // dynamic loops this thread has started in the job
};

// Runs job(team) on every thread of the team, this one as thread 0, and returns when all are done.
// With `parallel` false, or when the team is already busy (a job started from within a job, or
// from another thread of the program), the job runs on this thread alone as a team of one.
void run_on_team(bool parallel, JobRef job);

// The number of threads a job may run on.
int team_size();

// The team as last measured (when it starts, then now and then): its size, the time an empty job
// takes to start and join on all its threads (the cost of handing work between them), and how
// many times more work than usual a loop then needs before sharing it out pays: 1, or
// kFarTeamFactor when the threads sit on cores far apart. Some virtual machines place them so at
// times: an empty job then took ~1 us instead of ~0.25, and a MiniLM seed step ran 40% slower on
// two threads than on one.
struct TeamInfo {
  int threads;
  double handoff_ns;
  int64_t sharing_factor;
};
inline constexpr int64_t kFarTeamFactor = 64;
TeamInfo team_info();
// TeamInfo::sharing_factor for an empty job's time.
int64_t sharing_factor_for(double handoff_ns);

// Elements below which threads cost more than they save: with 2 threads the MiniLM seed step
// (rows of 20, [512, 20] activations, 5120-element weights) ran 9-11% faster at 8192 than at
// 32768, and 2% faster again at 4096 (1% more at 2048).
inline constexpr int64_t kParallelGrain = int64_t(1) << 12;

// Whether `work` (elements; multiply-adds or others with a grain of their own) is worth sharing
// out on this team.
bool worth_sharing(int64_t work, int64_t grain = kParallelGrain);

template <class F>
void parallel_region(bool parallel, F&& job) {
  run_on_team(parallel, JobRef(job));
}

// f(i) for i in [0, n) in contiguous blocks, one per thread, when `parallel`.
template <class F>
void parallel_for(int64_t n, bool parallel, F&& f) {
  parallel_region(parallel && n > 1, [&](const Team& team) { team.for_static(n, f); });
}

// f(begin, end) for one contiguous share of [0, n) per thread when `parallel` (else f(0, n)):
// for loops that vectorise.
template <class F>
void parallel_ranges(int64_t n, bool parallel, F&& f) {
  parallel_region(parallel && n > 1, [&](const Team& team) { team.for_range(n, f); });
}

// f(i) for i in [0, n), threads taking items as they finish, when `parallel`.
template <class F>
void parallel_for_dynamic(int64_t n, bool parallel, F&& f) {
  parallel_region(parallel && n > 1, [&](const Team& team) { team.for_dynamic(n, f); });
}

}  // namespace optimi::kernels::cpu
