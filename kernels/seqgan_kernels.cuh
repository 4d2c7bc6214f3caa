// Plain-pointer host launch functions of the fused CUDA kernels (torch-free).
//
// Every function validates nothing about tensors (the torch host launchers in csrc/cuda do),
// enqueues its kernels on `stream` and returns the launch status: no host synchronisation.
// Weights are fp32, torch LSTM layout (see seqgan_fast/ops/weights.py). The kernels read the
// weights transposed (coalesced across threads), so each launch first writes transposed
// copies into `workspace` (a device buffer of the size the *_workspace_floats function gives).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace seqgan_cuda {

struct LstmWeightsView {
  const float* emb;    // (V, E)
  const float* w_ih;   // (4H, E)
  const float* w_hh;   // (4H, H)
  const float* bias;   // (4H,)  b_ih + b_hh
  const float* w_out;  // (V, H)
  const float* b_out;  // (V,)
  int V, E, H;
  int start_token;
};

// Floats of workspace for decode and sample: transposed LSTM and output weights.
inline size_t weights_workspace_floats(int V, int E, int H) {
  return static_cast<size_t>(E + H) * 4 * H + static_cast<size_t>(H) * V;
}
// Rollout also keeps the prefix states (h_t, c_t), (T, B, H) each.
inline size_t rollout_workspace_floats(int V, int E, int H, int B, int T) {
  return weights_workspace_floats(V, E, H) + 2 * static_cast<size_t>(T) * B * H;
}

// tokens (B,), h, c (B, H) -> next (B,), h_out, c_out (B, H); Philox row row_offset + b.
cudaError_t launch_decode(const LstmWeightsView& w, const int64_t* tokens, const float* h,
                          const float* c, int B, uint64_t seed, uint32_t step,
                          uint32_t row_offset, uint32_t stream_id, float temperature,
                          int64_t* next, float* h_out, float* c_out, float* workspace,
                          cudaStream_t stream);

// prefix (B, P) -> out (B, L); positions >= P drawn at Philox row row_offset + b, stream 0.
cudaError_t launch_sample(const LstmWeightsView& w, const int64_t* prefix, int B, int P, int L,
                          uint64_t seed, uint32_t row_offset, float temperature, int64_t* out,
                          float* workspace, cudaStream_t stream);

// x (B, T) -> out (T-1, N, B, T): row r = ((t-1)*N + n)*B + b, stream 1.
cudaError_t launch_rollout(const LstmWeightsView& w, const int64_t* x, int B, int T, int N,
                           uint64_t seed, float temperature, int64_t* out, float* workspace,
                           cudaStream_t stream);

}  // namespace seqgan_cuda
