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

// A tensor's elements in fixed chunks (whole cache lines), whose sums (StableAdamW's, and those
// of the ops that return one) are added in chunk order however the chunks are shared out: a
// step's results do not depend on the number of threads, nor on whether it was shared out at all
// (which the team decides by timing, see worth_sharing).
constexpr int64_t kChunk = int64_t(1) << 14;
int64_t chunks_of(const KernelArgs& a) {
  return (a.numel + kChunk - 1) / kChunk;
}

// The sums of every chunk of every tensor.
class ChunkSums {
 public:
  explicit ChunkSums(std::span<const KernelArgs> tensors) {
    for (const KernelArgs& a : tensors) {
      first_.push_back(int64_t(sums_.size()));
      sums_.resize(sums_.size() + size_t(chunks_of(a)), 0.0);
    }
    first_.push_back(int64_t(sums_.size()));
  }
  double& at(size_t k, int64_t chunk) { return sums_[size_t(first_[k] + chunk)]; }
  double total(size_t k) const {
    double sum = 0.0;
    for (int64_t i = first_[k]; i < first_[k + 1]; ++i) sum += sums_[size_t(i)];
    return sum;
  }

 private:
  std::vector<int64_t> first_;  // index of each tensor's first chunk
  std::vector<double> sums_;
};

// op over chunk c of tensor a.
template <class Op>
double run_chunk(const Op& op, const KernelArgs& a, int64_t c) {
  return run_any(op, a, c * kChunk, std::min(a.numel, (c + 1) * kChunk));
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

}  // namespace

template <class Op>
std::vector<double> launch(std::span<const Op> ops, std::span<const KernelArgs> tensors) {
  const int64_t total = check_dtypes(tensors);
  const size_t count = tensors.size();
  ChunkSums sums(tensors);
  auto run_whole = [&](size_t k) {
    for (int64_t c = 0; c < chunks_of(tensors[k]); ++c)
      sums.at(k, c) = run_chunk(ops[k], tensors[k], c);
  };
  if (!worth_sharing(total, kParallelThreshold)) {
    for (size_t k = 0; k < count; ++k) run_whole(k);
  } else {
    const std::vector<size_t> whole = whole_tensors(tensors);
    // No barrier between tensors: a thread moves on as soon as its share of one is done.
    parallel_region(true, [&](const Team& team) {
      for (size_t k = 0; k < count; ++k) {
        if (tensors[k].numel < kSharedTensor) continue;
        team.for_static(chunks_of(tensors[k]),
                        [&](int64_t c) { sums.at(k, c) = run_chunk(ops[k], tensors[k], c); });
      }
      team.for_dynamic(int64_t(whole.size()), [&](int64_t i) { run_whole(whole[size_t(i)]); });
    });
  }
  std::vector<double> totals(count);
  for (size_t k = 0; k < count; ++k) totals[k] = sums.total(k);
  return totals;
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
  ChunkSums sums(tensors);
  // The moments, then the update clipped by their RMS over the whole tensor.
  auto step_whole = [&](size_t k) {
    const KernelArgs& t = tensors[k];
    for (int64_t c = 0; c < chunks_of(t); ++c) sums.at(k, c) = run_chunk(moments, t, c);
    run_any(clip.update(sums.total(k), t.numel), t, 0, t.numel);
  };
  if (!worth_sharing(total, kParallelThreshold)) {
    for (size_t k = 0; k < count; ++k) step_whole(k);
    return;
  }
  const std::vector<size_t> whole = whole_tensors(tensors);
  parallel_region(true, [&](const Team& team) {
    for (size_t k = 0; k < count; ++k) {
      const KernelArgs& t = tensors[k];
      if (t.numel < kSharedTensor) continue;
      team.for_static(chunks_of(t), [&](int64_t c) { sums.at(k, c) = run_chunk(moments, t, c); });
      team.barrier();
      const StableAdamWUpdate step = clip.update(sums.total(k), t.numel);
      team.for_static(chunks_of(t), [&](int64_t c) { run_chunk(step, t, c); });
    }
    team.for_dynamic(int64_t(whole.size()), [&](int64_t i) { step_whole(whole[size_t(i)]); });
  });
}

#define OPTIMI_INSTANTIATE(Op) \
  template std::vector<double> launch(std::span<const Op>, std::span<const KernelArgs>);
OPTIMI_FOR_EACH_OPTIMIZER_OP(OPTIMI_INSTANTIATE)
#undef OPTIMI_INSTANTIATE

}  // namespace optimi::kernels::cpu
