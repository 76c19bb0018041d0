#include "kernels/cpu/gemm_avx512.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/thread_pool.hpp"

// Blocked like BLIS: B is packed once into 32-column panels, each task packs a block of A rows
// into 14-row groups, and a 14x32 register tile runs over the whole depth, so every output is
// written once. Operands already laid out the way the tile reads them are read in place. Float32
// multiplies with FMA one k at a time; bfloat16 with VDPBF16PS, which takes k two at a time (pairs
// interleaved by the packing) at twice the multiply-adds per instruction, accumulates in float32
// and rounds once on store.
namespace optimi::kernels::cpu {
namespace {

constexpr int64_t kMr = 14;        // tile rows: 28 accumulators + 2 B vectors + 1 A broadcast <= 32
constexpr int64_t kNr = 32;        // tile columns: two 16-lane vectors
constexpr int64_t kMc = kMr * 12;  // rows per task, packed once and kept in L2
constexpr int64_t kPanelsPerTask = 4;  // 128 columns per task: enough tasks to balance threads

// Elements of a matrix per 32-bit unit of the kernels (see below).
template <class K>
constexpr int64_t kElemsPerUnit = 4 / int64_t(sizeof(typename K::Elem));

__mmask16 lanes(int64_t count) {
  return count >= 16 ? __mmask16(0xffff) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

}  // namespace

// Only the functions below use AVX-512, so the rest of the library keeps its own target and
// these are chosen at run time. They emit no inline or template function that other files also
// emit (the standard-library helpers they call are inlined): a copy compiled for this target
// could be the one the linker keeps for everyone.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
// GCC 12 flags the undefined upper half that _mm512_castps512_ps256 and friends leave by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace {

// Both kernels consume 32-bit units along the depth: one float32, or a pair of bfloat16 (k = 2p
// in the low half, 2p + 1 in the high half) for VDPBF16PS, which multiplies pairs. Packed A holds
// the units of a 14-row group as [step][row], packed B those of a 32-column panel as
// [step][column].
// A 32-bit unit that may sit in the caller's float or bfloat16 matrix (A read in place).
using Units = uint32_t __attribute__((may_alias, aligned(2)));

// The unit of A at step p of row i, packed or read in place (rows a_row units apart).
template <int M, bool kPacked>
inline uint32_t a_unit(const uint32_t* a, int64_t a_row, int64_t p, int i) {
  const Units* u = reinterpret_cast<const Units*>(a);
  return kPacked ? u[p * M + i] : u[i * a_row + p];
}

struct Fp32Fma {
  using Elem = float;
  static constexpr int64_t kDepthStep = 1;

  static uint32_t unit(const float* x, int64_t depth_stride, int64_t p, int64_t) {
    uint32_t u;
    std::memcpy(&u, x + p * depth_stride, 4);
    return u;
  }
  // The units at step p of 16 adjacent rows or columns starting at x (zero outside `lanes`).
  static __m512i adjacent_units(const float* x, int64_t depth_stride, int64_t p, int64_t,
                                __mmask16 lanes) {
    return _mm512_maskz_loadu_epi32(lanes, x + p * depth_stride);
  }
  // A row of 16 accumulators starting from the bias (zero outside `lanes`, or without one).
  static __m512 start(const float* bias, __mmask16 lanes) {
    return bias && lanes ? _mm512_maskz_loadu_ps(lanes, bias) : _mm512_setzero_ps();
  }
  // The second column vector: 16 lanes, 8 (a 256-bit vector: on Zen 4 it costs half a 512-bit
  // multiply-add, and masked-off lanes cost as much as used ones) or none.
  template <int M, bool kPacked, int kTail>
  static void tile(int64_t steps, const uint32_t* a, int64_t a_row, const uint32_t* b,
                   int64_t b_row, const float* bias, float* c, int64_t ldc, __mmask16 mask0,
                   __mmask16 mask1) {
    const float* bias1 = bias && mask1 ? bias + 16 : nullptr;
    __m512 acc0[M], acc1[M];
    __m256 half1[M];
    const __m512 start0 = start(bias, mask0), start1 = start(bias1, mask1);
    const __m256 half_start1 =
        bias1 ? _mm256_maskz_loadu_ps(__mmask8(mask1), bias1) : _mm256_setzero_ps();
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) acc0[i] = start0, acc1[i] = start1, half1[i] = half_start1;
    for (int64_t p = 0; p < steps; ++p) {
      const uint32_t* bs = b + p * b_row;
      const __m512 b0 = _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(mask0, bs));
      __m512 b1;
      __m256 h1;
      if constexpr (kTail == 16) b1 = _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(mask1, bs + 16));
      if constexpr (kTail == 8) h1 = _mm256_maskz_loadu_ps(__mmask8(mask1), bs + 16);
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        __m512 ai = _mm512_castsi512_ps(_mm512_set1_epi32(int(a_unit<M, kPacked>(a, a_row, p, i))));
        acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
        if constexpr (kTail == 16) acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        if constexpr (kTail == 8)
          half1[i] = _mm256_fmadd_ps(_mm512_castps512_ps256(ai), h1, half1[i]);
      }
    }
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      _mm512_mask_storeu_ps(c + i * ldc, mask0, acc0[i]);
      if constexpr (kTail == 16) _mm512_mask_storeu_ps(c + i * ldc + 16, mask1, acc1[i]);
      if constexpr (kTail == 8) _mm256_mask_storeu_ps(c + i * ldc + 16, __mmask8(mask1), half1[i]);
    }
  }
};

