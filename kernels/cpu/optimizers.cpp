// Every float32 operation rounds on its own, as in the reference formulation: a multiply and an add
// contracted into one FMA would change bfloat16 results. (Vectorising the Adam family's sqrt also
// needs -fno-math-errno, which GCC only honours as a command-line flag.)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels/cpu/optimizers.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cpu/thread_pool.hpp"

namespace optimi::kernels::cpu {
namespace {

// Elements (in all the step's tensors) below which a parallel region costs more than it saves.
constexpr int64_t kParallelThreshold = 1 << 12;
// Tensors below this go whole to one thread, taken as threads come free (a small model's step is
// many tensors of a few thousand elements: shared out element-wise, each would cost a barrier
// or a region); larger ones are shared out element-wise between the threads.
constexpr int64_t kSharedTensor = 1 << 15;

// One thread's share of the elements. flatten inlines all of the per-element math however large
// this file's instantiations make it (GCC otherwise stops inlining at its unit-growth limit and the
// loops no longer vectorise); the by-value arguments show the compiler that stores through the
// tensors cannot change the pointers or scalars.
template <Variant kV, class Op, class T>
[[gnu::flatten]] double run_range(const Op op, const ParamTensors<T> t, int64_t begin,
                                  int64_t end) {
  using Result = decltype(op.template apply<kV>(t, 0));
  if constexpr (std::is_void_v<Result>) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) op.template apply<kV>(t, i);
    return 0.0;
  } else {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = begin; i < end; ++i) sum += op.template apply<kV>(t, i);
    return sum;
  }
}

// Picks the loop compiled for this tensor's variant.
template <bool kKahan, class Op, class T>
double run_update(const Op& op, const ParamTensors<T>& t, int64_t begin, int64_t end) {
  if constexpr (requires { op.decay; }) {
    switch (op.decay.kind()) {
      case Decay::kFactor:
        return run_range<Variant{kKahan, true, Decay::kFactor}>(op, t, begin, end);
      case Decay::kL2:
        return run_range<Variant{kKahan, true, Decay::kL2}>(op, t, begin, end);
      case Decay::kNone:
        break;
    }
  }
  return run_range<Variant{kKahan, true, Decay::kNone}>(op, t, begin, end);
}

template <class Op, class T>
double run_typed(const Op& op, const KernelArgs& a, int64_t begin, int64_t end) {
  ParamTensors<T> t = typed<T>(a);
  if (!a.update) return run_range<Variant{false, false, Decay::kNone}>(op, t, begin, end);
  // Kahan summation exists only for low-precision parameters.
  if constexpr (!std::is_same_v<T, float>) {
    if (a.kahan != nullptr) return run_update<true>(op, t, begin, end);
  }
  return run_update<false>(op, t, begin, end);
}

template <class Op>
double run_any(const Op& op, const KernelArgs& a, int64_t begin, int64_t end) {
  switch (a.dtype) {
    case DType::BFloat16:
      return run_typed<Op, bfloat16>(op, a, begin, end);
    case DType::Float16:
      return run_typed<Op, float16>(op, a, begin, end);
    default:
      return run_typed<Op, float>(op, a, begin, end);
  }
}

// Throws for storage types without kernels; returns the total number of elements.
int64_t check_dtypes(std::span<const KernelArgs> tensors) {
  int64_t total = 0;
  for (const KernelArgs& a : tensors) {
    if (a.dtype != DType::Float32 && a.dtype != DType::BFloat16 && a.dtype != DType::Float16) {
      throw std::invalid_argument(
          "optimizer step: parameters must be float32, bfloat16 or float16, got " +
          std::string(dtype_name(a.dtype)));
    }
    total += a.numel;
  }
  return total;
}

// Static schedule: each thread takes the same contiguous share of every tensor, split on whole
// cache lines.
struct Share {
  int64_t begin, end;
};
Share share_of(const KernelArgs& a, int64_t thread, int64_t threads) {
  const int64_t line = 64 / element_size(a.dtype);
  const int64_t block = ((a.numel + threads - 1) / threads + line - 1) / line * line;
  const int64_t begin = std::min(a.numel, thread * block);
  return {begin, std::min(a.numel, begin + block)};
}

