// GEMM for the discriminator step's small-batch products (op `gemm_nn`; torch-free):
//   C (R x N) = init + A (R x K) . B (K x N),  init = C (accumulate), row_bias[r],
//   col_bias[c], or 0,
// all row-major with row strides. The highway layer's six products per training step have
// one side of 64 rows (the minibatch) and a 1,720 x 1,720 weight on the other, where a BLAS
// spends a fixed share of each call packing the weight into its panel layout: MKL's forward
// product runs at 139 GFLOP/s against 198 here (`python benchmarks/micro.py highway`, idle
// 2-core AMD AVX-512 instance; MKL reaches ~180 on square 1024 products). Here no operand is
// packed, except B from kNNPackRows rows on (scoring's thousands; gemm_nn_core). Each
// microkernel keeps MR rows x kMicroCols columns of C in registers across a block of kc
// steps of k: per step it broadcasts MR scalars of A (rows read sequentially) and loads
// kMicroCols contiguous floats of B's row k (a strided panel that stays in L1/L2 while
// every row block of the tile uses it). A is read once per column panel, so the side that
// is a weight goes as A when its product has only 64 columns
// (forward: Z^T = W . X^T) and as B when the panel is the weight (input gradient G . W,
// weight gradient G^T . X): seqgan_fast/ops/highway.py picks the layouts.
//
// Every output is init + sum_k a_k b_k in k order, one FMA per term (two roundings on the
// baseline): blocking and threading change which register holds a sum, never its rounding,
// so the result is the same bits at every thread count and on the AVX-512 and AVX2 paths.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "api.h"
#include "gemm.h"
#include "parallel.h"
#include "vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

// Rows of this kernel's microkernel, 6 x gemm.h's kNV native vectors on every path: AVX-512
// 24 of 32 zmm accumulators, AVX2 and the baseline 12 of 16 (+ kNV for B's row and one
// broadcast). On the AVX2 path 6 rows ran faster than gemm.h's 4 for both the conv forward
// and the input gradient (a throwaway harness during development; not kept).
constexpr int kNNMR = 6;
constexpr int64_t kNNKc = 256;  // steps of k per block: a B block of kc x kMicroCols floats

// nn_micro_cols: gemm.h's microkernel on m <= kNNMR rows with nv native vectors of columns
// (1 <= nv <= kNV), both chosen at run time; init as gemm_micro's.
template <int NV = kNV>
inline void nn_micro_cols(int nv, int64_t m, const float* A, int64_t lda, const float* B,
                          int64_t ldb, int64_t K, float* C, int64_t ldc, bool load,
                          const float* rbias, const float* cbias) {
  if constexpr (NV > 0) {
    if (nv == NV)
      return gemm_micro_rows<kNNMR, NV>(m, A, lda, B, ldb, K, C, ldc, load, rbias, cbias);
    nn_micro_cols<NV - 1>(nv, m, A, lda, B, ldb, K, C, ldc, load, rbias, cbias);
  }
}

// One tile: rows [r0, r1) x columns [c0, c0 + kMicroCols) of C, the k block from k0. B is
// the tile's column c0 of B's row 0 with row stride ldb: g.B + c0 and g.ldb, or a packed
// panel (kMicroCols wide, zero-padded). A partial panel (the last, narrower than kMicroCols)
// whose width is whole native vectors runs a microkernel as wide as it; any other goes
// through a zero-padded copy of its C rows and, unpacked, of its B block (bpad: kNNKc x
// kMicroCols floats, needed only then).
inline void nn_tile_block(const GemmNNView& g, int64_t r0, int64_t r1, int64_t c0, int64_t k0,
                          float* bpad, const float* B, int64_t ldb, bool packed) {
  const int64_t w = std::min<int64_t>(kMicroCols, g.N - c0);
  const bool padded = w % kNativeLanes != 0;
  float cpad[kNNMR * kMicroCols];
  const int64_t kc = std::min(kNNKc, g.K - k0);
  const bool load = g.accumulate || k0 > 0;
  B += k0 * ldb;
  if (padded && !packed) {
    for (int64_t k = 0; k < kc; ++k) {
      std::memcpy(bpad + k * kMicroCols, B + k * ldb, sizeof(float) * w);
      std::memset(bpad + k * kMicroCols + w, 0, sizeof(float) * (kMicroCols - w));
    }
    B = bpad, ldb = kMicroCols;
  }
  for (int64_t r = r0; r < r1; r += kNNMR) {
    const int64_t m = std::min<int64_t>(kNNMR, r1 - r);
    const float* A = g.A + r * g.lda + k0;
    const float* rb = g.row_bias != nullptr && !load ? g.row_bias + r : nullptr;
    const float* cb = g.col_bias != nullptr && !load ? g.col_bias + c0 : nullptr;
    float* C = g.C + r * g.ldc + c0;
    if (!padded) {
      nn_micro_cols(static_cast<int>(w / kNativeLanes), m, A, g.lda, B, ldb, kc, C, g.ldc,
                    load, rb, cb);
      continue;
    }
    for (int64_t i = 0; i < m; ++i) {  // the padded panel: through cpad
      float* ci = cpad + i * kMicroCols;
      for (int64_t c = 0; c < kMicroCols; ++c)
        ci[c] = c >= w ? 0.0f
                : load ? C[i * g.ldc + c]
                : rb != nullptr ? rb[i]
                : cb != nullptr ? cb[c] : 0.0f;
    }
    gemm_micro_rows<kNNMR>(m, A, g.lda, B, ldb, kc, cpad, kMicroCols, true, nullptr, nullptr);
    for (int64_t i = 0; i < m; ++i)
      std::memcpy(C + i * g.ldc, cpad + i * kMicroCols, sizeof(float) * w);
  }
}

