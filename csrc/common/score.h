// The discriminator's convolution + ReLU + max-pool over time with the embedding folded into
// the first layer (op `score`; torch-free). For filter group g (width k, F filters) the
// convolution of an embedded sequence is a sum of table rows,
//   conv_g(p)[f] = b[f] + sum_{o<k} U_{g,o}[x_{p+o}][f],   U_{g,o} = Emb . W_{g,:,:,o}^T,
// so a window costs k vector adds instead of k*E multiply-adds. The table (V x Kp floats,
// built by the caller with one GEMM) holds for token v, group g, offset o the Fp = round_up(F,
// 16) columns [off_g + o*Fp, +Fp), the padding columns zero.
//
// Rollout layout (prefix_x != null): row m = ((t-1)*N + n)*B + b is a completion of x[b] that
// equals x[b] on positions < t. Windows that lie inside the prefix (p + k <= t) are the same
// for every n: their running maximum is computed once per (b, t) and only the windows that
// reach a generated position are computed per completion. Of those, the ones that straddle t
// (p < t < p + k) start from their prefix offsets' sum, also computed once per (b, t): at the
// paper's filters 51% of the whole-row adds remain, against 67% with the prefix windows alone.
//
// Every window sums bias + U_0 + U_1 + ... in o order with plain adds, so all ISA paths give
// bit-identical results (no FMA involved).
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "api.h"
#include "vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

constexpr int kScoreChunk = 4;  // native vectors of filters kept in registers per pass

// The table's columns are visited in blocks: one pass over all rows touches only V x k x cw
// floats of group g's table, sized to the last-level cache, so a token's entries come from
// memory about once per pass instead of once per row that uses them (the table is 262 MB at
// the paper size). At the paper size this is a pass per group except for widths 15 and 20
// (2 each). 32 MiB, the L3 of the 2-core Zen 5 instance, where pooling the paper's 19,456
// prefix-shared completions took 159 ms against 222 with 8 MiB passes and 157 with none
// (a throwaway sweep, interleaved; flat from 24 MiB up); a smaller pass repeats the per-pass
// work (token reads, straddling partials) on narrower column blocks.
constexpr int64_t kScorePassBytes = int64_t{32} << 20;

inline int64_t column_block(const ConvTableView& d, int64_t g) {
  const int64_t cw = kScorePassBytes / (4 * d.V * d.width[g]) / kLanes * kLanes;
  return std::min<int64_t>(std::max<int64_t>(cw, kLanes), d.fpad[g]);
}

// acc += the table rows of offsets [o_begin, o_end) of window p of group g (sequence tok), nv
// native vectors from column c0, in o order.
inline void add_offsets(const ConvTableView& d, int64_t g, int64_t c0, int nv,
                        const int64_t* tok, int64_t p, int64_t o_begin, int64_t o_end,
                        vn* acc) {
  const int64_t Fp = d.fpad[g], off = d.off[g];
  for (int64_t o = o_begin; o < o_end; ++o) {
    const float* row = d.table + tok[p + o] * d.Kp + off + o * Fp + c0;
    for (int j = 0; j < nv; ++j) acc[j] = acc[j] + nload(row + j * kNativeLanes);
  }
}

// Max over windows p in [p_begin, p_end) of group g's conv values in columns [c_begin,
// c_end) for one sequence `tok`, folded into mx (indexed from c_begin). Windows are computed
// kScoreChunk vectors at a time, in registers. A window p < p_shared straddles prefix length
// t: it starts from `part` (row p - p_begin, c_end - c_begin floats: bias + its offsets
// o < t - p, from window_partials) and adds the offsets from t - p on; the others start from
// the bias. Either way the sum is bias + U_0 + U_1 + ... in o order, so the same bits.
inline void fold_windows(const ConvTableView& d, int64_t g, int64_t c_begin, int64_t c_end,
                         const int64_t* tok, int64_t p_begin, int64_t p_end, float* mx,
                         int64_t t = 0, int64_t p_shared = 0, const float* part = nullptr) {
  const int64_t k = d.width[g], cw = c_end - c_begin;
  const float* bias = d.bias + d.fpoff[g];
  mx -= c_begin;
  for (int64_t c0 = c_begin; c0 < c_end; c0 += kScoreChunk * kNativeLanes) {
    const int nv = static_cast<int>(std::min<int64_t>(kScoreChunk, (c_end - c0) / kNativeLanes));
    vn m[kScoreChunk];
    for (int j = 0; j < nv; ++j) m[j] = nload(mx + c0 + j * kNativeLanes);
    for (int64_t p = p_begin; p < p_end; ++p) {
      const bool shared = p < p_shared;
      const float* init = shared ? part + (p - p_begin) * cw + (c0 - c_begin) : bias + c0;
      vn acc[kScoreChunk];
      for (int j = 0; j < nv; ++j) acc[j] = nload(init + j * kNativeLanes);
      add_offsets(d, g, c0, nv, tok, p, shared ? t - p : 0, k, acc);
      for (int j = 0; j < nv; ++j) m[j] = nmax(m[j], acc[j]);
    }
    for (int j = 0; j < nv; ++j) nstore(mx + c0 + j * kNativeLanes, m[j]);
  }
}

