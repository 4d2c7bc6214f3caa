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

// C[r, :kMicroCols] = bias + A[r, :K] . panel[:, :kMicroCols] for r < MR; the panel's rows
// are kPanel floats apart. Every output is bias + sum_k a_k w_k in k order, one FMA per term,
// on every path: the blocking changes which register holds a sum, never its rounding.
template <int MR>
inline void gemm_micro(const float* A, int64_t lda, const float* panel, const float* bias,
                       int64_t K, float* C, int64_t ldc) {
  vn acc[MR][kNV];
#pragma GCC unroll 4
  for (int q = 0; q < kNV; ++q) {
    const vn b = nload(bias + kNativeLanes * q);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][q] = b;
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const float* wk = panel + k * kPanel;
    vn w[kNV];
#pragma GCC unroll 4
    for (int q = 0; q < kNV; ++q) w[q] = nload(wk + kNativeLanes * q);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const vn a = nset1(A[r * lda + k]);
#pragma GCC unroll 4
      for (int q = 0; q < kNV; ++q) acc[r][q] = nfma(a, w[q], acc[r][q]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < kNV; ++q) nstore(C + r * ldc + kNativeLanes * q, acc[r][q]);
  }
}

// The last rows % kMR rows of a row range.
template <int M>
inline void gemm_tail(int64_t m, const float* A, int64_t lda, const float* panel,
                      const float* bias, int64_t K, float* C, int64_t ldc) {
  if constexpr (M > 0) {
    if (m == M) return gemm_micro<M>(A, lda, panel, bias, K, C, ldc);
    gemm_tail<M - 1>(m, A, lda, panel, bias, K, C, ldc);
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
        gemm_micro<kMR>(A + r * lda, lda, p, bq, K, cq + r * ldc, ldc);
      gemm_tail<kMR - 1>(rows - r, A + r * lda, lda, p, bq, K, cq + r * ldc, ldc);
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
