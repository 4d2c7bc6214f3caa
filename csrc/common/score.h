// The discriminator's convolution + ReLU + max-pool over time with the embedding folded into
// the first layer (ops `score_pool` and `score_fold_pool`; torch-free). For filter group g
// (width k, F filters) the convolution of an embedded sequence is a sum of table rows,
//   conv_g(p)[f] = b[f] + sum_{o<k} U_{g,o}[x_{p+o}][f],   U_{g,o} = Emb . W_{g,:,:,o}^T,
// so a window costs k vector adds instead of k*E multiply-adds. The table (V x Kp floats)
// holds for token v, group g, offset o the Fp = round_up(F, 16) columns [off_g + o*Fp, +Fp),
// the padding columns zero.
//
// Passes. The table's columns are visited in blocks: one pass over all rows touches only a
// group's V x k x cw slice, sized to the last-level cache, so a token's entries come from
// memory about once per pass instead of once per row that uses them. `score_pool` reads the
// slices from a whole table its caller built (262 MB at the paper size); `score_fold_pool`
// never builds it: each pass computes its slice, Emb (V x E) . the pass's weight columns, on
// gemm_nn's tiles into a cache-sized scratch and pools from there, for all the rows of the
// call. `python benchmarks/micro.py score`, the paper's 19,456 prefix-shared completions at
// 2 threads (Zen 5, two runs): 0.108 / 0.140 s folded pass by pass, against 0.168 / 0.134 s
// for torch.mm writing the whole table plus 0.147 / 0.170 s pooling from it.
//
// Rollout layout (ScoreRowsView::prefix_x set): row m = ((t-1)*N + n)*B + b is a completion of
// x[b] that equals x[b] on positions < t. Windows that lie inside the prefix (p + k <= t) are
// the same for every n: their running maximum is computed once per (b, t) and only the
// windows that reach a generated position are computed per completion. Of those, the ones
// that straddle t (p < t < p + k) start from their prefix offsets' sum, also computed once
// per (b, t): at the paper's filters 51% of the whole-row adds remain, against 67% with the
// prefix windows alone.
//
// Every window sums bias + U_0 + U_1 + ... in o order with plain adds, so all ISA paths, pass
// widths and thread counts give bit-identical pooled features from the same table (no FMA
// involved); the fold's slices are gemm_nn's products, one FMA per term in e order (the same
// bits on the AVX-512 and AVX2 paths, and the same as gemm_nn of the whole table).
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "api.h"
#include "gemm_nn.h"
#include "parallel.h"
#include "vec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

constexpr int kScoreChunk = 4;  // native vectors of filters kept in registers per pass

// `score_pool`'s pass size over a whole table: 32 MiB, the L3 of the 2-core instances; a
// smaller pass repeats the per-pass work (token reads, straddling partials) on narrower
// column blocks. `score_fold_pool` takes its pass size from the caller (ops/score.py: the
// same 32 MiB unless a smaller memory budget is set); for it the size barely matters at the
// paper size: 0.103 / 0.122 / 0.098 / 0.102 s with 8 / 16 / 32 / 64 MiB passes (`python
// benchmarks/micro.py score`, 2 threads, Zen 5).
constexpr int64_t kScorePassBytes = int64_t{32} << 20;

// One pass: group g's table columns [c_begin, c_end); token v's entry for offset o, column c
// at base + v * ld + o * ostride + (c - c_begin).
struct ScorePass {
  const float* base;
  int64_t ld, ostride, k;
  const float* bias;  // the group's padded bias, indexed by column
  int64_t c_begin, c_end;
};

// Max over windows p in [p_begin, p_end) of the pass's conv values in the NV native vectors
// of columns from c0, for one sequence `tok`, folded into mx (indexed from the pass's first
// column). A window p < p_shared straddles prefix length t: it starts from `part` (row
// p - p_begin, one pass width: bias + its offsets o < t - p, from window_partials) and adds
// the offsets from t - p on; the others start from the bias. Either way the sum is bias +
// U_0 + U_1 + ... in o order, so the same bits. NV is a template argument so that the
// accumulators stay in registers (with a run-time count GCC kept them on the stack: a store
// and a reload per add).
template <int NV>
inline void fold_windows_nv(const ScorePass& s, int64_t c0, const int64_t* tok,
                            int64_t p_begin, int64_t p_end, float* mx, int64_t t,
                            int64_t p_shared, const float* part) {
  const int64_t cw = s.c_end - s.c_begin, col = c0 - s.c_begin;
  const float* base = s.base + col;
  vn m[NV];
  for (int j = 0; j < NV; ++j) m[j] = nload(mx + col + j * kNativeLanes);
  for (int64_t p = p_begin; p < p_end; ++p) {
    const bool shared = p < p_shared;
    const float* init = shared ? part + (p - p_begin) * cw + col : s.bias + c0;
    vn acc[NV];
    for (int j = 0; j < NV; ++j) acc[j] = nload(init + j * kNativeLanes);
    const int64_t o0 = shared ? t - p : 0;
    const float* rb = base + o0 * s.ostride;
    for (int64_t o = o0; o < s.k; ++o, rb += s.ostride) {
      const float* row = rb + tok[p + o] * s.ld;
      for (int j = 0; j < NV; ++j) acc[j] = acc[j] + nload(row + j * kNativeLanes);
    }
    for (int j = 0; j < NV; ++j) m[j] = nmax(m[j], acc[j]);
  }
  for (int j = 0; j < NV; ++j) nstore(mx + col + j * kNativeLanes, m[j]);
}

