// The CUDA optimizer kernels stage only the buffers an op's Footprint declares
// (kernels/cuda/optimizers.cu). Here every other buffer is null: an op that touched one would
// crash this test on the CPU, rather than read registers that were never loaded on a GPU.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "kernels/optimizers.hpp"

using namespace optimi;
using namespace optimi::kernels;

namespace {

template <class T>
struct Buffers {
  T param[4], grad[4], state[4][4], kahan[4];

  // Pointers to the buffers `f` declares, null elsewhere.
  ParamTensors<T> declared(const Footprint& f, bool with_kahan) {
    return {f.param ? param : nullptr,
            f.grad ? grad : nullptr,
            {f.states > 0 ? state[0] : nullptr, f.states > 1 ? state[1] : nullptr,
             f.states > 2 ? state[2] : nullptr, f.states > 3 ? state[3] : nullptr},
            with_kahan && f.param ? kahan : nullptr};
  }
};

template <class T, Variant kV, class Op>
void apply_all(const Op& op, Buffers<T>& b) {
  const ParamTensors<T> t = b.declared(Op::kFootprint, kV.kahan);
  for (int64_t i = 0; i < 4; ++i) op.template apply<kV>(t, i);
}

template <class T, bool kKahan, class Op>
void every_variant(const Op& op) {
  Buffers<T> b{};
  for (int i = 0; i < 4; ++i) {
    b.param[i] = store<T>(1.0f + 0.25f * float(i));
    b.grad[i] = store<T>(0.5f - 0.375f * float(i));
    for (auto& s : b.state) s[i] = store<T>(0.125f * float(i + 1));
  }
  apply_all<T, Variant{kKahan, true, Decay::kNone}>(op, b);
  apply_all<T, Variant{kKahan, true, Decay::kFactor}>(op, b);
  apply_all<T, Variant{kKahan, true, Decay::kL2}>(op, b);
  if constexpr (!kKahan) apply_all<T, Variant{false, false, Decay::kNone}>(op, b);
}

}  // namespace

TEST_CASE("optimizer ops touch only the buffers their Footprint declares", "[optim]") {
#define OPTIMI_CHECK_FOOTPRINT(Op)                   \
  {                                                  \
    INFO(#Op);                                       \
    every_variant<float, false>(Op{});               \
    every_variant<bfloat16, false>(Op{});            \
    every_variant<bfloat16, true>(Op{});             \
    SUCCEED(std::string(#Op) + " stayed in bounds"); \
  }
  OPTIMI_FOR_EACH_OPTIMIZER_OP(OPTIMI_CHECK_FOOTPRINT)
#undef OPTIMI_CHECK_FOOTPRINT
}
