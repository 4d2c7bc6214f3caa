// The generator's recurrent cell packed for the fused kernels, and one cell step for a block
// of rows. Two cells behind one abstraction: LstmCell (torch gate order i, f, g, o) and
// GruCell (torch's nn.GRU: r, z, n). Both pack into the same (E + Hp) -> 4*Hp gate GEMM, so
// everything but the few element-wise lines of Cell::update is shared:
//   LSTM segments: [i | f | g | o], each W_ih x + W_hh h + b;
//   GRU segments:  [r | z | W_in x + b_in | W_hn h + b_hn] (r, z: W_i x + W_h h + b), since
//                  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) needs the two n halves apart.
// The GEMM reads h before update() overwrites it in place.
#pragma once

#include "isa.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "api.h"
#include "gemm.h"
#include "sampler.h"
#include "vec.h"

namespace seqgan {
namespace SEQGAN_ISA {


// Which torch gate block feeds each of the 4 packed segments, from x (w_ih) and from h
// (w_hh); -1: none (zero weights).
constexpr int kLstmXBlock[4] = {0, 1, 2, 3}, kLstmHBlock[4] = {0, 1, 2, 3};
constexpr int kGruXBlock[4] = {0, 1, 2, -1}, kGruHBlock[4] = {0, 1, -1, 2};

// Weights repacked once per call. Per-row vectors: xin = [emb(token) (E) | h (Hp)] with
// Hp = H rounded up to 16 (padding lanes stay exactly 0); gates laid out as 4 segments of Hp
// so every gate slice is whole vectors.
struct PackedRNN {
  const float* emb = nullptr;
  int64_t V = 0, E = 0, H = 0, Hp = 0, Kx = 0, G = 0, tiles = 0;
  int cell = kCellLSTM;
  std::vector<float> gate_panels, gate_bias;  // (E + Hp) -> 4 * Hp
  std::vector<float> out_panels, out_bias;    // Hp -> tiles * 256; padding bias -inf

