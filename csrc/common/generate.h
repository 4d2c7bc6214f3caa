// The three ops on plain pointers and sizes (torch-free): decode, sample, rollout.
// csrc/cpu/*.cpp validate torch tensors and call these; tests/cpp runs them without torch.
//
// Work is split into blocks of up to kBlockRows rows; a block is owned by one OpenMP thread
// from its first step to its last, so h, c, the logit tile and the winner's tile stay in that
// core's cache. Per vocabulary tile the block runs one small GEMM (rows x 256 logits, 4-row
// x 64-column register microkernel over w_out packed in panels), then the tile sampler,
// which exponentiates only the tiles that can still win (sampler.h's tile_may_win).
// Logits never exist beyond one rows x 256 tile per thread.
//
// Each op is a template on the cell (LstmCell, GruCell: csrc/common/cell.h), chosen once per
// call from the weights' `cell`; sample and rollout start every row from its initial state
// (h0, c0 (B, H); nullptr = zeros), the state before the start token is fed.
//
// Memory (bytes), beyond inputs and the output:
//   packed weights  4 * (tiles*256*(Hp + 1) + (E + Hp + 1) * 4*Hp)   (+ a transient 16*H*(E+H))
//   per thread      BlockWorkspace::bytes(kBlockRows)
//                   = 4*kBlockRows*(E + 6*Hp + 514 + 2*round_up(tiles, 16)) + 8*kBlockRows
//                     + 8*round_up(kBlockRows, 16)
//   rollout only    prefix states 2 * 4 * (T-1) * B * Hp (GRU: half, no cell state)
// e.g. paper (V=5000, E=H=32): ~0.7 MB packed + ~100 KB per thread + 0.3 MB prefix states.
// Hp = H rounded up to 16, tiles = ceil(V / 256).
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cell.h"
#include "parallel.h"
#include "sampler.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {
namespace SEQGAN_ISA {

#ifndef SEQGAN_BLOCK_ROWS
#define SEQGAN_BLOCK_ROWS 32
#endif
// Rows per block: w_out is streamed once per block and step, so more rows amortise it (at
// V=20000, H=128 32 rows ran 1.6x faster than 16; 64 gained nothing more; at the paper's
// size 8..64 are equal). A tuning knob for benchmarks.
constexpr int64_t kBlockRows = SEQGAN_BLOCK_ROWS;

// Samples one token per row of the block from softmax(project(h) / temperature).
// row_ids[r]: the logical Philox row of block row r.
inline void sample_block(const PackedRNN& p, BlockWorkspace& ws, int64_t rows, uint64_t seed,
                         uint32_t step, const uint32_t* row_ids, uint32_t stream,
                         float temperature, int64_t* tokens) {
  const int64_t J = p.tiles, NJ = noise_len(J);
  for (int64_t r = 0; r < rows; ++r)
    tile_noise(seed, step, row_ids[r], stream, J, ws.u0.data() + r * NJ,
               ws.gumbel.data() + r * NJ);
  const float* hA = ws.xin.data() + p.E;
  float* const tm = ws.tile_m.data();
  float* const tb = ws.tile_bound.data();
  for (int64_t j = 0; j < J; ++j) {
    gemm_panels(hA, p.Kx, rows, p.out_panels.data() + j * (kTile / kPanel) * p.Hp * kPanel,
                kTile / kPanel, p.out_bias.data() + j * kTile, p.Hp, ws.logits.data(), kTile);
    // Pruning (sampler.h): tb[r] = the bound on S that tile_may_win tests, its log taken 16
    // rows at a time (tile_pruning_bound; padding rows hold 1).
    const float log_len = std::log(static_cast<float>(std::min<int64_t>(kTile, p.V - j * kTile)));
    for (int64_t r = 0; r < rows; ++r) {
      tm[r] = tile_max(ws.logits.data() + r * kTile, temperature);
      if (j > 0)
        tb[r] = tile_pruning_bound(ws.logits.data() + r * kTile, tm[r], log_len,
                                   ws.gumbel[r * NJ + j], ws.best_score[r]);
    }
    if (j > 0) {
      for (int64_t r = rows; r % kLanes != 0; ++r) tb[r] = 1.0f;
      for (int64_t r = 0; r < rows; r += kLanes) vstore(tb + r, vlog(vload(tb + r)));
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* z = ws.logits.data() + r * kTile;
      const float m = tm[r];
      const float g = ws.gumbel[r * NJ + j];
      if (j > 0 && !tile_may_win(m, tb[r], g, ws.best_score[r]))
        continue;  // could not take the lead: its exps would change nothing (sampler.h)
      const float S = tile_exp_sum_from(z, m);
      const float score = tile_score(m, S, g);
      if (j == 0 || score > ws.best_score[r]) {  // strict: ties keep the lowest tile
        ws.best_score[r] = score;
        ws.best_S[r] = S;
        ws.best_j[r] = j;
        std::memcpy(ws.best.data() + r * kTile, z, sizeof(float) * kTile);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = ws.best_j[r];
    const int len = static_cast<int>(std::min<int64_t>(kTile, p.V - j * kTile));
    const float thr = ws.u0[r * NJ + j] * ws.best_S[r];
    tokens[r] = j * kTile + tile_candidate(ws.best.data() + r * kTile, len, thr);
  }
}

// Rows per block for an op over B independent rows: full blocks, unless that would leave
// threads idle (small batches); kept a multiple of the microkernel's 4 rows.
inline int64_t rows_per_block(int64_t B, int threads) {
  const int64_t even = (B + threads - 1) / threads;
  return std::max<int64_t>(4, std::min<int64_t>(kBlockRows, (even + 3) / 4 * 4));
}


// Calls f(Cell{}) with the cell type the weights name.
template <class F>
inline void with_cell(const LSTMWeightsView& w, F&& f) {
  if (w.cell == kCellGRU)
    f(GruCell{});
  else
    f(LstmCell{});
}

// decode: feed tokens (B,), state h_in, c_in (B,H) -> next tokens (B,), h_out, c_out (B,H).
// Row b samples with Philox row row_offset + b. A GRU ignores c_in and writes c_out = 0.
template <class Cell>
inline void decode_impl(const LSTMWeightsView& w, const int64_t* tokens, const float* h_in,
                        const float* c_in, int64_t B, uint64_t seed, uint32_t step,
                        uint32_t row_offset, uint32_t stream, float temperature,
                        int64_t* tok_out, float* h_out, float* c_out, int num_threads) {
  if (B <= 0) return;
  const PackedRNN p(w);
  const int64_t R = rows_per_block(B, resolve_threads(num_threads));
  const int64_t nblocks = (B + R - 1) / R;
  const int nt = static_cast<int>(std::min<int64_t>(resolve_threads(num_threads), nblocks));
#pragma omp parallel num_threads(nt)
  {
    BlockWorkspace ws(p, kBlockRows);
    uint32_t ids[kBlockRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t b0 = blk * R, rows = std::min(R, B - b0);
      load_state(p, ws, rows, h_in + b0 * p.H, Cell::kHasC ? c_in + b0 * p.H : nullptr);
      cell_block<Cell>(p, ws, rows, tokens + b0);
      for (int64_t r = 0; r < rows; ++r) {
        ids[r] = row_offset + static_cast<uint32_t>(b0 + r);
        std::memcpy(h_out + (b0 + r) * p.H, ws.h(p, r), sizeof(float) * p.H);
        std::memcpy(c_out + (b0 + r) * p.H, ws.cell(p, r), sizeof(float) * p.H);
      }
      sample_block(p, ws, rows, seed, step, ids, stream, temperature, tok_out + b0);
    }
  }
}

inline void decode_core(const LSTMWeightsView& w, const int64_t* tokens, const float* h_in,
                        const float* c_in, int64_t B, uint64_t seed, uint32_t step,
                        uint32_t row_offset, uint32_t stream, float temperature,
                        int64_t* tok_out, float* h_out, float* c_out, int num_threads) {
  with_cell(w, [&](auto cell) {
    decode_impl<decltype(cell)>(w, tokens, h_in, c_in, B, seed, step, row_offset, stream,
                                temperature, tok_out, h_out, c_out, num_threads);
  });
}

// sample: out (B, T); positions < P copied from prefix (B, P) and fed to the cell,
// positions >= P drawn with Philox (step = position, row = row_offset + b, stream 0).
template <class Cell>
inline void sample_impl(const LSTMWeightsView& w, const int64_t* prefix, int64_t B, int64_t P,
                        int64_t T, int64_t start_token, uint64_t seed, uint32_t row_offset,
                        float temperature, int64_t* out, int num_threads, const float* h0,
                        const float* c0) {
  if (B <= 0 || T <= 0) return;
  const PackedRNN p(w);
  const int64_t R = rows_per_block(B, resolve_threads(num_threads));
  const int64_t nblocks = (B + R - 1) / R;
  const int nt = static_cast<int>(std::min<int64_t>(resolve_threads(num_threads), nblocks));
#pragma omp parallel num_threads(nt)
  {
    BlockWorkspace ws(p, kBlockRows);
    uint32_t ids[kBlockRows];
    int64_t tok[kBlockRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t b0 = blk * R, rows = std::min(R, B - b0);
      load_state(p, ws, rows, h0 ? h0 + b0 * p.H : nullptr,
                 Cell::kHasC && c0 ? c0 + b0 * p.H : nullptr);
      for (int64_t r = 0; r < rows; ++r) {
        ids[r] = row_offset + static_cast<uint32_t>(b0 + r);
        tok[r] = start_token;
      }
      for (int64_t s = 0; s < T; ++s) {
        cell_block<Cell>(p, ws, rows, tok);
        if (s < P) {
          for (int64_t r = 0; r < rows; ++r) tok[r] = prefix[(b0 + r) * P + s];
        } else {
          sample_block(p, ws, rows, seed, static_cast<uint32_t>(s), ids, 0u, temperature, tok);
        }
        for (int64_t r = 0; r < rows; ++r) out[(b0 + r) * T + s] = tok[r];
      }
    }
  }
}

inline void sample_core(const LSTMWeightsView& w, const int64_t* prefix, int64_t B, int64_t P,
                        int64_t T, int64_t start_token, uint64_t seed, uint32_t row_offset,
                        float temperature, int64_t* out, int num_threads,
                        const float* h0 = nullptr, const float* c0 = nullptr) {
  with_cell(w, [&](auto cell) {
    sample_impl<decltype(cell)>(w, prefix, B, P, T, start_token, seed, row_offset,
                                temperature, out, num_threads, h0, c0);
  });
}

// rollout: x (B, T) -> out (T-m, N, B, T) for the prefixes t >= m = min_prefix (1: all).
// Completion row r = ((t-1)*N + n)*B + b keeps x[b, :t] and samples positions s = t..T-1 with
// Philox (step s, row r, stream 1), starting from the state after the start token and
// x[b, :t] (one teacher-forced pass for all t, from the row's initial state h0, c0); it is
// stored at out row r - (m-1)*N*B, so skipping short prefixes changes no token. x may be rows
// batch_offset.. of a batch of batch_total rows (one rank's share; 0: x is the batch): the
// Philox row is then ((t-1)*N + n)*batch_total + batch_offset + b, the whole batch's.
template <class Cell>
inline void rollout_impl(const LSTMWeightsView& w, const int64_t* x, int64_t B, int64_t T,
                         int64_t N, int64_t start_token, uint64_t seed, float temperature,
                         int64_t* out, int num_threads, const float* h0, const float* c0,
                         int64_t min_prefix, int64_t batch_offset, int64_t batch_total) {
  const int64_t Btot = batch_total > 0 ? batch_total : B;
  if (B <= 0 || T - min_prefix < 1 || N <= 0) return;
  const PackedRNN p(w);
  const int64_t Hp = p.Hp;
  // prefix states: hp/cp[(t-1)*B + b] = state after start, x[b, 0..t-1], for t = 1..T-1
  std::vector<float> hp(static_cast<size_t>((T - 1) * B * Hp));
  std::vector<float> cp(Cell::kHasC ? hp.size() : 0);
  const int nt_all = resolve_threads(num_threads);
  const int64_t RB = rows_per_block(B, nt_all);
  const int64_t bblocks = (B + RB - 1) / RB;
  {
    const int nt = static_cast<int>(std::min<int64_t>(nt_all, bblocks));
#pragma omp parallel num_threads(nt)
    {
      BlockWorkspace ws(p, kBlockRows);
      int64_t tok[kBlockRows];
#pragma omp for schedule(dynamic, 1)
      for (int64_t blk = 0; blk < bblocks; ++blk) {
        const int64_t b0 = blk * RB, rows = std::min(RB, B - b0);
        load_state(p, ws, rows, h0 ? h0 + b0 * p.H : nullptr,
                   Cell::kHasC && c0 ? c0 + b0 * p.H : nullptr);
        for (int64_t r = 0; r < rows; ++r) tok[r] = start_token;
        for (int64_t t = 0; t < T; ++t) {  // input: start token at t = 0, else x[b, t-1]
          cell_block<Cell>(p, ws, rows, tok);
          for (int64_t r = 0; r < rows; ++r) {
            if (t > 0) {
              std::memcpy(&hp[((t - 1) * B + b0 + r) * Hp], ws.h(p, r), sizeof(float) * Hp);
              if (Cell::kHasC)
                std::memcpy(&cp[((t - 1) * B + b0 + r) * Hp], ws.cell(p, r),
                            sizeof(float) * Hp);
            }
            if (t < T - 1) tok[r] = x[(b0 + r) * T + t];
          }
        }
      }
    }
  }
  // completions: blocks never straddle two prefix lengths, so a block's rows all run
  // T - t steps; blocks of short prefixes (longest work) come first for dynamic balance.
  const int64_t NB = N * B;
  const int64_t per_t = (NB + kBlockRows - 1) / kBlockRows;
  const int64_t nblocks = (T - min_prefix) * per_t;
  const int64_t skipped = (min_prefix - 1) * NB;  // logical rows of the prefixes not computed
  const int nt = static_cast<int>(std::min<int64_t>(nt_all, nblocks));
#pragma omp parallel num_threads(nt)
  {
    BlockWorkspace ws(p, kBlockRows);
    uint32_t ids[kBlockRows];
    int64_t tok[kBlockRows];
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t t = blk / per_t + min_prefix;
      const int64_t i0 = (blk % per_t) * kBlockRows, rows = std::min(kBlockRows, NB - i0);
      const int64_t row0 = (t - 1) * NB + i0;  // the block's first row of this call
      int64_t* const o = out + (row0 - skipped) * T;  // the block's first row in out
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = (i0 + r) / B, b = (i0 + r) % B;
        ids[r] = static_cast<uint32_t>(((t - 1) * N + n) * Btot + batch_offset + b);
        std::memcpy(ws.h(p, r), &hp[((t - 1) * B + b) * Hp], sizeof(float) * Hp);
        if (Cell::kHasC)
          std::memcpy(ws.cell(p, r), &cp[((t - 1) * B + b) * Hp], sizeof(float) * Hp);
        std::memcpy(o + r * T, x + b * T, sizeof(int64_t) * t);
      }
      for (int64_t s = t; s < T; ++s) {
        sample_block(p, ws, rows, seed, static_cast<uint32_t>(s), ids, 1u, temperature, tok);
        for (int64_t r = 0; r < rows; ++r) o[r * T + s] = tok[r];
        if (s < T - 1) cell_block<Cell>(p, ws, rows, tok);
      }
    }
  }
}

inline void rollout_core(const LSTMWeightsView& w, const int64_t* x, int64_t B, int64_t T,
                         int64_t N, int64_t start_token, uint64_t seed, float temperature,
                         int64_t* out, int num_threads, const float* h0 = nullptr,
                         const float* c0 = nullptr, int64_t min_prefix = 1,
                         int64_t batch_offset = 0, int64_t batch_total = 0) {
  with_cell(w, [&](auto cell) {
    rollout_impl<decltype(cell)>(w, x, B, T, N, start_token, seed, temperature, out,
                                 num_threads, h0, c0, min_prefix, batch_offset, batch_total);
  });
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
