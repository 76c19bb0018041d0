// The golden trajectories round every float32 operation on its own: contracting a multiply and an
// add into one FMA would change bfloat16 results. (Vectorising sqrt also needs -fno-math-errno,
// a build flag: it cannot be set per function.)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels/cpu/optimizers.hpp"

#include <stdexcept>
#include <string>
#include <type_traits>

namespace optimi::kernels::cpu {
namespace {

// Below this a parallel region costs more than it saves.
constexpr int64_t kParallelThreshold = 1 << 15;

template <bool kKahan, bool kUpdate, class Op, class T>
double run(const Op& op_in, const ParamTensors<T>& t_in, int64_t n) {
  using Result = decltype(op_in.template apply<kKahan, kUpdate>(t_in, 0));
  double sum = 0.0;
#pragma omp parallel if (n >= kParallelThreshold)
  {
    // Thread-local copies: the compiler sees that stores through the tensors cannot change the
    // pointers or scalars, so they stay in registers.
    const Op op = op_in;
    const ParamTensors<T> t = t_in;
    if constexpr (std::is_void_v<Result>) {
#pragma omp for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) op.template apply<kKahan, kUpdate>(t, i);
    } else {
#pragma omp for simd schedule(static) reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) sum += op.template apply<kKahan, kUpdate>(t, i);
    }
  }
  return sum;
}

template <class Op, class T>
double run_typed(const Op& op, const KernelArgs& a) {
  ParamTensors<T> t = typed<T>(a);
  if (!a.update) return run<false, false>(op, t, a.numel);
  // Kahan summation exists only for low-precision parameters.
  if constexpr (!std::is_same_v<T, float>) {
    if (a.kahan != nullptr) return run<true, true>(op, t, a.numel);
  }
  return run<false, true>(op, t, a.numel);
}

}  // namespace

template <class Op>
double launch(const Op& op, const KernelArgs& a) {
  switch (a.dtype) {
    case DType::Float32:
      return run_typed<Op, float>(op, a);
    case DType::BFloat16:
      return run_typed<Op, bfloat16>(op, a);
    case DType::Float16:
      return run_typed<Op, float16>(op, a);
    default:
      throw std::invalid_argument(
          "optimizer step: parameters must be float32, bfloat16 or float16, got " +
          std::string(dtype_name(a.dtype)));
  }
}

template double launch(const SgdStep&, const KernelArgs&);
template double launch(const SgdMomentumStep<false>&, const KernelArgs&);
template double launch(const SgdMomentumStep<true>&, const KernelArgs&);
template double launch(const GradientInit&, const KernelArgs&);
template double launch(const AdamStep&, const KernelArgs&);
template double launch(const RAdamStep<false>&, const KernelArgs&);
template double launch(const RAdamStep<true>&, const KernelArgs&);
template double launch(const RangerLookaheadStep<false>&, const KernelArgs&);
template double launch(const RangerLookaheadStep<true>&, const KernelArgs&);
template double launch(const LionStep&, const KernelArgs&);
template double launch(const AdanStep&, const KernelArgs&);
template double launch(const StableAdamWMoments&, const KernelArgs&);
template double launch(const StableAdamWUpdate&, const KernelArgs&);

}  // namespace optimi::kernels::cpu
