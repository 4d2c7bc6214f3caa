// Plain-pointer host launch functions of the fused CUDA kernels (torch-free).
//
// Every function validates nothing about tensors (the torch host launchers in csrc/cuda do),
// enqueues its kernels on `stream` and returns the launch status: no host synchronisation.
// Weights are fp32, torch LSTM or GRU layout (see seqgan_fast/ops/weights.py; `cell`). The kernels read the
// weights transposed (coalesced across threads), so each launch first writes transposed
// copies into `workspace` (a device buffer of the size the *_workspace_floats function gives).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace seqgan_cuda {

constexpr int kCellLSTM = 0, kCellGRU = 1;

struct LSTMWeightsView {
  const float* emb;    // (V, E)
  const float* w_ih;   // (4H, E) LSTM (i, f, g, o) | (3H, E) GRU (r, z, n)
  const float* w_hh;   // (4H, H) | (3H, H)
  const float* bias;   // (4H,)  LSTM: b_ih + b_hh; GRU: [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]
  const float* w_out;  // (V, H)
  const float* b_out;  // (V,)
  int V, E, H;
  int start_token;
  int cell = kCellLSTM;
};

// Floats of workspace for decode and sample: transposed cell and output weights (both cells
// pack 4 gate segments).
inline size_t weights_workspace_floats(int V, int E, int H) {
  return static_cast<size_t>(E + H) * 4 * H + static_cast<size_t>(H) * V;
}
// Rollout also keeps the prefix states (h_t, c_t), (T, B, H) each.
inline size_t rollout_workspace_floats(int V, int E, int H, int B, int T) {
  return weights_workspace_floats(V, E, H) + 2 * static_cast<size_t>(T) * B * H;
}

// tokens (B,), h, c (B, H) -> next (B,), h_out, c_out (B, H); Philox row row_offset + b.
cudaError_t launch_decode(const LSTMWeightsView& w, const int64_t* tokens, const float* h,
                          const float* c, int B, uint64_t seed, uint32_t step,
                          uint32_t row_offset, uint32_t stream_id, float temperature,
                          int64_t* next, float* h_out, float* c_out, float* workspace,
                          cudaStream_t stream);

// prefix (B, P) -> out (B, L); positions >= P drawn at Philox row row_offset + b, stream 0.
// h0, c0 (B, H): the rows' initial states (nullptr: zeros; a GRU ignores c0).
cudaError_t launch_sample(const LSTMWeightsView& w, const int64_t* prefix, int B, int P, int L,
                          uint64_t seed, uint32_t row_offset, float temperature, int64_t* out,
                          float* workspace, cudaStream_t stream, const float* h0 = nullptr,
                          const float* c0 = nullptr);

// x (B, T) -> out (T-min_prefix, N, B, T): the logical rows r = ((t-1)*N + n)*B + b of the
// prefixes t >= min_prefix (output row r - (min_prefix-1)*N*B), stream 1; the prefix pass
// starts from h0, c0 (B, H) (nullptr: zeros).
cudaError_t launch_rollout(const LSTMWeightsView& w, const int64_t* x, int B, int T, int N,
                           uint64_t seed, float temperature, int64_t* out, float* workspace,
                           cudaStream_t stream, const float* h0 = nullptr,
                           const float* c0 = nullptr, int min_prefix = 1);

}  // namespace seqgan_cuda