template <int NV = kScoreChunk>
inline void fold_windows_dispatch(int nv, const ScorePass& s, int64_t c0, const int64_t* tok,
                                  int64_t p_begin, int64_t p_end, float* mx, int64_t t,
                                  int64_t p_shared, const float* part) {
  if constexpr (NV > 0) {
    if (nv == NV) return fold_windows_nv<NV>(s, c0, tok, p_begin, p_end, mx, t, p_shared, part);
    fold_windows_dispatch<NV - 1>(nv, s, c0, tok, p_begin, p_end, mx, t, p_shared, part);
  }
}

// fold_windows_nv over all the pass's columns, kScoreChunk vectors at a time.
inline void fold_windows(const ScorePass& s, const int64_t* tok, int64_t p_begin,
                         int64_t p_end, float* mx, int64_t t = 0, int64_t p_shared = 0,
                         const float* part = nullptr) {
  for (int64_t c0 = s.c_begin; c0 < s.c_end; c0 += kScoreChunk * kNativeLanes) {
    const int nv =
        static_cast<int>(std::min<int64_t>(kScoreChunk, (s.c_end - c0) / kNativeLanes));
    fold_windows_dispatch(nv, s, c0, tok, p_begin, p_end, mx, t, p_shared, part);
  }
}

// The windows of the pass's group that straddle prefix length t (p in [p_begin, p_end),
// p < t < p + k), summed over their offsets inside the prefix: part row p - p_begin = bias +
// sum_{o < t - p} U_o[tok[p + o]], in o order (fold_windows continues them).
inline void window_partials(const ScorePass& s, const int64_t* tok, int64_t p_begin,
                            int64_t p_end, int64_t t, float* part) {
  const int64_t cw = s.c_end - s.c_begin;
  for (int64_t p = p_begin; p < p_end; ++p) {
    float* out = part + (p - p_begin) * cw;
    for (int64_t c = 0; c < cw; c += kNativeLanes) {
      vn acc = nload(s.bias + s.c_begin + c);
      for (int64_t o = 0; o < t - p; ++o)
        acc = acc + nload(s.base + tok[p + o] * s.ld + o * s.ostride + c);
      nstore(out + c, acc);
    }
  }
}

// Pools one pass: columns [c_begin, min(c_end, F_g)) of group g (first column fcol of
// pooled, F columns) for every row of r.
inline void pool_pass(const ScorePass& s, int64_t Fg, int64_t fcol, int64_t F,
                      const ScoreRowsView& r, int nt) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t T = r.T, k = s.k, cw = s.c_end - s.c_begin;
  const int64_t c_out = std::min(s.c_end, Fg);
  // tokens' rows are completions (prefix_x set) or scored whole; extra's are scored whole
  const bool completions = r.prefix_x != nullptr, rollout = completions && r.M > 0;
  const int64_t first = completions ? r.M : 0, whole = r.M + r.M_extra - first;
  const int64_t NB = r.N * r.B;
  const int64_t t_lo = rollout ? r.row0 / NB + 1 : 1;
  const int64_t t_hi = rollout ? (r.row0 + r.M - 1) / NB + 1 : 0;
  // prefix running maxima over windows with p + k <= t: run[(b * nts + t - t_lo) * cw ...]
  const int64_t nts = t_hi - t_lo + 1;
  std::vector<float> run;
  if (rollout) {
    run.resize(static_cast<size_t>(r.B * nts * cw));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t b = 0; b < r.B; ++b) {
      std::vector<float> mx(static_cast<size_t>(cw), neg_inf);
      const int64_t* xb = r.prefix_x + b * T;
      for (int64_t t = 1; t <= t_hi; ++t) {
        const int64_t p = t - k;  // the window that ends at position t - 1
        if (p >= 0) fold_windows(s, xb, p, p + 1, mx.data());
        if (t >= t_lo) std::memcpy(&run[(b * nts + t - t_lo) * cw], mx.data(), sizeof(float) * cw);
      }
    }
  }
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> mx(static_cast<size_t>(cw));
    std::vector<float> part(static_cast<size_t>(rollout ? std::max<int64_t>(k - 1, 1) * cw : 0));
    auto emit = [&](int64_t i) {
      float* out = r.pooled + i * F + fcol;  // group column f at out[f]
      for (int64_t f = s.c_begin; f < c_out; ++f) {
        const float v = mx[f - s.c_begin];
        out[f] = v > 0.0f ? v : 0.0f;
      }
    };
    if (rollout) {
      // Straddling windows (p < t < p + k) are shared too: their offsets inside the prefix
      // are summed once per (t, b) and each completion adds only its generated positions'
      // rows (window_partials). So the rows of a prefix are visited together.
#pragma omp for schedule(dynamic, 1)
      for (int64_t q = 0; q < nts * r.B; ++q) {
        const int64_t t = t_lo + q / r.B, b = q % r.B;
        // windows reaching position >= t start at p0; those before ps straddle t
        const int64_t p0 = std::max<int64_t>(0, t - k + 1), ps = std::min(t, T - k + 1);
        bool partials = false;
        for (int64_t n = 0; n < r.N; ++n) {
          const int64_t m = (t - 1) * NB + n * r.B + b;
          if (m < r.row0 || m >= r.row0 + r.M) continue;
          if (!partials && ps > p0) {
            window_partials(s, r.prefix_x + b * T, p0, ps, t, part.data());
            partials = true;
          }
          std::memcpy(mx.data(), &run[(b * nts + t - t_lo) * cw], sizeof(float) * cw);
          const int64_t i = m - r.row0;
          fold_windows(s, r.tokens + i * T, p0, T - k + 1, mx.data(), t, ps, part.data());
          emit(i);
        }
      }
    }
