// The generator's output layer, log-softmax and negative log-likelihood of one target per
// row, fused (op `linear_nll`; torch-free):
//   z_r = W h_r + b (V logits),  nll_r = logsumexp(z_r) - z_r[y_r],
// and, with row weights w, the gradients of L = sum_r w_r nll_r:
//   dz_r = w_r (softmax(z_r) - onehot(y_r)),  dh_r = W^T dz_r,  dW = sum_r dz_r h_r^T,
//   db = sum_r dz_r.
// A teacher-forced MLE step of the paper's generator (1,280 rows, V = 5,000, H = 32) through
// torch writes the 25.6 MB logits, reads them back for the log-softmax, writes the log-probs,
// the gradient, and reads that for three GEMMs and the bias sum. Here the rows go in chunks
// of kNLLRows; a chunk's logits (V x kNLLRows, transposed: a row per vocabulary entry) live
// in the cores' L2, split into fixed blocks of kNLLBlock vocabulary rows, and each block's
// gradient products run while its logits are still there. The logits never reach memory.
//
// Per chunk, threads take the blocks (a static schedule: the same thread a block in every
// pass):
//   1. Z_blk = b_blk + W_blk . H^T; per column the block's max m and sum of exp(z - m);
//   2. per row: lse = M + log(sum_blk s_blk exp(m_blk - M)) over blocks in order (M their
//      max); nll = lse - z[y];
//   3. (gradients) P_blk = softmax - onehot in place;
//      [dW | db]_blk += P_blk . [w_r h_r | w_r] (one product: the bias is a column of ones
//      scaled by w), dH^T partial_blk = W_blk^T . P_blk;
//   4. dh_r = w_r * sum_blk partial_blk[:, r], blocks in order.
// Every sum has a fixed order that does not depend on the thread count (k order inside the
// products, blocks in order between them, chunks in row order for dW and db), so the outputs
// are the same bits at every thread count (the products are gemm_nn_serial's, every N whole
// native vectors, so no padded panels), and on the AVX-512 and AVX2 paths (both FMA). The
// order differs from torch's (one max and one sum per row, GEMMs of its own blocking): the
// two agree to float rounding (tests/test_linear_nll.py). A NaN in h, W or b reaches the
// nll of its rows (and their gradients) as in torch.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "api.h"
#include "gemm_nn.h"
#include "vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

constexpr int64_t kNLLRows = 64;    // rows per chunk: a multiple of every path's kMicroCols
constexpr int64_t kNLLBlock = 256;  // vocabulary rows per block
static_assert(kNLLRows % kMicroCols == 0, "a chunk must be whole microkernel panels");

// max and exp that keep a NaN (nmax keeps only its second operand's; nexp clamps a NaN to
// -150, giving 0), so that a NaN logit makes its row's nll and gradients NaN, as in torch.
inline vn nan_max(vn m, vn z) { return (m != m) | (z <= m) ? m : z; }
inline vn nan_exp(vn x) { return x != x ? x : nexp(x); }

