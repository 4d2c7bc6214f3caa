// Small GEMMs of the fused kernels: C (rows x 64*panels) = bias + A (rows x K) * W^T, with W
// packed once per call into panels of 64 output columns (panel q: K x 64 floats, row k
// holding W[q*64 + c][k] for c = 0..63). A 4-row x 64-column microkernel keeps its 16
// accumulators (v16) in registers; each k costs 4 panel loads, 4 broadcasts and 16 FMAs.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "vec.h"

namespace seqgan {

constexpr int kPanel = 64;  // output columns per packed panel (4 x v16)

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

template <int MR>
inline void gemm_micro(const float* A, int64_t lda, const float* panel, const float* bias,
                       int64_t K, float* C, int64_t ldc) {
  v16 acc[MR][4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const v16 b = vload(bias + 16 * q);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) acc[r][q] = b;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* wk = panel + k * kPanel;
    const v16 w0 = vload(wk), w1 = vload(wk + 16), w2 = vload(wk + 32), w3 = vload(wk + 48);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const v16 a = vset1(A[r * lda + k]);
      acc[r][0] = vfma(a, w0, acc[r][0]);
      acc[r][1] = vfma(a, w1, acc[r][1]);
      acc[r][2] = vfma(a, w2, acc[r][2]);
      acc[r][3] = vfma(a, w3, acc[r][3]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) vstore(C + r * ldc + 16 * q, acc[r][q]);
  }
}

// C[r, 0 .. 64*npanels) = bias + A[r, :K] . panels, for r < rows. Panel-outer so that one
// panel (K x 64 floats) stays in L1 while every row block uses it.
inline void gemm_panels(const float* A, int64_t lda, int64_t rows, const float* panels,
                        int64_t npanels, const float* bias, int64_t K, float* C,
                        int64_t ldc) {
  for (int64_t q = 0; q < npanels; ++q) {
    const float* p = panels + q * K * kPanel;
    const float* bq = bias + q * kPanel;
    float* cq = C + q * kPanel;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) gemm_micro<4>(A + r * lda, lda, p, bq, K, cq + r * ldc, ldc);
    switch (rows - r) {
      case 3: gemm_micro<3>(A + r * lda, lda, p, bq, K, cq + r * ldc, ldc); break;
      case 2: gemm_micro<2>(A + r * lda, lda, p, bq, K, cq + r * ldc, ldc); break;
      case 1: gemm_micro<1>(A + r * lda, lda, p, bq, K, cq + r * ldc, ldc); break;
      default: break;
    }
  }
}

}  // namespace seqgan
