// The canonical exact sampler of DESIGN §4, split into the pieces a fused kernel calls per
// vocabulary tile (K = 256 logits in a cache-resident buffer):
//   tile_noise      Philox (j, step, row, stream) -> u0 (in-tile uniform), Gumbel g_j;
//   tile_exp_sum    z = logit / temperature, m = max z, e = exp(z - m) in place, S = sum e;
//   tile_candidate  first index whose running sum of e exceeds u0 * S.
// The winning tile is argmax_j (m_j + log S_j + g_j), ties to the lowest j, so only the
// winner's e values need to be kept (the caller copies them when a tile takes the lead).
// S is summed in float lanes (8 terms each) then in double; the running sums of the
// candidate search in double, as the reference (torch.cumsum on CPU) does. Either differs
// from the reference by at most an ulp or so, which moves a draw only when u0 * S lands within
// that of a boundary (probability ~1e-7 per token).
#pragma once

#include "isa.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "philox.h"
#include "vec.h"

namespace seqgan {
namespace SEQGAN_ISA {

constexpr int kTile = 256;
constexpr float kGumbelFloor = 1e-20f;

inline int64_t num_tiles(int64_t vocab) { return (vocab + kTile - 1) / kTile; }

// u0[j] and the Gumbel noise g[j] = -log(-log(max(u1, 1e-20))) of tiles j < tiles. Both
// arrays must hold round_up(tiles, 16) floats (the noise is computed 16 tiles at a time).
inline void tile_noise(uint64_t seed, uint32_t step, uint32_t row, uint32_t stream,
                       int64_t tiles, float* u0, float* gumbel) {
  for (int64_t j = 0; j < tiles; ++j) {
    const Philox4 w = philox4x32_10(seed, static_cast<uint32_t>(j), step, row, stream);
    u0[j] = to_uniform(w.w[0]);
    gumbel[j] = to_uniform(w.w[1]);
  }
  for (int64_t j = tiles; j % kLanes; ++j) gumbel[j] = 0.5f;
  for (int64_t j = 0; j < tiles; j += kLanes) {
    const v16 u1 = vmax(vload(gumbel + j), vset1(kGumbelFloor));
    vstore(gumbel + j, -vlog(-vlog(u1)));
  }
}

inline int64_t noise_len(int64_t tiles) { return (tiles + kLanes - 1) / kLanes * kLanes; }

// z: kTile logits (padding entries -inf), divided by temperature in place (temperature == 1
// skips the division: x / 1.0f == x). Returns m = max z.
inline float tile_max(float* z, float temperature) {
  constexpr int nv = kTile / kLanes;
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  v16 v[nv];
  for (int i = 0; i < nv; ++i) v[i] = vload(z + i * kLanes);
  if (temperature != 1.0f) {
    const v16 t = vset1(temperature);
    for (int i = 0; i < nv; ++i) vstore(z + i * kLanes, v[i] = v[i] / t);
  }
  v16 mx = v[0];
  for (int i = 1; i < nv; ++i) mx = vmax(mx, v[i]);
  return hmax(mx);
#else
  constexpr int nn = kTile / kNativeLanes;
  if (temperature != 1.0f) {
    const vn t = nset1(temperature);
    for (int i = 0; i < nn; ++i) nstore(z + i * kNativeLanes, nload(z + i * kNativeLanes) / t);
  }
  v16parts mx;
  for (int p = 0; p < kParts; ++p) mx.p[p] = nload(z + p * kNativeLanes);
  for (int i = 1; i < nv; ++i)
    for (int p = 0; p < kParts; ++p) mx.p[p] = nmax(mx.p[p], nload(z + i * kLanes + p * kNativeLanes));
  return hmax(join(mx));
#endif
}

// z (scaled by tile_max) replaced by e = exp(z - m), m its max. Returns S = sum e.
inline float tile_exp_sum_from(float* z, float m) {
  constexpr int nv = kTile / kLanes;
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  // The whole tile in 16 of the 32 zmm registers.
  const v16 mv = vset1(m);
  v16 acc0 = vset1(0.0f), acc1 = vset1(0.0f);
  for (int i = 0; i < nv; i += 2) {
    const v16 e0 = vexp(vload(z + i * kLanes) - mv), e1 = vexp(vload(z + (i + 1) * kLanes) - mv);
    vstore(z + i * kLanes, e0);
    vstore(z + (i + 1) * kLanes, e1);
    acc0 += e0;
    acc1 += e1;
  }
  const double s = hsum_d(acc0 + acc1);
#else
  // The tile would need 32 ymm (64 xmm) registers: stream it through L1 in native vectors
  // instead, with the same lanes, operations and summation order as the form above (lane l
  // of the v16 sums lives in part l / kNativeLanes), so every path computes the same S.
  const vn mv = nset1(m);
  v16parts acc0, acc1;
  for (int p = 0; p < kParts; ++p) acc0.p[p] = acc1.p[p] = nset1(0.0f);
  for (int i = 0; i < nv; i += 2) {
#pragma GCC unroll 4
    for (int p = 0; p < kParts; ++p) {
      float* z0 = z + i * kLanes + p * kNativeLanes;
      float* z1 = z0 + kLanes;
      const vn e0 = nexp(nload(z0) - mv), e1 = nexp(nload(z1) - mv);
      nstore(z0, e0);
      nstore(z1, e1);
      acc0.p[p] += e0;
      acc1.p[p] += e1;
    }
  }
  for (int p = 0; p < kParts; ++p) acc0.p[p] += acc1.p[p];
  const double s = hsum_d(join(acc0));
#endif
  return static_cast<float>(s);
}

// Both steps: z -> exp(z/temperature - m) in place; returns S, *m_out = m.
inline float tile_exp_sum(float* z, float temperature, float* m_out) {
  const float m = tile_max(z, temperature);
  *m_out = m;
  return tile_exp_sum_from(z, m);
}

// First index i < len with float(e[0] + ... + e[i]) > thr (sums in double); len - 1 if none.
// Whole 16-entry chunks are skipped on their (tree) sum; the crossing chunk is scanned.
inline int tile_candidate(const float* e, int len, float thr) {
  double run = 0.0;
  int i = 0;
  for (; i + kLanes <= len; i += kLanes) {
    const double next = run + hsum_d(vload(e + i));
    if (static_cast<float>(next) > thr) break;
    run = next;
  }
  for (; i < len; ++i) {
    run += e[i];
    if (static_cast<float>(run) > thr) return i;
  }
  return len - 1;
}

// One tile's Gumbel-max score; evaluated in float in the reference's order.
inline float tile_score(float m, float S, float gumbel) { return (m + std::log(S)) + gumbel; }

// An upper bound of S = sum exp(z - m) for a tile scaled by tile_max, at about a quarter of
// the exps' cost: with y = (z - m) log2(e), 2^y <= 2^floor(y) (1 + frac(y)), which is the
// float whose bits are y 2^23 + 127 2^23 (conversion truncates toward zero, upwards here; y
// clamped at -126, also upwards). At most 6.2% above the exact sum, never below it beyond
// the float rounding of the sums (~1e-5 relative at worst); -inf padding adds 2^-126.
inline float tile_exp_bound(const float* z, float m) {
  const vn mv = nset1(m), l2e = nset1(1.44269504f), lo = nset1(-126.0f);
  const vn scale = nset1(8388608.0f);  // 2^23
  const vni one = vni{} + (127 << 23);
  vn acc[2] = {nset1(0.0f), nset1(0.0f)};
  for (int i = 0; i < kTile; i += kNativeLanes) {
    const vn y = nmax((nload(z + i) - mv) * l2e, lo);
    const vni b = __builtin_convertvector(y * scale, vni) + one;
    vn e;
    std::memcpy(&e, &b, sizeof e);
    acc[(i / kNativeLanes) & 1] += e;
  }
  const vn a = acc[0] + acc[1];  // lanes summed as a tree
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  const v8 h = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
#elif SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX2
  const v8 h = a;
#endif
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_BASELINE
  const v4 q = a;
#else
  const v4 q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
#endif
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// Whether a tile can still take the lead from `best` (the score to beat), decided before its
// exps: with bound >= S (tile_exp_bound; log_bound = its log), the score (m + log S) + g is
// at most (m + log_bound) + g. A tile whose bound, plus a margin far above the float
// rounding of the sums, logs and additions (~1e-5 relative), stays below `best` could not
// have won: skipping its exact exps and log changes no draw (NaN never skips). The bound is
// within 0.06 nats of the score, so in a row's left-to-right scan only tiles that come
// within that of the best so far are evaluated exactly (for iid scores, the records: about
// H_20 = 3.6 of the paper's 20 tiles).
inline bool tile_may_win(float m, float log_bound, float gumbel, float best) {
  const float bound = (m + log_bound) + gumbel;
  const float margin = 1e-4f + 1e-5f * (std::fabs(m) + std::fabs(gumbel) + std::fabs(log_bound));
  return !(bound + margin < best);
}

// The bound on S whose log tile_may_win tests: 1 (log 0) when S <= len already rules the tile
// out, which rules it out again since log 1 <= log len and the margin shrinks with it (the
// pass is then skipped), else tile_exp_bound.
inline float tile_pruning_bound(const float* z, float m, float log_len, float gumbel,
                                float best) {
  return tile_may_win(m, log_len, gumbel, best) ? tile_exp_bound(z, m) : 1.0f;
}

// Whole-row convenience over an explicit logits vector (tests, and rows with no fused
// projection): the same pieces in the same order as the fused kernels. prune = false
// evaluates every tile (tests: the same draws); *pruned, if given, counts skipped tiles.
inline int64_t sample_logits(const float* logits, int64_t vocab, uint64_t seed, uint32_t step,
                             uint32_t row, uint32_t stream, float temperature, float* u0,
                             float* gumbel, bool prune = true, int64_t* pruned = nullptr) {
  const int64_t tiles = num_tiles(vocab);
  tile_noise(seed, step, row, stream, tiles, u0, gumbel);
  alignas(64) float z[kTile], best[kTile];
  float best_score = 0.0f, best_S = 0.0f;
  int64_t best_j = 0;
  for (int64_t j = 0; j < tiles; ++j) {
    const int64_t len = std::min<int64_t>(kTile, vocab - j * kTile);
    for (int64_t i = 0; i < kTile; ++i)
      z[i] = i < len ? logits[j * kTile + i] : -std::numeric_limits<float>::infinity();
    const float m = tile_max(z, temperature);
    const float log_len = std::log(static_cast<float>(len));
    if (prune && j > 0 &&
        !tile_may_win(m, std::log(tile_pruning_bound(z, m, log_len, gumbel[j], best_score)),
                      gumbel[j], best_score)) {
      if (pruned != nullptr) ++*pruned;
      continue;
    }
    const float S = tile_exp_sum_from(z, m);
    const float score = tile_score(m, S, gumbel[j]);
    if (j == 0 || score > best_score) {
      best_score = score;
      best_S = S;
      best_j = j;
      std::memcpy(best, z, sizeof z);
    }
  }
  const int len = static_cast<int>(std::min<int64_t>(kTile, vocab - best_j * kTile));
  return best_j * kTile + tile_candidate(best, len, u0[best_j] * best_S);
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
