// sample: whole sequences in one launch, persistent over the steps: one block owns kRows rows
// for all L positions, h and c stay in shared memory, logits only in registers. Templated on
// the cell (common.cuh cell_rows); rows start from h0, c0 (or zeros).
#include "common.cuh"

namespace seqgan_cuda {
namespace {

template <int CELL>
__global__ void __launch_bounds__(kThreads)
sample_kernel(LSTMWeightsView w, const int64_t* __restrict__ prefix, int B, int P, int L,
              uint64_t seed, uint32_t row_offset, float temperature,
              int64_t* __restrict__ out, const float* __restrict__ wcat,
              const float* __restrict__ woutT, bool staged, const float* __restrict__ h0,
              const float* __restrict__ c0) {
  extern __shared__ __align__(16) unsigned char smem[];
  const BlockState s = block_state(smem, wcat, w.E, w.H, staged);
  const int H = w.H;
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * kRows;
  start_rows(s, b0, B, w.start_token, H, h0, CELL == kCellGRU ? nullptr : c0);
  int cur = 0;
  for (int step = 0; step < L; ++step) {
    // position `step` consumes the token before it (the start token at 0)
    embed_rows(s, w.emb, w.E);
    __syncthreads();
    cell_rows<CELL>(s, cur, w.bias, w.E, H);
    cur ^= 1;
    __syncthreads();
    if (step < P) {
      for (int r = threadIdx.x; r < kRows; r += blockDim.x)
        if (s.active[r]) s.tok[r] = prefix[(b0 + r) * P + step];
    } else {
      sample_rows(s, s.h[cur], woutT, w.b_out, w.V, H, temperature, seed,
                  static_cast<uint32_t>(step), static_cast<uint64_t>(row_offset) + b0, 0u);
    }
    __syncthreads();
    for (int r = threadIdx.x; r < kRows; r += blockDim.x)
      if (s.active[r]) out[(b0 + r) * L + step] = s.tok[r];
  }
}

}  // namespace

cudaError_t launch_sample(const LSTMWeightsView& w, const int64_t* prefix, int B, int P, int L,
                          uint64_t seed, uint32_t row_offset, float temperature, int64_t* out,
                          float* workspace, cudaStream_t stream, const float* h0,
                          const float* c0) {
  if (B == 0 || L == 0) return cudaSuccess;
  PreparedWeights p;
  cudaError_t err = prepare_weights(w, workspace, stream, &p);
  if (err != cudaSuccess) return err;
  return with_cell(w.cell, [&](auto cell) {
    return launch_rows(sample_kernel<decltype(cell)::value>, B, p, stream, w, prefix, B, P, L,
                       seed, row_offset, temperature, out, p.wcat, p.woutT, p.staged, h0, c0);
  });
}

}  // namespace seqgan_cuda
