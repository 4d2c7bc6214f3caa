// Backward of the discriminator's convolution + ReLU + max-pool over time (op
// `conv_pool_backward`; torch-free), the sparse form of the dense convolution backward.
//
// Forward (seqgan_fast/ops/dpool.py): pooled[b, j] = relu(max_p y_j(b, p)) with y_j the
// convolution of filter j (width k, weight W_j (E, k) in Conv1d layout [e][o]) over the
// embedded sequence e[b] (T, E) and p* = argmax_p. The gradient reaches one window per
// (row, filter): with g[b, j] = dL/dpooled[b, j] * [max > 0] (masked by the caller),
//   dW_j[e][o]        = sum_b g[b, j] * e[b, p*[b, j] + o, e]
//   de[b, p* + o, e] += g[b, j] * W_j[e][o]
// i.e. one axpy of k*E floats per (row, filter) each way, against (T - k + 1) windows of
// k*E*F_g multiply-adds per row for the dense form: at the paper's 1,720 filters and T = 20
// about 1/10 of the convolution backward's FLOPs. The window e[b, p*:p*+k, :] is contiguous
// (rows of E floats), so both axpys run over contiguous memory once W_j is transposed to
// [o][e] (done here, once per call).
//
// Every term is added as a * x + y (nfma: one rounding where the path has FMA, two on the
// baseline) in a fixed order (rows b ascending for dW; for de width groups, then window
// starts, then filters, ascending), so the gradients are the same bits at every thread
// count; the ISA paths, and the dense backward (another order), agree with them to float
// rounding.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "api.h"
#include "parallel.h"
#include "vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

// dst[0, n) += sum_i coef[i] * src[i][0, n), added in i order (nfma), kept in registers R
// native vectors at a time so each term costs one load: the same sums as one axpy per term.
template <int R>
inline int64_t weighted_sum_block(const float* coef, const float* const* src, int64_t cnt,
                                  float* dst, int64_t c0, int64_t n) {
  for (; c0 + R * kNativeLanes <= n; c0 += R * kNativeLanes) {
    vn acc[R];
    for (int r = 0; r < R; ++r) acc[r] = nload(dst + c0 + r * kNativeLanes);
    for (int64_t i = 0; i < cnt; ++i) {
      const vn a = nset1(coef[i]);
      const float* x = src[i] + c0;
      for (int r = 0; r < R; ++r) acc[r] = nfma(a, nload(x + r * kNativeLanes), acc[r]);
    }
    for (int r = 0; r < R; ++r) nstore(dst + c0 + r * kNativeLanes, acc[r]);
  }
  return c0;
}

inline void add_weighted_sum(const float* coef, const float* const* src, int64_t cnt, float* dst,
                         int64_t n) {
  int64_t c = weighted_sum_block<8>(coef, src, cnt, dst, 0, n);
  c = weighted_sum_block<4>(coef, src, cnt, dst, c, n);  // tails: independent chains, not one
  c = weighted_sum_block<2>(coef, src, cnt, dst, c, n);
  c = weighted_sum_block<1>(coef, src, cnt, dst, c, n);
  for (; c < n; ++c) {
    float acc = dst[c];
    for (int64_t i = 0; i < cnt; ++i) {
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_BASELINE
      acc = coef[i] * src[i][c] + acc;  // as nfma on this path: two roundings
#else
      acc = __builtin_fmaf(coef[i], src[i][c], acc);
#endif
    }
    dst[c] = acc;
  }
}

inline void conv_pool_backward_core(const ConvPoolGradView& v, int num_threads) {
  const int64_t G = v.groups, B = v.B, T = v.T, E = v.E;
  std::vector<int64_t> foff(G + 1, 0), woff(G + 1, 0);
  int64_t kmax = 0, fmax = 0;
  for (int64_t g = 0; g < G; ++g) {
    foff[g + 1] = foff[g] + v.filters[g];
    woff[g + 1] = woff[g] + v.filters[g] * v.width[g] * E;
    kmax = std::max(kmax, v.width[g]);
    fmax = std::max(fmax, v.filters[g]);
  }
  const int64_t F = foff[G];
  std::unique_ptr<float[]> wt(new float[woff[G]]);  // W_j transposed to [o][e]
  std::vector<int64_t> jgroup(static_cast<size_t>(F));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = foff[g]; j < foff[g + 1]; ++j) jgroup[j] = g;