struct Bf16Dot {
  using Elem = uint16_t;
  static constexpr int64_t kDepthStep = 2;

  static uint32_t unit(const uint16_t* x, int64_t depth_stride, int64_t p, int64_t k) {
    const uint16_t* lo = x + 2 * p * depth_stride;
    return uint32_t(*lo) | (2 * p + 1 < k ? uint32_t(lo[depth_stride]) << 16 : 0u);
  }
  static __m512i adjacent_units(const uint16_t* x, int64_t depth_stride, int64_t p, int64_t k,
                                __mmask16 lanes) {
    const uint16_t* lo = x + 2 * p * depth_stride;
    __m512i units = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, lo));
    if (2 * p + 1 < k) {
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, lo + depth_stride));
      units = _mm512_or_si512(units, _mm512_slli_epi32(hi, 16));
    }
    return units;
  }
  static __m512 start(const uint16_t* bias, __mmask16 lanes) {
    if (!bias || !lanes) return _mm512_setzero_ps();
    const __m512i widened = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, bias));
    return _mm512_castsi512_ps(_mm512_slli_epi32(widened, 16));  // bfloat16 -> float32 is exact
  }
  // The second column vector as in Fp32Fma::tile.
  template <int M, bool kPacked, int kTail>
  static void tile(int64_t steps, const uint32_t* a, int64_t a_row, const uint32_t* b,
                   int64_t b_row, const uint16_t* bias, uint16_t* c, int64_t ldc, __mmask16 mask0,
                   __mmask16 mask1) {
    const uint16_t* bias1 = bias && mask1 ? bias + 16 : nullptr;
    __m512 acc0[M], acc1[M];
    __m256 half1[M];
    const __m512 start0 = start(bias, mask0), start1 = start(bias1, mask1);
    const __m256 half_start1 = _mm512_castps512_ps256(start1);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) acc0[i] = start0, acc1[i] = start1, half1[i] = half_start1;
    for (int64_t p = 0; p < steps; ++p) {
      const uint32_t* bs = b + p * b_row;
      const __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(mask0, bs);
      __m512bh b1;
      __m256bh h1;
      if constexpr (kTail == 16) b1 = (__m512bh)_mm512_maskz_loadu_epi32(mask1, bs + 16);
      if constexpr (kTail == 8) h1 = (__m256bh)_mm256_maskz_loadu_epi32(__mmask8(mask1), bs + 16);
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        __m512i unit = _mm512_set1_epi32(int(a_unit<M, kPacked>(a, a_row, p, i)));
        acc0[i] = _mm512_dpbf16_ps(acc0[i], (__m512bh)unit, b0);
        if constexpr (kTail == 16) acc1[i] = _mm512_dpbf16_ps(acc1[i], (__m512bh)unit, b1);
        if constexpr (kTail == 8)
          half1[i] = _mm256_dpbf16_ps(half1[i], (__m256bh)_mm512_castsi512_si256(unit), h1);
      }
    }
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      _mm256_mask_storeu_epi16(c + i * ldc, mask0, (__m256i)_mm512_cvtneps_pbh(acc0[i]));
      if constexpr (kTail == 16)
        _mm256_mask_storeu_epi16(c + i * ldc + 16, mask1, (__m256i)_mm512_cvtneps_pbh(acc1[i]));
      if constexpr (kTail == 8)
        _mm_mask_storeu_epi16(c + i * ldc + 16, __mmask8(mask1),
                              (__m128i)_mm256_cvtneps_pbh(half1[i]));
    }
  }
};

