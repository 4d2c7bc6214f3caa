// Small GEMMs of the fused kernels: C (rows x 64*panels) = bias + A (rows x K) * W^T, with W
// packed once per call into panels of 64 output columns (panel q: K x 64 floats, row k
// holding W[q*64 + c][k] for c = 0..63). A register-blocked microkernel, shaped per ISA
// (below), keeps its accumulators in registers across the k loop.
#pragma once

#include "isa.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "vec.h"

namespace seqgan {
namespace SEQGAN_ISA {

constexpr int kPanel = 64;  // output columns per packed panel (4 x v16)

#ifndef SEQGAN_AVX2_MR
#define SEQGAN_AVX2_MR 4  // rows of the AVX2 microkernel: 4, 5 and 6 measured equal; 4 divides blocks
#endif

// Packs W (rows indexed by `src_row[col]`, -1 for zero padding; K columns, row stride ldw)
// into panels: out has ceil(cols/64) * Kpad * 64 floats; k in [K, Kpad) is zero.
inline void pack_panels(const float* W, int64_t ldw, int64_t K, int64_t Kpad,
                        const std::vector<int64_t>& src_row, std::vector<float>& out) {
  const int64_t cols = static_cast<int64_t>(src_row.size());
  const int64_t panels = (cols + kPanel - 1) / kPanel;
  out.assign(static_cast<size_t>(panels * Kpad * kPanel), 0.0f);
  for (int64_t col = 0; col < cols; ++col) {
    const int64_t src = src_row[col];
    if (src < 0) continue;
    float* dst = out.data() + (col / kPanel) * Kpad * kPanel + (col % kPanel);
    for (int64_t k = 0; k < K; ++k) dst[k * kPanel] = W[src * ldw + k];
  }
}

// Register blocking per path (as BLIS and oneDNN choose MR x NR per target): MR rows x NV
// native vectors of columns, MR * NV accumulators plus NV weight vectors and one broadcast
// must fit the register file without spilling.
//   avx512: 4 x (4 x 16) — 16 of 32 zmm;  avx2: 4 x (2 x 8) — 8 + 3 of 16 ymm;
//   baseline: 4 x (2 x 4) — 8 + 3 of 16 xmm.
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
constexpr int kMR = 4, kNV = 4;
#elif SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX2
constexpr int kMR = SEQGAN_AVX2_MR, kNV = 2;
#else
constexpr int kMR = 4, kNV = 2;
#endif
constexpr int kMicroCols = kNV * kNativeLanes;  // columns of one microkernel call
static_assert(kPanel % kMicroCols == 0, "a panel must split into whole microkernel columns");

// C[r, :NV native vectors] (r < MR) = init + A[r, :K] . B[:K, :NV vectors], B's rows ldb
// floats apart (kPanel in a packed panel; a matrix row stride in gemm_nn.h); init = C (load),
// the column bias cbias[:], the row bias rbias[r], or 0. Every output is init + sum_k a_k w_k
// in k order, one FMA per term, on every path: the blocking changes which register holds a
// sum, never its rounding. NV < kNV: a narrower microkernel for a panel's tail.
template <int MR, int NV = kNV>
inline void gemm_micro(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K,
                       float* C, int64_t ldc, bool load, const float* rbias,
                       const float* cbias) {
  vn acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const vn init = nset1(rbias != nullptr ? rbias[r] : 0.0f);
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q)
      acc[r][q] = load ? nload(C + r * ldc + kNativeLanes * q)
                       : cbias != nullptr ? nload(cbias + kNativeLanes * q) : init;
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = B + k * ldb;
    vn w[NV];
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) w[q] = nload(bk + kNativeLanes * q);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const vn a = nset1(A[r * lda + k]);
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) acc[r][q] = nfma(a, w[q], acc[r][q]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) nstore(C + r * ldc + kNativeLanes * q, acc[r][q]);
  }
}

// gemm_micro for the last m <= M rows of a row range (m chosen at run time).
template <int M, int NV = kNV>
inline void gemm_micro_rows(int64_t m, const float* A, int64_t lda, const float* B,
                            int64_t ldb, int64_t K, float* C, int64_t ldc, bool load,
                            const float* rbias, const float* cbias) {
  if constexpr (M > 0) {
    if (m == M) return gemm_micro<M, NV>(A, lda, B, ldb, K, C, ldc, load, rbias, cbias);
    gemm_micro_rows<M - 1, NV>(m, A, lda, B, ldb, K, C, ldc, load, rbias, cbias);
  }
}

// C[r, 0 .. 64*npanels) = bias + A[r, :K] . panels, for r < rows. Panel-outer so that one
// panel (K x 64 floats) stays in L1 while every row block uses it.
inline void gemm_panels(const float* A, int64_t lda, int64_t rows, const float* panels,
                        int64_t npanels, const float* bias, int64_t K, float* C,
                        int64_t ldc) {
  for (int64_t q = 0; q < npanels; ++q) {
    for (int c0 = 0; c0 < kPanel; c0 += kMicroCols) {
      const float* p = panels + q * K * kPanel + c0;
      const float* bq = bias + q * kPanel + c0;
      float* cq = C + q * kPanel + c0;
      int64_t r = 0;
      for (; r + kMR <= rows; r += kMR)
        gemm_micro<kMR>(A + r * lda, lda, p, kPanel, K, cq + r * ldc, ldc, false, nullptr, bq);
      gemm_micro_rows<kMR - 1>(rows - r, A + r * lda, lda, p, kPanel, K, cq + r * ldc, ldc,
                               false, nullptr, bq);
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