#pragma omp parallel num_threads(num_threads)
  {
    // 1. transposed weights
#pragma omp for schedule(static)
    for (int64_t j = 0; j < F; ++j) {
      const int64_t g = jgroup[j], k = v.width[g], f = j - foff[g];
      const float* w = v.weight[g] + f * E * k;
      float* t = wt.get() + woff[g] + f * k * E;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t o = 0; o < k; ++o) t[o * E + e] = w[e * k + o];
    }
    // 2. weight gradients: one filter per iteration, its rows' windows in row order
    std::vector<float> acc(static_cast<size_t>(kmax * E)), coef(static_cast<size_t>(B));
    std::vector<const float*> src(static_cast<size_t>(B));
#pragma omp for schedule(dynamic, 8)
    for (int64_t j = 0; j < F; ++j) {
      const int64_t g = jgroup[j], k = v.width[g], f = j - foff[g];
      int64_t cnt = 0;
      float bias_sum = 0.0f;
      for (int64_t b = 0; b < B; ++b) {
        const float gv = v.grad[b * F + j];
        bias_sum += gv;
        if (gv == 0.0f) continue;
        coef[cnt] = gv;
        src[cnt++] = v.emb + (b * T + v.argmax[b * F + j]) * E;
      }
      std::fill(acc.begin(), acc.begin() + k * E, 0.0f);
      v.grad_bias[g][f] = bias_sum;
      add_weighted_sum(coef.data(), src.data(), cnt, acc.data(), k * E);
      float* dw = v.grad_weight[g] + f * E * k;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t o = 0; o < k; ++o) dw[e * k + o] = acc[o * E + e];
    }
    // 3. input gradients: each thread owns a range of rows. Width group outer (its
    // transposed weights stay in the core's L2 while the thread's rows use them); per row,
    // the group's filters are bucketed by window start, and each window's rows
    // de[p : p + k] get the weighted sum of its filters (in order), held in registers.
    int64_t b0, b1;
    this_thread_share(B, &b0, &b1);
    if (b1 > b0) std::memset(v.grad_emb + b0 * T * E, 0, sizeof(float) * (b1 - b0) * T * E);
    std::vector<int64_t> start(static_cast<size_t>(T + 1));
    std::vector<float> bcoef(static_cast<size_t>(fmax));
    std::vector<const float*> bsrc(static_cast<size_t>(fmax));
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k = v.width[g], nf = v.filters[g], P = T - k + 1;
      for (int64_t b = b0; b < b1; ++b) {
        const float* gb = v.grad + b * F + foff[g];
        const int64_t* pb = v.argmax + b * F + foff[g];
        std::fill(start.begin(), start.begin() + P + 1, 0);
        for (int64_t f = 0; f < nf; ++f)
          if (gb[f] != 0.0f) ++start[pb[f] + 1];
        for (int64_t p = 0; p < P; ++p) start[p + 1] += start[p];
        for (int64_t f = 0; f < nf; ++f) {  // counting sort: filters in order per window
          if (gb[f] == 0.0f) continue;
          const int64_t i = start[pb[f]]++;
          bcoef[i] = gb[f];
          bsrc[i] = wt.get() + woff[g] + f * k * E;
        }
        float* de = v.grad_emb + b * T * E;
        for (int64_t p = 0, i0 = 0; p < P; ++p) {  // start[p] is now the end of bucket p
          if (start[p] > i0) add_weighted_sum(bcoef.data() + i0, bsrc.data() + i0,
                                              start[p] - i0, de + p * E, k * E);
          i0 = start[p];
        }
      }
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
