// The discriminator's head for scoring (op `highway_logits`; torch-free): for pooled
// features x (M x F),
//   y = t * relu(x W_h^T + b_h) + (1 - t) * x,  t = sigmoid(x W_t^T + b_t),
//   logits (M x C) = y W_o^T + b_o,
// as models.Highway followed by the output layer in eval mode. ops/score.py runs it on the
// thousands of completions a reward computation scores. The two F x F products are
// gemm_nn.h's tiles (B packed from kNNPackRows rows, the same order of k per output, so
// the same bits as op gemm_nn), one kMicroCols-wide panel of both for a chunk of
// kHeadRows rows at a time into a per-thread scratch that the epilogue folds into the
// chunk's logit sums while it is in cache: neither product nor y is materialised for the
// batch (as torch ops they were four M x F temporaries). With 48-row chunks (gemm_nn's) the
// fusion was time-neutral at the paper size (the products ~0.58 s of a 19,456-row `score`
// either way) and took the call's peak memory from 588 to 372 MiB (`seqgan-fast bench --op
// score`, Zen 5 instance); the head's own larger chunks (kHeadRows) then made it faster.
//
// Determinism: a row's logit j is b_o[j] + l_0 + ... + l_15, lane l_q the FMA sum of y[c] *
// W_o[j, c] over columns c = q mod 16 in order, on the thread that owns the row's chunk
// (native vectors map onto the 16 lanes by column), with the products' bits those of
// gemm_nn: the same bits at every thread count and on the AVX-512 and AVX2 paths.
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