  explicit PackedRNN(const LSTMWeightsView& w)
      : emb(w.emb), V(w.V), E(w.E), H(w.H), Hp((w.H + kLanes - 1) / kLanes * kLanes),
        Kx(w.E + Hp), G(4 * Hp), tiles(num_tiles(w.V)), cell(w.cell) {
    // gates: input column k < E from w_ih, E <= k < E + H from w_hh, then zero rows
    const int* xblock = cell == kCellGRU ? kGruXBlock : kLstmXBlock;
    const int* hblock = cell == kCellGRU ? kGruHBlock : kLstmHBlock;
    std::vector<float> wcat(static_cast<size_t>(4 * H * Kx), 0.0f);
    for (int64_t seg = 0; seg < 4; ++seg) {
      for (int64_t i = 0; i < H; ++i) {
        const int64_t g = seg * H + i;
        if (xblock[seg] >= 0)
          std::memcpy(&wcat[g * Kx], w.w_ih + (xblock[seg] * H + i) * E, sizeof(float) * E);
        if (hblock[seg] >= 0)
          std::memcpy(&wcat[g * Kx + E], w.w_hh + (hblock[seg] * H + i) * H,
                      sizeof(float) * H);
      }
    }
    std::vector<int64_t> src(static_cast<size_t>(G), -1);
    gate_bias.assign(static_cast<size_t>(G), 0.0f);
    for (int64_t gate = 0; gate < 4; ++gate) {
      for (int64_t i = 0; i < H; ++i) {
        src[gate * Hp + i] = gate * H + i;
        gate_bias[gate * Hp + i] = w.bias[gate * H + i];
      }
    }
    pack_panels(wcat.data(), Kx, Kx, Kx, src, gate_panels);
    std::vector<int64_t> vsrc(static_cast<size_t>(tiles * kTile), -1);
    out_bias.assign(static_cast<size_t>(tiles * kTile), -std::numeric_limits<float>::infinity());
    for (int64_t v = 0; v < V; ++v) {
      vsrc[v] = v;
      out_bias[v] = w.b_out[v];
    }
    pack_panels(w.w_out, H, H, Hp, vsrc, out_panels);
  }
  int64_t gate_npanels() const { return G / kPanel + (G % kPanel != 0); }
};
using PackedLSTM = PackedRNN;

// Per-block scratch for up to `rows` rows; allocated once per thread, reused every step.
struct BlockWorkspace {
  int64_t rows;
  std::vector<float> xin, gates, c, logits, best, u0, gumbel, best_S, best_score;
  std::vector<int64_t> best_j;
  std::vector<float> tile_m, tile_bound;  // per row: a tile's max and its sum's bound (log)
  BlockWorkspace(const PackedRNN& p, int64_t rows_)
      : rows(rows_),
        xin(static_cast<size_t>(rows_ * p.Kx), 0.0f),
        gates(static_cast<size_t>(rows_ * (p.gate_npanels() * kPanel)), 0.0f),
        c(static_cast<size_t>(rows_ * p.Hp), 0.0f),
        logits(static_cast<size_t>(rows_ * kTile)),
        best(static_cast<size_t>(rows_ * kTile)),
        u0(static_cast<size_t>(rows_ * noise_len(p.tiles))),
        gumbel(static_cast<size_t>(rows_ * noise_len(p.tiles))),
        best_S(static_cast<size_t>(rows_)),
        best_score(static_cast<size_t>(rows_)),
        best_j(static_cast<size_t>(rows_)),
        tile_m(static_cast<size_t>(round_rows(rows_))),
        tile_bound(static_cast<size_t>(round_rows(rows_)), 1.0f) {}
  static int64_t round_rows(int64_t rows) { return (rows + kLanes - 1) / kLanes * kLanes; }
  float* h(const PackedRNN& p, int64_t r) { return xin.data() + r * p.Kx + p.E; }
  float* cell(const PackedRNN& p, int64_t r) { return c.data() + r * p.Hp; }
  // Number of bytes held (for the documented memory bound).
  static int64_t bytes(const PackedRNN& p, int64_t rows) {
    const int64_t gcols = p.gate_npanels() * kPanel;
    return 4 * rows * (p.Kx + gcols + p.Hp + 2 * kTile + 2 * noise_len(p.tiles) + 2) + 8 * rows +
           8 * round_rows(rows);
  }
};

// Loads h, c (H floats each, row stride H) of `rows` rows into the workspace (padding 0).
inline void load_state(const PackedRNN& p, BlockWorkspace& ws, int64_t rows, const float* h,
                       const float* c) {
  for (int64_t r = 0; r < rows; ++r) {
    float* hr = ws.h(p, r);
    float* cr = ws.cell(p, r);
    std::memset(hr, 0, sizeof(float) * p.Hp);
    std::memset(cr, 0, sizeof(float) * p.Hp);
    if (h) std::memcpy(hr, h + r * p.H, sizeof(float) * p.H);
    if (c) std::memcpy(cr, c + r * p.H, sizeof(float) * p.H);
  }
}

// The element-wise half of a step: gates (4 segments of Hp, see above) and the row's h (and
// c) -> the new h (and c), in place. Padding lanes: gates 0, h = c = 0 stay 0 in both cells.
struct LstmCell {
  static constexpr bool kHasC = true;
  // c = s(f) c + s(i) tanh(g); h = s(o) tanh(c)
  static void update(const float* gr, int64_t Hp, float* hr, float* cr) {
    for (int64_t i = 0; i < Hp; i += kLanes) {
      const v16 ig = vsigmoid(vload(gr + i));
      const v16 fg = vsigmoid(vload(gr + Hp + i));
      const v16 gg = vtanh(vload(gr + 2 * Hp + i));
      const v16 og = vsigmoid(vload(gr + 3 * Hp + i));
      const v16 cn = fg * vload(cr + i) + ig * gg;  // ISO C++: two roundings, as torch does
      vstore(cr + i, cn);
      vstore(hr + i, og * vtanh(cn));
    }
  }
};

struct GruCell {
  static constexpr bool kHasC = false;
  // r = s(.), z = s(.); n = tanh(gx_n + r * gh_n); h = (1 - z) n + z h (torch's order)
  static void update(const float* gr, int64_t Hp, float* hr, float* /*cr*/) {
    const v16 one = vset1(1.0f);
    for (int64_t i = 0; i < Hp; i += kLanes) {
      const v16 rg = vsigmoid(vload(gr + i));
      const v16 zg = vsigmoid(vload(gr + Hp + i));
      const v16 ng = vtanh(vload(gr + 2 * Hp + i) + rg * vload(gr + 3 * Hp + i));
      vstore(hr + i, (one - zg) * ng + zg * vload(hr + i));
    }
  }
};

// One cell step for `rows` rows fed tokens[r] (ids already validated in [0, V)):
// gates = bias + W_x emb + W_h h (one GEMM), then Cell::update per row.
template <class Cell>
inline void cell_block(const PackedRNN& p, BlockWorkspace& ws, int64_t rows,
                       const int64_t* tokens) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(ws.xin.data() + r * p.Kx, p.emb + tokens[r] * p.E, sizeof(float) * p.E);
  const int64_t ldg = p.gate_npanels() * kPanel;
  gemm_panels(ws.xin.data(), p.Kx, rows, p.gate_panels.data(), p.gate_npanels(),
              p.gate_bias.data(), p.Kx, ws.gates.data(), ldg);
  for (int64_t r = 0; r < rows; ++r)
    Cell::update(ws.gates.data() + r * ldg, p.Hp, ws.h(p, r), ws.cell(p, r));
}

inline void lstm_block(const PackedRNN& p, BlockWorkspace& ws, int64_t rows,
                       const int64_t* tokens) {
  cell_block<LstmCell>(p, ws, rows, tokens);
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