// The tensors that go whole to one thread, largest first: the last ones taken are the smallest.
std::vector<size_t> whole_tensors(std::span<const KernelArgs> tensors) {
  std::vector<size_t> order;
  for (size_t k = 0; k < tensors.size(); ++k) {
    if (tensors[k].numel < kSharedTensor) order.push_back(k);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors[a].numel > tensors[b].numel; });
  return order;
}

// Per-thread partial sums, combined in thread order so that results do not depend on timing.
class PartialSums {
 public:
  explicit PartialSums(size_t count) : count_(count), sums_(size_t(team_size()) * count, 0.0) {}
  double& at(int64_t thread, size_t k) { return sums_[size_t(thread) * count_ + k]; }
  double total(size_t k) {  // slots of threads that did not run stay 0
    double sum = 0.0;
    for (size_t i = k; i < sums_.size(); i += count_) sum += sums_[i];
    return sum;
  }

 private:
  size_t count_;
  std::vector<double> sums_;
};

}  // namespace

template <class Op>
std::vector<double> launch(std::span<const Op> ops, std::span<const KernelArgs> tensors) {
  const int64_t total = check_dtypes(tensors);
  const size_t count = tensors.size();
  std::vector<double> sums(count, 0.0);
  if (!worth_sharing(total, kParallelThreshold)) {
    for (size_t k = 0; k < count; ++k) sums[k] = run_any(ops[k], tensors[k], 0, tensors[k].numel);
    return sums;
  }
  PartialSums partial(count);
  const std::vector<size_t> whole = whole_tensors(tensors);
  // No barrier between tensors: a thread moves on as soon as its share of one is done.
  parallel_region(true, [&](const Team& team) {
    for (size_t k = 0; k < count; ++k) {
      if (tensors[k].numel < kSharedTensor) continue;
      Share s = share_of(tensors[k], team.thread(), team.threads());
      partial.at(team.thread(), k) = run_any(ops[k], tensors[k], s.begin, s.end);
    }
    team.for_dynamic(int64_t(whole.size()), [&](int64_t i) {
      const size_t k = whole[size_t(i)];
      partial.at(team.thread(), k) = run_any(ops[k], tensors[k], 0, tensors[k].numel);
    });
  });
  for (size_t k = 0; k < count; ++k) sums[k] = partial.total(k);
  return sums;
}

void stable_adamw_step(const StableAdamWMoments& moments, const StableAdamWClip& clip,
                       std::span<const KernelArgs> tensors, bool update) {
  const int64_t total = check_dtypes(tensors);
  const size_t count = tensors.size();
  if (!update) {
    const std::vector<StableAdamWMoments> ops(count, moments);
    launch(std::span<const StableAdamWMoments>(ops), tensors);
    return;
  }
  if (!worth_sharing(total, kParallelThreshold)) {
    for (const KernelArgs& t : tensors) {
      double sum = run_any(moments, t, 0, t.numel);
      run_any(clip.update(sum, t.numel), t, 0, t.numel);
    }
    return;
  }
  PartialSums partial(count);
  const std::vector<size_t> whole = whole_tensors(tensors);
  parallel_region(true, [&](const Team& team) {
    for (size_t k = 0; k < count; ++k) {
      if (tensors[k].numel < kSharedTensor) continue;
      Share s = share_of(tensors[k], team.thread(), team.threads());
      partial.at(team.thread(), k) = run_any(moments, tensors[k], s.begin, s.end);
      team.barrier();
      run_any(clip.update(partial.total(k), tensors[k].numel), tensors[k], s.begin, s.end);
    }
    team.for_dynamic(int64_t(whole.size()), [&](int64_t i) {
      const KernelArgs& t = tensors[whole[size_t(i)]];
      run_any(clip.update(run_any(moments, t, 0, t.numel), t.numel), t, 0, t.numel);
    });
  });
}

#define OPTIMI_INSTANTIATE(Op) \
  template std::vector<double> launch(std::span<const Op>, std::span<const KernelArgs>);
OPTIMI_FOR_EACH_OPTIMIZER_OP(OPTIMI_INSTANTIATE)
#undef OPTIMI_INSTANTIATE

}  // namespace optimi::kernels::cpu