namespace seqgan {
namespace SEQGAN_ISA {

// y for one native vector of columns: z_h, z_t the products (bias included), x the input.
// relu as `z < 0 ? 0 : z` so that a NaN product stays NaN (nmax would turn it into 0).
inline vn highway_y(vn zh, vn zt, vn x) {
  const vn zero = nset1(0.0f), one = nset1(1.0f);
  const vn r = zh < zero ? zero : zh;
  const vn t = nsigmoid(zt);
  return nfma(t, r, (one - t) * x);
}

// Rows per chunk, at most: each packed panel of the weights, streamed from L3 (2 x 11.9 MB
// at the paper's F = 1,720), serves this many rows from L2. The head of 19,456 rows of F =
// 1,720 at 2 threads ran at 366 / 398-403 / 356-372 GFLOP/s with 48 / 192 / 288-row chunks
// on the AVX-512 path, 178 / 199-200 / 176-186 on AVX2 (`python benchmarks/micro.py head`,
// rebuilt for each kHeadRows; Zen 5 instance, two interleaved rounds); 144 was as good as
// 192, 24 worse than 48.
constexpr int64_t kHeadRows = 32 * kNNMR;

// The chunk: kHeadRows rows, or fewer (whole microkernel row blocks) so that every thread has
// one when M is small. Chunking decides only which thread computes a row, not its bits.
inline int64_t head_chunk_rows(int64_t M, int num_threads) {
  const int64_t nt = std::max(num_threads, 1), per_thread = (M + nt - 1) / nt;
  return std::min(kHeadRows, (per_thread + kNNMR - 1) / kNNMR * kNNMR);
}

inline void highway_head_core(const HighwayHeadView& v, int num_threads) {
  if (v.M <= 0) return;
  const int64_t F = v.F, C = v.C;
  const int64_t panels = (F + kMicroCols - 1) / kMicroCols;
  const int64_t full = F / kNativeLanes * kNativeLanes;  // columns of whole native vectors
  const GemmNNView gh{v.x, F, v.wh_t, F, nullptr, kMicroCols, v.M, F, F, nullptr, false, v.bh};
  const GemmNNView gt{v.x, F, v.wt_t, F, nullptr, kMicroCols, v.M, F, F, nullptr, false, v.bt};
  std::unique_ptr<float[]> pack;  // both weights' panels, W_h's first
  if (v.M >= kNNPackRows) pack.reset(new float[2 * panels * F * kMicroCols]);
  float* packed = pack.get();
  const int64_t rows = head_chunk_rows(v.M, num_threads);
  const int64_t chunks = (v.M + rows - 1) / rows;
#pragma omp parallel num_threads(num_threads)
  {
    // one panel's products for the chunk's rows (kMicroCols columns each), the logits' lane
    // partial sums, and W_o's last F - full columns zero-padded to a native vector
    std::vector<float> zh(rows * kMicroCols), zt(rows * kMicroCols);
    std::vector<float> acc(rows * C * kLanes);
    std::vector<float> wo_tail(C * kNativeLanes, 0.0f);
    for (int64_t j = 0; j < C; ++j)
      for (int64_t c = full; c < F; ++c) wo_tail[j * kNativeLanes + c - full] = v.wo[j * F + c];
    std::unique_ptr<float[]> pad;  // nn_tile_block's padded-panel copy, unpacked only
    if (packed == nullptr && F % kNativeLanes != 0) pad.reset(new float[kNNKc * kMicroCols]);
    if (packed != nullptr) {
#pragma omp for schedule(static)
      for (int64_t p = 0; p < 2 * panels; ++p)
        pack_panel(p < panels ? gh : gt, p % panels, packed + p * F * kMicroCols);
      // (the implicit barrier: every panel is packed before any tile reads one)
    }
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t r0 = chunk * rows, m = std::min(rows, v.M - r0);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t c0 = p * kMicroCols, c1 = std::min(F, c0 + kMicroCols);
        for (int w = 0; w < 2; ++w) {  // the panel's columns of both products
          GemmNNView g = w == 0 ? gh : gt;
          // the panel as a product of its own: N its width, C the scratch, bias from c0
          g.A = v.x + r0 * F, g.R = m, g.N = c1 - c0, g.col_bias += c0;
          g.C = w == 0 ? zh.data() : zt.data();
          const float* B = packed != nullptr ? packed + (w * panels + p) * F * kMicroCols
                                             : g.B + c0;
          nn_tile(g, 0, m, 0, pad.get(), B, packed != nullptr ? kMicroCols : g.ldb,
                  packed != nullptr);
        }
        for (int64_t i = 0; i < m; ++i) {
          const float* xi = v.x + (r0 + i) * F + c0;
          const float* hi = zh.data() + i * kMicroCols;
          const float* ti = zt.data() + i * kMicroCols;
          float* ai = acc.data() + i * C * kLanes;
          // y's native vector of columns [c, +kNativeLanes) times W_o's (wo_c: its row 0,
          // rows ldw apart) into lanes c % 16 on of the row's 16-lane sums
          auto column = [&](int64_t c, vn y, const float* wo_c, int64_t ldw) {
            float* a = ai + c % kLanes;
            for (int64_t j = 0; j < C; ++j)
              nstore(a + j * kLanes, nfma(y, nload(wo_c + j * ldw), nload(a + j * kLanes)));
          };
          const int64_t cf = std::min(c1, full) - c0;  // the panel's whole vectors
          for (int64_t c = 0; c < cf; c += kNativeLanes)
            column(c0 + c, highway_y(nload(hi + c), nload(ti + c), nload(xi + c)),
                   v.wo + c0 + c, F);
          if (c0 + cf < c1) {  // the tail: x and W_o zero past F (y * 0 adds nothing)
            float h[kNativeLanes] = {}, t[kNativeLanes] = {}, x[kNativeLanes] = {};
            for (int64_t c = cf; c < c1 - c0; ++c)
              h[c - cf] = hi[c], t[c - cf] = ti[c], x[c - cf] = xi[c];
            column(c0 + cf, highway_y(nload(h), nload(t), nload(x)), wo_tail.data(),
                   kNativeLanes);
          }
        }
      }
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < C; ++j) {
          const float* aij = acc.data() + (i * C + j) * kLanes;
          float s = v.bo[j];
          for (int l = 0; l < kLanes; ++l) s += aij[l];
          v.logits[(r0 + i) * C + j] = s;
        }
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