template <class K>
using TileFn = void (*)(int64_t, const uint32_t*, int64_t, const uint32_t*, int64_t,
                        const typename K::Elem*, typename K::Elem*, int64_t, __mmask16, __mmask16);
template <class K, bool kPacked, int kTail, size_t... M>
constexpr std::array<TileFn<K>, sizeof...(M)> make_tiles(std::index_sequence<M...>) {
  return {&K::template tile<int(M) + 1, kPacked, kTail>...};
}
// kTiles<K, packed, tail>[r - 1] computes a group of r rows.
template <class K, bool kPacked, int kTail>
constexpr std::array<TileFn<K>, kMr> kTiles =
    make_tiles<K, kPacked, kTail>(std::make_index_sequence<kMr>());

// The tile for `rows` rows whose second column vector covers mask1.
template <class K, bool kPacked>
TileFn<K> tile_for(size_t rows, __mmask16 mask1) {
  if (mask1 == 0) return kTiles<K, kPacked, 0>[rows - 1];
  if (mask1 <= 0xff) return kTiles<K, kPacked, 8>[rows - 1];
  return kTiles<K, kPacked, 16>[rows - 1];
}

// Lane j of vector r moves to lane r of vector j.
inline void transpose16(__m512i v[16]) {
  __m512i pairs[16], quads[16];
  for (int i = 0; i < 16; i += 2) {
    pairs[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
    pairs[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
  }
  // quads[g + q]: lane q of every 128-bit quarter of vectors g..g+3.
  for (int g = 0; g < 16; g += 4) {
    quads[g] = _mm512_unpacklo_epi64(pairs[g], pairs[g + 2]);
    quads[g + 1] = _mm512_unpackhi_epi64(pairs[g], pairs[g + 2]);
    quads[g + 2] = _mm512_unpacklo_epi64(pairs[g + 1], pairs[g + 3]);
    quads[g + 3] = _mm512_unpackhi_epi64(pairs[g + 1], pairs[g + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512i low0 = _mm512_shuffle_i32x4(quads[q], quads[4 + q], 0x44);
    const __m512i high0 = _mm512_shuffle_i32x4(quads[q], quads[4 + q], 0xEE);
    const __m512i low1 = _mm512_shuffle_i32x4(quads[8 + q], quads[12 + q], 0x44);
    const __m512i high1 = _mm512_shuffle_i32x4(quads[8 + q], quads[12 + q], 0xEE);
    v[q] = _mm512_shuffle_i32x4(low0, low1, 0x88);
    v[4 + q] = _mm512_shuffle_i32x4(low0, low1, 0xDD);
    v[8 + q] = _mm512_shuffle_i32x4(high0, high1, 0x88);
    v[12 + q] = _mm512_shuffle_i32x4(high0, high1, 0xDD);
  }
}

// Up to 16 lines (rows of A, columns of B) whose units already lie in order along each line
// (`stride` units apart), 16 steps at a time through a register transpose: step p of line i goes
// to out[p * out_step + i]. Lanes from `lines` to `width` are written as zeros (padding).
void pack_unit_lines(const uint32_t* x, int64_t stride, int64_t lines, int64_t width, int64_t steps,
                     uint32_t* out, int64_t out_step) {
  for (int64_t p0 = 0; p0 < steps; p0 += 16) {
    const int64_t count = std::min<int64_t>(16, steps - p0);
    __m512i v[16];
    for (int i = 0; i < 16; ++i) {
      v[i] = i < lines ? _mm512_maskz_loadu_epi32(lanes(count), x + i * stride + p0)
                       : _mm512_setzero_si512();
    }
    transpose16(v);
    for (int64_t j = 0; j < count; ++j) {
      _mm512_mask_storeu_epi32(out + (p0 + j) * out_step, lanes(width), v[j]);
    }
  }
}

// Rows [0, mc) of A; group g (rows from 14g) at out + 14g * steps. The loops run along whichever
// of rows or depth is contiguous in memory; `unit_rows`: A's units lie in order along its rows.
template <class K>
void pack_a(MatrixRef<typename K::Elem> a, bool unit_rows, int64_t mc, int64_t k, int64_t steps,
            uint32_t* out) {
  if (a.row_stride == 1) {
    // Rows adjacent in memory: step by step, all groups from one contiguous stretch (group by
    // group, every step would touch a new line, one depth stride from the last: a cache miss).
    for (int64_t p = 0; p < steps; ++p) {
      for (int64_t g = 0; g < mc; g += kMr) {
        const int64_t mr = std::min(kMr, mc - g);
        const __mmask16 group = lanes(mr);
        _mm512_mask_storeu_epi32(out + g * steps + p * mr, group,
                                 K::adjacent_units(a.data + g, a.col_stride, p, k, group));
      }
    }
    return;
  }
  for (int64_t g = 0; g < mc; g += kMr) {
    const int64_t mr = std::min(kMr, mc - g);
    uint32_t* o = out + g * steps;
    const typename K::Elem* rows = a.data + g * a.row_stride;
    if (unit_rows) {
      pack_unit_lines(reinterpret_cast<const uint32_t*>(rows), a.row_stride / kElemsPerUnit<K>, mr,
                      mr, steps, o, mr);
    } else {
      for (int64_t i = 0; i < mr; ++i) {
        for (int64_t p = 0; p < steps; ++p)
          o[p * mr + i] = K::unit(rows + i * a.row_stride, a.col_stride, p, k);
      }
    }
  }
}

// Columns [0, nj) of B, zero-padded to kNr columns. The loops run along whichever of columns or
// depth is contiguous in memory; `unit_columns`: B's units lie in order down its columns.
template <class K>
void pack_b(MatrixRef<typename K::Elem> b, bool unit_columns, int64_t nj, int64_t k, int64_t steps,
            uint32_t* out) {
  if (b.col_stride == 1) {
    const __mmask16 left = lanes(nj), right = lanes(nj - 16);
    for (int64_t p = 0; p < steps; ++p) {
      _mm512_storeu_si512(out + p * kNr, K::adjacent_units(b.data, b.row_stride, p, k, left));
      _mm512_storeu_si512(out + p * kNr + 16,
                          nj > 16 ? K::adjacent_units(b.data + 16, b.row_stride, p, k, right)
                                  : _mm512_setzero_si512());
    }
    return;
  }
  if (unit_columns) {
    for (int64_t half = 0; half < kNr; half += 16) {  // a right half past nj is all padding
      const int64_t lines = std::clamp<int64_t>(nj - half, 0, 16);
      const auto* columns =
          reinterpret_cast<const uint32_t*>(lines ? b.data + half * b.col_stride : b.data);
      pack_unit_lines(columns, b.col_stride / kElemsPerUnit<K>, lines, 16, steps, out + half, kNr);
    }
    return;
  }
  for (int64_t j = 0; j < nj; ++j) {
    for (int64_t p = 0; p < steps; ++p)
      out[p * kNr + j] = K::unit(b.data + j * b.col_stride, b.row_stride, p, k);
  }
  for (int64_t p = 0; p < steps; ++p) {
    for (int64_t j = nj; j < kNr; ++j) out[p * kNr + j] = 0;
  }
}

// Where the tiles find B: panel j starts at data + j * panel_stride and its steps are `row` units
// apart (packed: [step][column] panels one after another; in place: the caller's rows).
struct PanelsOfB {
  const uint32_t* data;
  int64_t panel_stride, row;
};

// One task: rows [0, mc) of the A block against B panels [panel0, panel1) into c (n columns,
// rows ldc apart), plus the bias (n values, or null) in every row. A is packed when a_row is 0,
// else read in place with its rows a_row units apart.
template <class K>
void run_block(const uint32_t* a, int64_t a_row, int64_t mc, int64_t steps, PanelsOfB b,
               int64_t panel0, int64_t panel1, int64_t n, const typename K::Elem* bias,
               typename K::Elem* c, int64_t ldc) {
  for (int64_t panel = panel0; panel < panel1; ++panel) {
    int64_t j0 = panel * kNr;
    __mmask16 mask0 = lanes(n - j0);
    __mmask16 mask1 = lanes(n - j0 - 16);
    const uint32_t* bp = b.data + panel * b.panel_stride;
    const typename K::Elem* bias_j = bias ? bias + j0 : nullptr;
    for (int64_t ir = 0; ir < mc; ir += kMr) {
      const size_t rows = size_t(std::min(kMr, mc - ir));
      typename K::Elem* ct = c + ir * ldc + j0;
      if (a_row == 0) {
        tile_for<K, true>(rows, mask1)(steps, a + ir * steps, 0, bp, b.row, bias_j, ct, ldc, mask0,
                                       mask1);
      } else {
        tile_for<K, false>(rows, mask1)(steps, a + ir * a_row, a_row, bp, b.row, bias_j, ct, ldc,
                                        mask0, mask1);
      }
    }
  }
}

}  // namespace
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace {

// Scratch that outlives calls: packing buffers are sized per problem and would otherwise be
// allocated (and page-faulted) on every product.
uint32_t* scratch(std::vector<uint32_t>& buffer, int64_t size) {
  if (buffer.size() < size_t(size)) buffer.resize(size_t(size));
  return buffer.data();
}

template <class K>
void run(MatrixRef<typename K::Elem> a, MatrixRef<typename K::Elem> b, typename K::Elem* c,
         int64_t ldc, int64_t m, int64_t n, int64_t k, const typename K::Elem* bias,
         bool threaded) {
  if (n == 1 && m > 1 && ldc == 1 && !bias) {
    // A matrix-vector product would fill one lane of 32 per tile; c^T = b^T a^T fills them all
    // and a dense [m, 1] result is laid out like a [1, m] one.
    return run<K>({b.data, b.col_stride, b.row_stride}, {a.data, a.col_stride, a.row_stride}, c, m,
                  1, m, k, nullptr, threaded);
  }
  if (K::kDepthStep == 1 && a.row_stride == 1 && a.col_stride != 1 && n < m && n <= kMc && !bias) {
    // A column-major A (a weight gradient: g^T x, g the large one) would be packed whole, one
    // more pass over it than the product itself; c^T = b^T a^T reads it in place as B instead
    // (see b_in_place) and packs the small operand. The result lands transposed in scratch.
    thread_local std::vector<typename K::Elem> c_transposed;
    c_transposed.resize(size_t(n * m));
    typename K::Elem* ct = c_transposed.data();
    run<K>({b.data, b.col_stride, b.row_stride}, {a.data, a.col_stride, a.row_stride}, ct, m, n, m,
           k, nullptr, threaded);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = ct[j * m + i];
    }
    return;
  }
  const int64_t steps = (k + K::kDepthStep - 1) / K::kDepthStep;
  const int64_t panels = (n + kNr - 1) / kNr;
  const int64_t blocks_n = (panels + kPanelsPerTask - 1) / kPanelsPerTask;
  constexpr int64_t kThreadedWork = int64_t(1) << 18;  // m*n*k below which one thread is faster
  const int64_t threads = threaded && worth_sharing(m * n * k, kThreadedWork) ? team_size() : 1;
  // Rows per task: kMc, or fewer (whole tile groups) where kMc would leave too few tasks to share
  // out evenly (512 rows in blocks of 168 give 2 threads 336 and 176).
  constexpr int64_t kTasksPerThread = 4;
  const int64_t wanted_blocks = (kTasksPerThread * threads + blocks_n - 1) / blocks_n;
  const int64_t rows_per_block = (m + wanted_blocks - 1) / wanted_blocks;
  const int64_t block_rows =
      threads > 1 ? std::clamp((rows_per_block + kMr - 1) / kMr * kMr, kMr, kMc) : kMc;
  const int64_t blocks_m = (m + block_rows - 1) / block_rows;
  // A whose depth is contiguous already holds its units in order (bfloat16 pairs too, when k and
  // the row stride are even): the tiles read it in place, with no packing. Unless its rows lie a
  // multiple of 4 KiB apart: the 14 rows a tile reads would then share one set of the L1 cache.
  const bool unit_rows =
      a.col_stride == 1 && k % K::kDepthStep == 0 && a.row_stride % kElemsPerUnit<K> == 0;
  const bool unit_columns =
      b.row_stride == 1 && k % K::kDepthStep == 0 && b.col_stride % kElemsPerUnit<K> == 0;
  const bool aliasing_rows = a.row_stride * int64_t(sizeof(typename K::Elem)) % 4096 == 0;
  const bool in_place = unit_rows && !aliasing_rows;
  const int64_t a_row = a.row_stride / kElemsPerUnit<K>;
  // Float32 B with unit column stride is read in place when its rows feed a single block of A
  // rows: packing would then read and write all of B for one pass over it. (Bfloat16 B would
  // need its pairs of rows interleaved; a B reused by many blocks is worth a compact copy.)
  const bool b_in_place = K::kDepthStep == 1 && b.col_stride == 1 && m <= kMc;
  thread_local std::vector<uint32_t> b_buffer;
  uint32_t* b_packed = b_in_place ? nullptr : scratch(b_buffer, panels * steps * kNr);
  const PanelsOfB b_panels =
      b_in_place ? PanelsOfB{reinterpret_cast<const uint32_t*>(b.data), kNr, b.row_stride}
                 : PanelsOfB{b_packed, steps * kNr, kNr};
  auto pack_panel = [&](int64_t panel) {
    pack_b<K>({b.data + panel * kNr * b.col_stride, b.row_stride, b.col_stride}, unit_columns,
              std::min(kNr, n - panel * kNr), k, steps, b_packed + panel * steps * kNr);
  };
  // A task runs one block of A rows against kPanelsPerTask panels. Consecutive tasks of a thread
  // often share their A block, packed once into that thread's buffer.
  struct PackedA {
    uint32_t* data;
    int64_t block = -1;
  };
  auto packed_a = [&] {
    thread_local std::vector<uint32_t> a_buffer;
    return PackedA{in_place ? nullptr : scratch(a_buffer, std::min(block_rows, m) * steps)};
  };
  auto run_task = [&](PackedA& packed, int64_t task) {
    const int64_t block = task / blocks_n;
    const int64_t i0 = block * block_rows;
    const int64_t mc = std::min(block_rows, m - i0);
    if (!in_place && block != packed.block) {
      pack_a<K>({a.data + i0 * a.row_stride, a.row_stride, a.col_stride}, unit_rows, mc, k, steps,
                packed.data);
      packed.block = block;
    }
    const int64_t panel0 = (task % blocks_n) * kPanelsPerTask;
    const auto* a_block =
        in_place ? reinterpret_cast<const uint32_t*>(a.data + i0 * a.row_stride) : packed.data;
    run_block<K>(a_block, in_place ? a_row : 0, mc, steps, b_panels, panel0,
                 std::min(panels, panel0 + kPanelsPerTask), n, bias, c + i0 * ldc, ldc);
  };
  const int64_t tasks = blocks_m * blocks_n;
  const int64_t panels_to_pack = b_in_place ? 0 : panels;
  parallel_region(threads > 1, [&](const Team& team) {
    team.for_static(panels_to_pack, pack_panel);
    team.barrier();
    PackedA packed = packed_a();
    // Dynamic: a thread held up (shared cores) leaves its tasks to the others.
    team.for_dynamic(tasks, [&](int64_t task) { run_task(packed, task); });
  });
}

}  // namespace

bool avx512_gemm_available(DType dtype) {
  // Both kernels are compiled for the whole feature set below.
  static const bool f32 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  static const bool bf16 = f32 && __builtin_cpu_supports("avx512bf16");
  return dtype == DType::Float32 ? f32 : dtype == DType::BFloat16 && bf16;
}

void gemm_avx512(MatrixRef<float> a, MatrixRef<float> b, float* c, int64_t ldc, int64_t m,
                 int64_t n, int64_t k, const float* bias, bool threaded) {
  run<Fp32Fma>(a, b, c, ldc, m, n, k, bias, threaded);
}

void gemm_avx512(MatrixRef<bfloat16> a, MatrixRef<bfloat16> b, bfloat16* c, int64_t ldc, int64_t m,
                 int64_t n, int64_t k, const bfloat16* bias, bool threaded) {
  run<Bf16Dot>({reinterpret_cast<const uint16_t*>(a.data), a.row_stride, a.col_stride},
               {reinterpret_cast<const uint16_t*>(b.data), b.row_stride, b.col_stride},
               reinterpret_cast<uint16_t*>(c), ldc, m, n, k,
               reinterpret_cast<const uint16_t*>(bias), threaded);
}

}  // namespace optimi::kernels::cpu