#pragma omp for schedule(dynamic, 32)
    for (int64_t j = 0; j < whole; ++j) {
      const int64_t i = first + j;
      const int64_t* tok = i < r.M ? r.tokens + i * T : r.extra + (i - r.M) * T;
      std::fill(mx.begin(), mx.end(), neg_inf);
      fold_windows(s, tok, 0, T - k + 1, mx.data());
      emit(i);
    }
  }
}

// pooled (M + M_extra, F) = relu(max_p conv(p)) of r's rows, F = sum of the groups' filter
// counts, groups in order: pass by pass (group g's columns [c0, c0 + cw), cw from
// score_pass_columns), pass(g, c0, cw) giving that pass's ScorePass.
template <class PassFn>
inline void score_passes(const ConvTableView& d, int64_t pass_bytes, const ScoreRowsView& r,
                         int num_threads, PassFn pass) {
  if (r.M + r.M_extra <= 0) return;
  const int nt = resolve_threads(num_threads);
  int64_t F = 0;
  for (int64_t g = 0; g < d.groups; ++g) F += d.filters[g];
  for (int64_t g = 0, fcol = 0; g < d.groups; fcol += d.filters[g], ++g) {
    const int64_t Fp = d.fpad[g], cb = score_pass_columns(d.V, d.width[g], Fp, pass_bytes);
    for (int64_t c0 = 0; c0 < Fp; c0 += cb)
      pool_pass(pass(g, c0, std::min(cb, Fp - c0), nt), d.filters[g], fcol, F, r, nt);
  }
}

// Op score_pool: the passes read a whole table.
inline void score_pool_core(const ConvTableView& d, const ScoreRowsView& r, int num_threads) {
  score_passes(d, kScorePassBytes, r, num_threads, [&](int64_t g, int64_t c0, int64_t cw, int) {
    return ScorePass{d.table + d.off[g] + c0, d.Kp, d.fpad[g], d.width[g],
                     d.bias + d.fpoff[g], c0, c0 + cw};
  });
}

// Op score_fold_pool: each pass's slice (V, k * cw) = emb . the pass's columns of w_all
// (packed as (E, k * cw)), computed in v.scratch.
inline void score_fold_pool_core(const ScoreFoldView& v, const ScoreRowsView& r,
                                 int num_threads) {
  const ConvTableView& d = v.conv;
  score_passes(d, v.pass_bytes, r, num_threads, [&](int64_t g, int64_t c0, int64_t cw, int nt) {
    const int64_t k = d.width[g], Fp = d.fpad[g], n = k * cw;
    float* slice = v.scratch;
    float* wpack = v.scratch + d.V * n;
    for (int64_t e = 0; e < v.E; ++e)
      for (int64_t o = 0; o < k; ++o)
        std::memcpy(wpack + e * n + o * cw, v.w_all + e * d.Kp + d.off[g] + o * Fp + c0,
                    sizeof(float) * cw);
    gemm_nn_core(GemmNNView{v.emb, v.E, wpack, n, slice, n, d.V, v.E, n, nullptr, false}, nt);
    return ScorePass{slice, n, cw, k, d.bias + d.fpoff[g], c0, c0 + cw};
  });
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