inline void linear_nll_core(const LinearNLLView& v, int num_threads) {
  const int64_t N = v.N, H = v.H, V = v.V, R = kNLLRows;
  const bool grad = v.row_weight != nullptr;
  const int64_t nblk = (V + kNLLBlock - 1) / kNLLBlock;
  const int64_t Hp = (H + kNativeLanes) / kNativeLanes * kNativeLanes;  // [dW | db] columns, padded
  std::unique_ptr<float[]> z(new float[V * R]), ht(new float[H * R]);
  std::unique_ptr<float[]> pm(new float[nblk * R]), ps(new float[nblk * R]);
  std::unique_ptr<float[]> lse(new float[R]);
  std::unique_ptr<float[]> haug, wt, acc, ghp;
  if (grad) {
    haug.reset(new float[R * Hp]);
    wt.reset(new float[H * V]);
    acc.reset(new float[V * Hp]);
    ghp.reset(new float[nblk * H * R]);
  }
  const float kNegInf = -std::numeric_limits<float>::infinity();

#pragma omp parallel num_threads(num_threads)
  {
    if (grad) {
#pragma omp for schedule(static)
      for (int64_t r = 0; r < V; ++r) {
        std::fill(acc.get() + r * Hp, acc.get() + (r + 1) * Hp, 0.0f);
        for (int64_t k = 0; k < H; ++k) wt[k * V + r] = v.weight[r * H + k];
      }
    }
    for (int64_t c0 = 0; c0 < N; c0 += R) {
      const int64_t n = std::min(R, N - c0);
#pragma omp single
      {  // the chunk's features, transposed (and weighted, with the bias column, for dW)
        for (int64_t k = 0; k < H; ++k)
          for (int64_t r = 0; r < R; ++r) ht[k * R + r] = r < n ? v.h[(c0 + r) * H + k] : 0.0f;
        if (grad) {
          for (int64_t r = 0; r < R; ++r) {
            float* a = haug.get() + r * Hp;
            const float w = r < n ? v.row_weight[c0 + r] : 0.0f;
            for (int64_t k = 0; k < Hp; ++k)
              a[k] = k < H ? (r < n ? w * v.h[(c0 + r) * H + k] : 0.0f) : k == H ? w : 0.0f;
          }
        }
      }
      // 1. logits and each block's max and sum of exponentials, per column
#pragma omp for schedule(static)
      for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t v0 = blk * kNLLBlock, vb = std::min(kNLLBlock, V - v0);
        float* zb = z.get() + v0 * R;
        gemm_nn_serial({v.weight + v0 * H, H, ht.get(), R, zb, R, vb, H, R, v.bias + v0, false},
                       nullptr);
        for (int64_t q = 0; q < R; q += kNativeLanes) {
          vn m = nset1(kNegInf);
          for (int64_t i = 0; i < vb; ++i) m = nan_max(m, nload(zb + i * R + q));
          vn s = nset1(0.0f);
          for (int64_t i = 0; i < vb; ++i) s = s + nan_exp(nload(zb + i * R + q) - m);
          nstore(pm.get() + blk * R + q, m);
          nstore(ps.get() + blk * R + q, s);
        }
      }
      // 2. log-sum-exp per row, blocks in order; the rows' nll
#pragma omp single
      {
        for (int64_t q = 0; q < R; q += kNativeLanes) {
          vn m = nset1(kNegInf);
          for (int64_t blk = 0; blk < nblk; ++blk) m = nan_max(m, nload(pm.get() + blk * R + q));
          vn s = nset1(0.0f);
          for (int64_t blk = 0; blk < nblk; ++blk)
            s = nfma(nload(ps.get() + blk * R + q), nan_exp(nload(pm.get() + blk * R + q) - m), s);
          nstore(lse.get() + q, m + nlog(s));
        }
        for (int64_t r = 0; r < n; ++r)
          v.nll[c0 + r] = lse[r] - z[v.target[c0 + r] * R + r];
      }
      if (!grad) continue;
      // 3. P = softmax - onehot per block, then its two products
#pragma omp for schedule(static)
      for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t v0 = blk * kNLLBlock, vb = std::min(kNLLBlock, V - v0);
        float* zb = z.get() + v0 * R;
        for (int64_t i = 0; i < vb; ++i)
          for (int64_t q = 0; q < R; q += kNativeLanes)
            nstore(zb + i * R + q, nan_exp(nload(zb + i * R + q) - nload(lse.get() + q)));
        for (int64_t r = 0; r < n; ++r) {
          const int64_t y = v.target[c0 + r];
          if (y >= v0 && y < v0 + vb) zb[(y - v0) * R + r] -= 1.0f;
        }
        gemm_nn_serial({zb, R, haug.get(), Hp, acc.get() + v0 * Hp, Hp, vb, R, Hp, nullptr, true},
                       nullptr);
        gemm_nn_serial({wt.get() + v0, V, zb, R, ghp.get() + blk * H * R, R, H, vb, R, nullptr,
                        false},
                       nullptr);
      }
      // 4. input gradients: the blocks' partial sums in order, scaled by the row weight
#pragma omp for schedule(static)
      for (int64_t r = 0; r < n; ++r) {
        const float w = v.row_weight[c0 + r];
        for (int64_t k = 0; k < H; ++k) {
          float s = ghp[k * R + r];
          for (int64_t blk = 1; blk < nblk; ++blk) s += ghp[(blk * H + k) * R + r];
          v.grad_h[(c0 + r) * H + k] = w * s;
        }
      }
    }
    if (grad) {
#pragma omp for schedule(static)
      for (int64_t r = 0; r < V; ++r) {
        std::memcpy(v.grad_weight + r * H, acc.get() + r * Hp, sizeof(float) * H);
        v.grad_bias[r] = acc[r * Hp + H];
      }
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