// The same tile over all k.
inline void nn_tile(const GemmNNView& g, int64_t r0, int64_t r1, int64_t c0, float* bpad,
                    const float* B, int64_t ldb, bool packed) {
  for (int64_t k0 = 0; k0 < g.K; k0 += kNNKc)
    nn_tile_block(g, r0, r1, c0, k0, bpad, B, ldb, packed);
}

constexpr int64_t kNNRowChunk = 8 * kNNMR;  // rows per tile when tiles run over all panels

// The whole product on the calling thread, tiles of kNNRowChunk rows over every panel (inside
// another kernel's parallel region: csrc/common/lnll.h). bpad as nn_tile_block's: nullptr
// when N is whole native vectors.
inline void gemm_nn_serial(const GemmNNView& g, float* bpad) {
  for (int64_t r0 = 0; r0 < g.R; r0 += kNNRowChunk)
    for (int64_t c0 = 0; c0 < g.N; c0 += kMicroCols)
      nn_tile(g, r0, std::min(g.R, r0 + kNNRowChunk), c0, bpad, g.B + c0, g.ldb, false);
}

constexpr int64_t kNNPackRows = 1024;  // rows from which B is packed (gemm_nn_core)

// Panel p of B (columns [p * kMicroCols, +kMicroCols)) as K contiguous rows of kMicroCols
// floats, zero past column N.
inline void pack_panel(const GemmNNView& g, int64_t p, float* out) {
  const int64_t c0 = p * kMicroCols, w = std::min<int64_t>(kMicroCols, g.N - c0);
  for (int64_t k = 0; k < g.K; ++k) {
    std::memcpy(out + k * kMicroCols, g.B + k * g.ldb + c0, sizeof(float) * w);
    if (w < kMicroCols)
      std::memset(out + k * kMicroCols + w, 0, sizeof(float) * (kMicroCols - w));
  }
}

inline void gemm_nn_core(const GemmNNView& g, int num_threads) {
  if (g.R <= 0 || g.N <= 0) return;
  const int64_t panels = (g.N + kMicroCols - 1) / kMicroCols;
  // Many rows (the forward's 1,720 weight rows, the weight gradient's 1,720 output rows):
  // tiles of kNNRowChunk rows over every panel, so C is written row after row. Few rows
  // (the input gradient's 64, B the 1,720 x 1,720 weight): each thread a contiguous range
  // of panels with the k blocks outer, so a block of B's rows serves all the thread's panels
  // while its pages are fresh; a tile per panel walks every row of B once per panel (faster
  // on the AVX2 path's 16-column panels, the same on AVX-512, in a throwaway harness).
  const bool by_rows = g.R >= 2 * kNNRowChunk * std::max(num_threads, 1);
  // Thousands of rows (scoring's 4,096 per batch): B is first copied into contiguous
  // kMicroCols-wide panels (K x kMicroCols each, the last zero-padded), one pass over B
  // against R / kNNRowChunk passes of the tiles. Unpacked, each step of k reads B's next row
  // ldb floats on, a new page every step at the paper's 1,720 columns. The scoring product
  // 4,096 x 1,720 x 1,720 ran at 156 GFLOP/s unpacked (commit a269260) and 181 packed (MKL:
  // 225 and 201 in those runs), `python benchmarks/micro.py highway` on a 2-core Xeon AVX-512
  // instance. The sums are the same, so the same bits.
  std::unique_ptr<float[]> pack;
  float* packed = nullptr;
  if (by_rows && g.R >= kNNPackRows && g.ldb != kMicroCols) {  // (else B is one panel)
    pack.reset(new float[panels * g.K * kMicroCols]);
    packed = pack.get();
  }
#pragma omp parallel num_threads(num_threads)
  {
    float* bpad = nullptr;
    std::unique_ptr<float[]> pad;
    if (g.N % kNativeLanes != 0 && packed == nullptr) {  // a padded last panel, unpacked
      pad.reset(new float[kNNKc * kMicroCols]);
      bpad = pad.get();
    }
    if (packed != nullptr) {
#pragma omp for schedule(static)
      for (int64_t p = 0; p < panels; ++p) pack_panel(g, p, packed + p * g.K * kMicroCols);
      // (the loop's implicit barrier: every panel is packed before any tile reads one)
    }
    if (by_rows) {
#pragma omp for schedule(static)
      for (int64_t t = 0; t < (g.R + kNNRowChunk - 1) / kNNRowChunk; ++t) {
        const int64_t r0 = t * kNNRowChunk, r1 = std::min(g.R, r0 + kNNRowChunk);
        for (int64_t p = 0; p < panels; ++p) {
          const float* B = packed != nullptr ? packed + p * g.K * kMicroCols
                                             : g.B + p * kMicroCols;
          nn_tile(g, r0, r1, p * kMicroCols, bpad, B, packed != nullptr ? kMicroCols : g.ldb,
                  packed != nullptr);
        }
      }
    } else {
      int64_t p0, p1;
      this_thread_share(panels, &p0, &p1);
      for (int64_t k0 = 0; k0 < g.K; k0 += kNNKc)
        for (int64_t p = p0; p < p1; ++p)
          nn_tile_block(g, 0, g.R, p * kMicroCols, k0, bpad, g.B + p * kMicroCols, g.ldb,
                        false);
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
