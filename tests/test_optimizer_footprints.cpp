// The CUDA optimizer kernels stage only the buffers an op's Footprint declares and store back only
// those it declares written (kernels/cuda/optimizers.cu). Here every other buffer is null, so an
// op that read one would crash this test on the CPU; and the buffers it must not write are
// compared before and after.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

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

template <class T>
std::vector<uint16_t> bits_of(const T* x) {
  std::vector<uint16_t> out(4 * sizeof(T) / 2);
  std::memcpy(out.data(), x, 4 * sizeof(T));
  return out;
}

// Runs `op` in variant kV over fresh buffers; the ones the variant must leave alone stay as they
// were.
template <class T, Variant kV, class Op>
void check_variant(const Op& op) {
  constexpr Footprint f = Op::kFootprint;
  INFO("kahan " << kV.kahan << " update " << kV.update << " decay " << int(kV.decay));
  Buffers<T> b{};
  for (int i = 0; i < 4; ++i) {
    b.param[i] = store<T>(1.0f + 0.25f * float(i));
    b.grad[i] = store<T>(0.5f - 0.375f * float(i));
    b.kahan[i] = store<T>(0.001f * float(i));
    for (auto& s : b.state) s[i] = store<T>(0.125f * float(i + 1));
  }
  const Buffers<T> before = b;
  const ParamTensors<T> t = b.declared(f, kV.kahan);
  for (int64_t i = 0; i < 4; ++i) op.template apply<kV>(t, i);
  CHECK(bits_of(b.grad) == bits_of(before.grad));
  if (!(f.param && kV.update)) {
    CHECK(bits_of(b.param) == bits_of(before.param));
    CHECK(bits_of(b.kahan) == bits_of(before.kahan));
  }
  if (!f.writes_states) {
    for (int s = 0; s < 4; ++s) CHECK(bits_of(b.state[s]) == bits_of(before.state[s]));
  }
}

template <class T, bool kKahan, class Op>
void every_variant(const Op& op) {
  check_variant<T, Variant{kKahan, true, Decay::kNone}>(op);
  check_variant<T, Variant{kKahan, true, Decay::kFactor}>(op);
  check_variant<T, Variant{kKahan, true, Decay::kL2}>(op);
  if constexpr (!kKahan) check_variant<T, Variant{false, false, Decay::kNone}>(op);
}

}  // namespace

TEST_CASE("optimizer ops touch only the buffers their Footprint declares", "[optim]") {
#define OPTIMI_CHECK_FOOTPRINT(Op)        \
  {                                       \
    INFO(#Op);                            \
    every_variant<float, false>(Op{});    \
    every_variant<bfloat16, false>(Op{}); \
    every_variant<bfloat16, true>(Op{});  \
  }
  OPTIMI_FOR_EACH_OPTIMIZER_OP(OPTIMI_CHECK_FOOTPRINT)
#undef OPTIMI_CHECK_FOOTPRINT
}