// The windows of group g that straddle prefix length t (p in [p_begin, p_end), p < t < p + k),
// summed over their offsets inside the prefix: part row p - p_begin = bias + sum_{o < t - p}
// U_o[tok[p + o]] in columns [c_begin, c_end), in o order (fold_windows continues them).
inline void window_partials(const ConvTableView& d, int64_t g, int64_t c_begin, int64_t c_end,
                            const int64_t* tok, int64_t p_begin, int64_t p_end, int64_t t,
                            float* part) {
  const int64_t cw = c_end - c_begin;
  const float* bias = d.bias + d.fpoff[g];
  for (int64_t p = p_begin; p < p_end; ++p) {
    float* out = part + (p - p_begin) * cw - c_begin;
    for (int64_t c0 = c_begin; c0 < c_end; c0 += kScoreChunk * kNativeLanes) {
      const int nv =
          static_cast<int>(std::min<int64_t>(kScoreChunk, (c_end - c0) / kNativeLanes));
      vn acc[kScoreChunk];
      for (int j = 0; j < nv; ++j) acc[j] = nload(bias + c0 + j * kNativeLanes);
      add_offsets(d, g, c0, nv, tok, p, 0, t - p, acc);
      for (int j = 0; j < nv; ++j) nstore(out + c0 + j * kNativeLanes, acc[j]);
    }
  }
}

// pooled (M, F) = relu(max_p conv(p)) of rows [row0, row0 + M) of `tokens` (row stride T); F =
// sum of the groups' filter counts, groups in order. prefix_x (B, T) selects the rollout
// layout (rows are completions of x, N per prefix), else every row is scored whole.
inline void score_pool_core(const ConvTableView& d, const int64_t* tokens, int64_t row0,
                            int64_t M, int64_t T, const int64_t* prefix_x, int64_t N, int64_t B,
                            float* pooled, int num_threads) {
  if (M <= 0) return;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t Fp = d.fp_total;
  int64_t F = 0;
  for (int64_t g = 0; g < d.groups; ++g) F += d.filters[g];
#ifdef _OPENMP
  const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  const int nt = 1;
  (void)num_threads;
#endif
  // prefix running maxima: run[(b*(T-1) + t-1)*Fp ...] over windows with p + k <= t
  std::vector<float> run;
  if (prefix_x) {
    run.assign(static_cast<size_t>(B * (T - 1) * Fp), neg_inf);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      std::vector<float> mx(static_cast<size_t>(Fp), neg_inf);
      const int64_t* xb = prefix_x + b * T;
      for (int64_t t = 1; t < T; ++t) {
        for (int64_t g = 0; g < d.groups; ++g) {
          const int64_t p = t - d.width[g];  // the window that ends at position t - 1
          if (p >= 0) fold_windows(d, g, 0, d.fpad[g], xb, p, p + 1, mx.data() + d.fpoff[g]);
        }
        std::memcpy(&run[(b * (T - 1) + t - 1) * Fp], mx.data(), sizeof(float) * Fp);
      }
    }
  }
  // Straddling windows (p < t < p + k) are shared too: their offsets inside the prefix are
  // summed once per (t, b) and each completion adds only its generated positions' rows
  // (window_partials). So the rows of a prefix are visited together, pair (t, b) at a time.
  int64_t part_floats = 0;
  for (int64_t g = 0; g < d.groups; ++g)
    part_floats = std::max(part_floats, (d.width[g] - 1) * d.fpad[g]);
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> mx(static_cast<size_t>(Fp));
    std::vector<float> part(static_cast<size_t>(prefix_x ? part_floats : 0));
    int64_t fcol = 0;  // the group's first column of `pooled`
    for (int64_t g = 0; g < d.groups; ++g) {
      const int64_t k = d.width[g], Fg = d.filters[g], cb = column_block(d, g);
      for (int64_t c0 = 0; c0 < d.fpad[g]; c0 += cb) {
        const int64_t c1 = std::min(c0 + cb, d.fpad[g]), c_out = std::min(c1, Fg);
        auto emit = [&](int64_t i) {
          float* out = pooled + i * F + fcol;
          for (int64_t f = c0; f < c_out; ++f) out[f] = mx[f - c0] > 0.0f ? mx[f - c0] : 0.0f;
        };
        if (prefix_x) {
          const int64_t NB = N * B, t_lo = row0 / NB + 1, t_hi = (row0 + M - 1) / NB + 1;
#pragma omp for schedule(dynamic, 1)
          for (int64_t q = 0; q < (t_hi - t_lo + 1) * B; ++q) {
            const int64_t t = t_lo + q / B, b = q % B;
            // windows reaching position >= t start at p0; those before ps straddle t
            const int64_t p0 = std::max<int64_t>(0, t - k + 1), ps = std::min(t, T - k + 1);
            bool partials = false;
            for (int64_t n = 0; n < N; ++n) {
              const int64_t m = (t - 1) * NB + n * B + b;
              if (m < row0 || m >= row0 + M) continue;
              if (!partials && ps > p0) {
                window_partials(d, g, c0, c1, prefix_x + b * T, p0, ps, t, part.data());
                partials = true;
              }
              std::memcpy(mx.data(), &run[(b * (T - 1) + t - 1) * Fp + d.fpoff[g] + c0],
                          sizeof(float) * (c1 - c0));
              const int64_t i = m - row0;
              fold_windows(d, g, c0, c1, tokens + i * T, p0, T - k + 1, mx.data(), t, ps,
                           part.data());
              emit(i);
            }
          }
        } else {
#pragma omp for schedule(dynamic, 32)
          for (int64_t i = 0; i < M; ++i) {
            std::fill(mx.begin(), mx.begin() + (c1 - c0), neg_inf);
            fold_windows(d, g, c0, c1, tokens + i * T, 0, T - k + 1, mx.data());
            emit(i);
          }
        }
      }
      fcol += Fg;
    }
  }
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
