// decode: one fused generator step (embedding, LSTM or GRU cell, projection, exact sample)
// for B rows (a GRU ignores c_in and writes c_out = 0); one block owns kRows rows. See common.cuh for the block geometry.
#include "common.cuh"

namespace seqgan_cuda {
namespace {

template <int CELL>
__global__ void __launch_bounds__(kThreads)
decode_kernel(LSTMWeightsView w, const int64_t* __restrict__ tokens,
              const float* __restrict__ h_in, const float* __restrict__ c_in, int B,
              uint64_t seed, uint32_t step, uint32_t row_offset, uint32_t stream_id,
              float temperature, int64_t* __restrict__ next, float* __restrict__ h_out,
              float* __restrict__ c_out, const float* __restrict__ wcat,
              const float* __restrict__ woutT, bool staged) {
  extern __shared__ __align__(16) unsigned char smem[];
  const BlockState s = block_state(smem, wcat, w.E, w.H, staged);
  const int H = w.H;
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * kRows;
  for (int r = threadIdx.x; r < kRows; r += blockDim.x) {
    const bool valid = b0 + r < B;
    s.active[r] = valid;
    s.tok[r] = valid ? tokens[b0 + r] : 0;
  }
  for (int p = threadIdx.x; p < kRows * H; p += blockDim.x) {
    const int64_t b = b0 + p / H;
    const bool valid = b < B;
    s.h[0][p] = valid ? h_in[b0 * H + p] : 0.0f;
    s.c[p] = valid && CELL != kCellGRU ? c_in[b0 * H + p] : 0.0f;
  }
  __syncthreads();
  embed_rows(s, w.emb, w.E);
  __syncthreads();
  cell_rows<CELL>(s, 0, w.bias, w.E, H);
  __syncthreads();
  sample_rows(s, s.h[1], woutT, w.b_out, w.V, H, temperature, seed, step,
              static_cast<uint64_t>(row_offset) + b0, stream_id);
  __syncthreads();
  for (int r = threadIdx.x; r < kRows; r += blockDim.x)
    if (b0 + r < B) next[b0 + r] = s.tok[r];
  for (int p = threadIdx.x; p < kRows * H; p += blockDim.x) {
    if (b0 + p / H < B) {
      h_out[b0 * H + p] = s.h[1][p];
      c_out[b0 * H + p] = s.c[p];
    }
  }
}

}  // namespace

cudaError_t launch_decode(const LSTMWeightsView& w, const int64_t* tokens, const float* h,
                          const float* c, int B, uint64_t seed, uint32_t step,
                          uint32_t row_offset, uint32_t stream_id, float temperature,
                          int64_t* next, float* h_out, float* c_out, float* workspace,
                          cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  PreparedWeights p;
  cudaError_t err = prepare_weights(w, workspace, stream, &p);
  if (err != cudaSuccess) return err;
  return with_cell(w.cell, [&](auto cell) {
    return launch_rows(decode_kernel<decltype(cell)::value>, B, p, stream, w, tokens, h, c, B,
                       seed, step, row_offset, stream_id, temperature, next, h_out, c_out,
                       p.wcat, p.woutT, p.staged);
  });
}

}  // namespace seqgan_cuda
