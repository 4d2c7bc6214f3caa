// The ISA-independent face of the fused CPU core: the weights view the ops are given, and
// the table of entry points that each per-ISA copy of the core fills in (csrc/cpu/kernels_*).
// Torch-free: the extension's ops and the ctest binaries both use it.
#pragma once

#include <cstdint>

namespace seqgan {

// The generator's cell (seqgan_fast/ops/weights.py CELL_IDS).
constexpr int kCellLSTM = 0, kCellGRU = 1;

// Borrowed pointers to the generator's weights (fp32, contiguous, torch layout):
// emb (V,E), w_ih (G*H,E), w_hh (G*H,H), bias (4H), w_out (V,H), b_out (V), with
//   LSTM: G = 4, gate order i, f, g, o; bias = b_ih + b_hh;
//   GRU:  G = 3, gate order r, z, n;    bias = [b_ir + b_hr, b_iz + b_hz, b_in, b_hn].
struct LSTMWeightsView {
  const float* emb;
  const float* w_ih;
  const float* w_hh;
  const float* bias;
  const float* w_out;
  const float* b_out;
  int64_t V, E, H;
  int cell = kCellLSTM;
};

// The discriminator's first layer folded into a table (csrc/common/score.h): filter group g
// has width[g] and filters[g] filters, padded to fpad[g] (a multiple of 16) columns at offset
// off[g] + o*fpad[g] of a token's table row (offset o < width[g]) and at fpoff[g] of the
// padded bias vector (fp_total floats).
struct ConvTableView {
  const float* table;  // (V, Kp)
  const float* bias;   // (fp_total)
  const int64_t* width;
  const int64_t* filters;
  const int64_t* fpad;
  const int64_t* off;
  const int64_t* fpoff;
  int64_t groups, V, Kp, fp_total;
};

// Rows to pool (csrc/common/score.h): M rows of tokens (row stride T) from logical row row0;
// prefix_x (B, T), when set, makes them rollout completions (row ((t-1)*N + n)*B + b equals
// prefix_x[b] before t), else they are scored whole; then M_extra rows of extra, scored
// whole. pooled: (M + M_extra, sum(filters)), the extra rows last.
struct ScoreRowsView {
  const int64_t* tokens;
  int64_t row0, M, T;
  const int64_t* prefix_x;
  int64_t N, B;
  const int64_t* extra;
  int64_t M_extra;
  float* pooled;
};

// Op score_fold_pool: the same pooling without the whole table. Pass by pass (one group's
// block of columns), the pass's slice of the table, emb (V, E) . the pass's columns of w_all
// (E, Kp; column off[g] + o*fpad[g] + c of w_all makes the table's), is computed into
// scratch and pooled from cache. conv.table is unused.
struct ScoreFoldView {
  ConvTableView conv;
  const float* emb;    // (V, E)
  const float* w_all;  // (E, Kp)
  int64_t E;
  int64_t pass_bytes;  // a pass's slice is at most this, or one 16-column block if larger
  float* scratch;      // score_fold_scratch_floats(conv, E, pass_bytes) floats
};

// Columns per pass of group g (width k, fpad padded filters) over V tokens: the largest
// multiple of 16 whose V x k slice fits pass_bytes, at least 16, at most fpad.
inline int64_t score_pass_columns(int64_t V, int64_t k, int64_t fpad, int64_t pass_bytes) {
  int64_t cw = pass_bytes / (4 * V * k) / 16 * 16;
  if (cw < 16) cw = 16;
  return cw < fpad ? cw : fpad;
}

// Scratch of score_fold_pool: the largest pass's slice (V x k x cw) and its packed weight
// columns (E x k x cw).
inline int64_t score_fold_scratch_floats(const ConvTableView& d, int64_t E,
                                         int64_t pass_bytes) {
  int64_t most = 0;
  for (int64_t g = 0; g < d.groups; ++g) {
    const int64_t k = d.width[g], cw = score_pass_columns(d.V, k, d.fpad[g], pass_bytes);
    const int64_t need = (d.V + E) * k * cw;
    most = need > most ? need : most;
  }
  return most;
}

// The convolution + ReLU + max-pool backward (csrc/common/dpool.h): for group g, weight[g]
// (filters[g], E, width[g]) and grad_weight[g] of that shape (Conv1d layout); emb (B, T, E)
// the embedded rows, grad and argmax (B, F) with F = sum(filters) (grad already masked by
// max > 0), grad_emb (B, T, E).
struct ConvPoolGradView {
  const float* const* weight;
  const int64_t* width;
  const int64_t* filters;
  int64_t groups, B, T, E;
  const float* emb;
  const float* grad;
  const int64_t* argmax;
  float* grad_emb;
  float* const* grad_weight;
  float* const* grad_bias;  // per group (F_g): sum over rows of grad, rows in order
};

// The discriminator's convolution + ReLU + max-pool forward for training (op
// `conv_pool_forward`, csrc/common/dconv.h): embedded rows emb (B, T, E), weight[g] (F_g, E,
// k_g) in Conv1d layout and bias[g] (F_g) per width -> values (B, F) = relu(max over
// windows) and argmax (B, F), the first maximum's window start.
struct ConvPoolFwdView {
  const float* const* weight;
  const float* const* bias;
  const int64_t* width;
  const int64_t* filters;
  int64_t groups, B, T, E;
  const float* emb;
  float* values;
  int64_t* argmax;
};

// C (R x N) = init + A (R x K) . B (K x N), row-major with row strides (op `gemm_nn`,
// csrc/common/gemm_nn.h); init = C when `accumulate`, else row_bias[r] or col_bias[c] (at most
// one of them; nullptr: 0).
struct GemmNNView {
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
  int64_t R, K, N;
  const float* row_bias;
  bool accumulate;
  const float* col_bias = nullptr;
};

// The discriminator's highway + output layer for scoring (op `highway_logits`,
// csrc/common/highway_head.h): x (M, F) pooled features, wh_t and wt_t (F, F) the transposed
// highway weights with biases bh, bt (F), wo (C, F) and bo (C) the output layer; logits (M, C)
// out.
struct HighwayHeadView {
  const float* x;
  const float* wh_t;
  const float* bh;
  const float* wt_t;
  const float* bt;
  const float* wo;
  const float* bo;
  int64_t M, F, C;
  float* logits;
};

// The output layer + log-softmax + NLL of one target per row (op `linear_nll`,
// csrc/common/lnll.h): h (N, H), weight (V, H), bias (V), target (N) in [0, V); nll (N) out.
// row_weight (N) or nullptr (forward only); with it, the gradients of sum_r w_r nll_r:
// grad_h (N, H), grad_weight (V, H), grad_bias (V).
struct LinearNLLView {
  const float* h;
  const float* weight;
  const float* bias;
  const int64_t* target;
  const float* row_weight;
  int64_t N, H, V;
  float* nll;
  float* grad_h;
  float* grad_weight;
  float* grad_bias;
};

// Entry points of one compiled copy of csrc/common/generate.h (argument meaning there).
// h0, c0 (B, H): per-row initial states; nullptr = zeros (c0 is unused by a GRU).
struct CoreKernels {
  const char* isa;  // "avx512", "avx2" or "baseline"
  void (*decode)(const LSTMWeightsView& w, const int64_t* tokens, const float* h_in,
                 const float* c_in, int64_t B, uint64_t seed, uint32_t step,
                 uint32_t row_offset, uint32_t stream, float temperature, int64_t* tok_out,
                 float* h_out, float* c_out, int num_threads);
  void (*sample)(const LSTMWeightsView& w, const int64_t* prefix, int64_t B, int64_t P,
                 int64_t T, int64_t start_token, uint64_t seed, uint32_t row_offset,
                 float temperature, int64_t* out, int num_threads, const float* h0,
                 const float* c0);
  void (*rollout)(const LSTMWeightsView& w, const int64_t* x, int64_t B, int64_t T, int64_t N,
                  int64_t start_token, uint64_t seed, float temperature, int64_t* out,
                  int num_threads, const float* h0, const float* c0, int64_t min_prefix,
                  int64_t batch_offset, int64_t batch_total);
  void (*score_pool)(const ConvTableView& d, const ScoreRowsView& rows, int num_threads);
  void (*score_fold_pool)(const ScoreFoldView& v, const ScoreRowsView& rows, int num_threads);
  void (*conv_pool_backward)(const ConvPoolGradView& v, int num_threads);
  void (*gemm_nn)(const GemmNNView& g, int num_threads);
  void (*conv_pool_forward)(const ConvPoolFwdView& v, int num_threads);
  void (*linear_nll)(const LinearNLLView& v, int num_threads);
  int64_t (*first_non_finite)(const float* const* arrays, const int64_t* sizes, int64_t n,
                              int num_threads);
  void (*highway_head)(const HighwayHeadView& v, int num_threads);
};

// The copies linked into this binary (csrc/cpu/kernels_*.cpp); on other CPUs than x86-64
// only the baseline one exists and the others are null.
namespace avx512 { extern const CoreKernels* const kTable; }
namespace avx2 { extern const CoreKernels* const kTable; }
namespace baseline { extern const CoreKernels* const kTable; }

// score_fold_pool's per-thread scratch (csrc/cpu/score.cpp): bytes the calling thread holds,
// and freeing them.
int64_t score_workspace_bytes();
void score_release_workspace();

// Run-time choice (csrc/cpu/isa.cpp). Paths are ordered baseline < avx2 < avx512.
int isa_rank(const char* name);           // 0, 1, 2; -1 for an unknown name
const char* best_supported_isa();         // by CPUID (and the OS's register-state support)
// The path in use: SEQGAN_FAST_ISA (avx512|avx2|baseline|auto) at first use, else the best
// supported. Returns nullptr and sets *error when the variable names an unknown path or one
// this CPU cannot run.
const CoreKernels* active_kernels(const char** error);
// Forces a path for the rest of the process ("auto" = the best supported). Returns the
// previous path's name, or nullptr with *error set (the active path then stays unchanged).
const char* set_active_isa(const char* name, const char** error);

}  // namespace seqgan
