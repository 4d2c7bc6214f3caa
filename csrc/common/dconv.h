// The discriminator's convolution + ReLU + max-pool over time for training (op
// `conv_pool_forward`; torch-free): the forward of the sparse backward in dpool.h.
//
// For width k the window at p of row b is the k*E floats e[b, p:p+k, :], contiguous in the
// embedded rows (B, T, E), and the windows at one p of all rows are a matrix with row stride
// T*E. So the convolution at p is one unpacked GEMM (gemm_nn.h) against the weight transposed
// to (k*E) x F ([o][e] rows, filters padded with zeros to whole native vectors, built here
// once per call; a group's last panel runs a microkernel only as wide as it): 64 rows of windows x 64 filters per tile, the tile's weight panel
// staying in L2 while the tile walks p = 0 .. T-k. Each p's results are folded into the
// tile's running maximum and argmax as they leave the microkernel, so no (rows x filters x
// windows) tensor is ever written; the outputs are relu(max) and the first maximum's window
// start, in the concatenated (B, sum F_g) layout.
//
// Every window value is bias + sum over (o, e) in that order, one FMA per term (gemm_nn.h):
// the same bits at every thread count and on the AVX-512 and AVX2 paths. oneDNN's
// convolution (the module) sums in another order: the two agree to float rounding. A NaN
// window is the maximum (the first one), as torch's max, so a non-finite discriminator is
// never hidden by the pooling.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "api.h"
#include "gemm_nn.h"
#include "vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

// Folds window p's values c (m rows x kMicroCols, row stride kMicroCols) into the running
// maximum mx and its window am (same layout): greater, or NaN, and never after a NaN.
inline void fold_window(const float* c, int64_t m, int64_t cols, int32_t p, float* mx,
                        int32_t* am) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = r * kMicroCols; i < r * kMicroCols + cols; ++i) {
      const bool take = !(c[i] <= mx[i]) && mx[i] == mx[i];
      mx[i] = take ? c[i] : mx[i];
      am[i] = take ? p : am[i];
    }
}

constexpr int64_t kTransposeRows = 16;  // filters per block of the weight transposition

inline void conv_pool_forward_core(const ConvPoolFwdView& v, int num_threads) {
  const int64_t G = v.groups, B = v.B, T = v.T, E = v.E;
  std::vector<int64_t> fpad(G), foff(G + 1, 0), woff(G + 1, 0), boff(G + 1, 0), tiles(G + 1, 0),
      xblocks(G + 1, 0);
  const int64_t rblocks = (B + kNNMR - 1) / kNNMR;
  for (int64_t g = 0; g < G; ++g) {
    fpad[g] = (v.filters[g] + kNativeLanes - 1) / kNativeLanes * kNativeLanes;
    foff[g + 1] = foff[g] + v.filters[g];
    woff[g + 1] = woff[g] + v.width[g] * E * fpad[g];
    boff[g + 1] = boff[g] + fpad[g];
    tiles[g + 1] = tiles[g] + (fpad[g] + kMicroCols - 1) / kMicroCols * rblocks;
    xblocks[g + 1] = xblocks[g] + (v.filters[g] + kTransposeRows - 1) / kTransposeRows;
  }
  const int64_t F = foff[G];
  std::unique_ptr<float[]> wt(new float[woff[G]]), bias(new float[boff[G]]);
#pragma omp parallel num_threads(num_threads)
  {
    // 1. transposed, padded weights: wt_g[(o*E + e) * fpad + f] = W_g[f][e][o], in blocks of
    // kTransposeRows filters (their rows of W_g, k*E floats each, stay in L1): the block's
    // columns of wt_g are written row after row, one cache line each
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < xblocks[G]; ++t) {
      const int64_t g = std::upper_bound(xblocks.begin(), xblocks.end(), t) - xblocks.begin() - 1;
      const int64_t k = v.width[g], Fg = v.filters[g], Fp = fpad[g];
      const int64_t f0 = (t - xblocks[g]) * kTransposeRows;
      const int64_t f1 = std::min(Fg, f0 + kTransposeRows);
      float* w = wt.get() + woff[g];
      const float* src = v.weight[g];
      for (int64_t o = 0; o < k; ++o)
        for (int64_t e = 0; e < E; ++e) {
          float* d = w + (o * E + e) * Fp;
          for (int64_t f = f0; f < f1; ++f) d[f] = src[(f * E + e) * k + o];
        }
      if (f1 == Fg) {  // the group's last block: its padding columns and bias
        for (int64_t row = 0; row < k * E; ++row) std::fill(w + row * Fp + Fg, w + row * Fp + Fp, 0.0f);
        float* bg = bias.get() + boff[g];
        std::memcpy(bg, v.bias[g], sizeof(float) * Fg);
        std::fill(bg + Fg, bg + Fp, 0.0f);
      }
    }
    // 2. tiles of (width, filter panel, block of rows), each over all its windows
    float c[kNNMR * kMicroCols], mx[kNNMR * kMicroCols];
    int32_t am[kNNMR * kMicroCols];
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles[G]; ++t) {
      const int64_t g = std::upper_bound(tiles.begin(), tiles.end(), t) - tiles.begin() - 1;
      const int64_t panel = (t - tiles[g]) / rblocks, rb = (t - tiles[g]) % rblocks;
      const int64_t k = v.width[g], Fp = fpad[g], c0 = panel * kMicroCols;
      const int64_t r0 = rb * kNNMR, m = std::min<int64_t>(kNNMR, B - r0);
      const float* w = wt.get() + woff[g] + c0;
      const float* bg = bias.get() + boff[g] + c0;
      const int64_t cols = std::min<int64_t>(kMicroCols, Fp - c0);  // the last panel: narrower
      const int nv = static_cast<int>(cols / kNativeLanes);
      for (int64_t p = 0; p + k <= T; ++p) {
        const float* A = v.emb + (r0 * T + p) * E;
        float* out = p == 0 ? mx : c;
        nn_micro_cols(nv, m, A, T * E, w, Fp, k * E, out, kMicroCols, false, nullptr, bg);
        if (p == 0)
          std::fill(am, am + m * kMicroCols, 0);
        else
          fold_window(c, m, cols, static_cast<int32_t>(p), mx, am);
      }
      const int64_t n = std::min<int64_t>(kMicroCols, v.filters[g] - c0);
      for (int64_t i = 0; i < m; ++i) {
        float* val = v.values + (r0 + i) * F + foff[g] + c0;
        int64_t* arg = v.argmax + (r0 + i) * F + foff[g] + c0;
        for (int64_t j = 0; j < n; ++j) {
          const float x = mx[i * kMicroCols + j];
          val[j] = x > 0.0f || x != x ? x : 0.0f;
          arg[j] = am[i * kMicroCols + j];
        }
      }
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
