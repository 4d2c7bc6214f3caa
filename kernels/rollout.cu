// rollout (DESIGN §5): the (T-min_prefix)*N*B completions of x (B, T) of the prefixes
// t >= min_prefix (output row r - (min_prefix-1)*N*B for logical row r) in two launches (plus the weight
// transpose), no host synchronisation.
//   prefix_kernel:  one teacher-forced pass from the rows' initial states (h0, c0 or zeros),
//                   (h_t, c_t) for every prefix length t: O(B*T) (a GRU keeps no c_t).
// Both kernels are templated on the cell (common.cuh cell_rows).
//   rollout_kernel: persistent; a block owns kRows logical rows r = ((t-1)*N + n)*B + b for
//                   all their steps: copies x[b, :t], starts from (h_t, c_t) and decodes
//                   positions t..T-1 with the state in shared memory and logits in registers.
// Rows are ordered by t, so a block's rows nearly always share t; a row with a later t joins
// the block's loop at its own step (inactive before). Blocks with small t (most work) come
// first in launch order.
#include "common.cuh"

namespace seqgan_cuda {
namespace {

template <int CELL>
__global__ void __launch_bounds__(kThreads)
prefix_kernel(LSTMWeightsView w, const int64_t* __restrict__ x, int B, int T,
              float* __restrict__ hs, float* __restrict__ cs, const float* __restrict__ wcat,
              bool staged, const float* __restrict__ h0, const float* __restrict__ c0) {
  extern __shared__ __align__(16) unsigned char smem[];
  const BlockState s = block_state(smem, wcat, w.E, w.H, staged);
  const int H = w.H;
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * kRows;
  start_rows(s, b0, B, w.start_token, H, h0, CELL == kCellGRU ? nullptr : c0);
  int cur = 0;
  for (int t = 0; t < T; ++t) {
    embed_rows(s, w.emb, w.E);
    __syncthreads();
    cell_rows<CELL>(s, cur, w.bias, w.E, H);
    cur ^= 1;
    __syncthreads();
    for (int p = threadIdx.x; p < kRows * H; p += blockDim.x) {
      if (b0 + p / H < B) {
        const size_t o = (static_cast<size_t>(t) * B + b0) * H + p;
        hs[o] = s.h[cur][p];
        if (CELL != kCellGRU) cs[o] = s.c[p];
      }
    }
    for (int r = threadIdx.x; r < kRows; r += blockDim.x)
      if (s.active[r]) s.tok[r] = x[(b0 + r) * T + t];
    __syncthreads();
  }
}

template <int CELL>
__global__ void __launch_bounds__(kThreads)
rollout_kernel(LSTMWeightsView w, const int64_t* __restrict__ x, int B, int T, int N,
               int64_t R0, int64_t R, uint64_t seed, float temperature, const float* __restrict__ hs,
               const float* __restrict__ cs, int64_t* __restrict__ out,
               const float* __restrict__ wcat, const float* __restrict__ woutT, bool staged) {
  extern __shared__ __align__(16) unsigned char smem[];
  const BlockState s = block_state(smem, wcat, w.E, w.H, staged);
  const int H = w.H;
  const int64_t NB = static_cast<int64_t>(N) * B;
  const int64_t r0 = R0 + static_cast<int64_t>(blockIdx.x) * kRows;  // logical rows R0..R-1
  // prefix copy and initial state; s.tok holds each row's start step t until the loop
  for (int p = threadIdx.x; p < kRows * H; p += blockDim.x) {
    const int64_t r = r0 + p / H;
    float hv = 0.0f, cv = 0.0f;
    if (r < R) {
      const int64_t t = r / NB + 1, b = r % B;
      const size_t o = (static_cast<size_t>(t) * B + b) * H + p % H;
      hv = hs[o];
      cv = CELL == kCellGRU ? 0.0f : cs[o];
    }
    s.h[0][p] = hv;
    s.c[p] = cv;
  }
  for (int p = threadIdx.x; p < kRows * T; p += blockDim.x) {
    const int64_t r = r0 + p / T;
    const int pos = p % T;
    if (r < R && pos < r / NB + 1) out[(r - R0) * T + pos] = x[(r % B) * T + pos];
  }
  __shared__ int t_row[kRows];
  for (int q = threadIdx.x; q < kRows; q += blockDim.x) {
    const int64_t r = r0 + q;
    t_row[q] = r < R ? static_cast<int>(r / NB + 1) : T;  // T: never active
  }
  __syncthreads();
  const int t_first = static_cast<int>(r0 / NB + 1);
  int cur = 0;
  for (int step = t_first; step < T; ++step) {
    for (int q = threadIdx.x; q < kRows; q += blockDim.x) s.active[q] = step >= t_row[q];
    __syncthreads();
    sample_rows(s, s.h[cur], woutT, w.b_out, w.V, H, temperature, seed,
                static_cast<uint32_t>(step), static_cast<uint64_t>(r0), 1u);
    __syncthreads();
    for (int q = threadIdx.x; q < kRows; q += blockDim.x)
      if (s.active[q]) out[(r0 + q - R0) * T + step] = s.tok[q];
    if (step == T - 1) break;
    embed_rows(s, w.emb, w.E);
    __syncthreads();
    cell_rows<CELL>(s, cur, w.bias, w.E, H);
    cur ^= 1;
    __syncthreads();
  }
}

}  // namespace

cudaError_t launch_rollout(const LSTMWeightsView& w, const int64_t* x, int B, int T, int N,
                           uint64_t seed, float temperature, int64_t* out, float* workspace,
                           cudaStream_t stream, const float* h0, const float* c0,
                           int min_prefix) {
  const int64_t R = static_cast<int64_t>(T - 1) * N * B;
  const int64_t R0 = static_cast<int64_t>(min_prefix - 1) * N * B;
  if (R - R0 <= 0) return cudaSuccess;
  PreparedWeights p;
  cudaError_t err = prepare_weights(w, workspace, stream, &p);
  if (err != cudaSuccess) return err;
  float* hs = p.woutT + static_cast<size_t>(w.H) * w.V;
  float* cs = hs + static_cast<size_t>(T) * B * w.H;
  return with_cell(w.cell, [&](auto cell) {
    constexpr int C = decltype(cell)::value;
    cudaError_t e = launch_rows(prefix_kernel<C>, B, p, stream, w, x, B, T, hs, cs, p.wcat,
                                p.staged, h0, c0);
    if (e != cudaSuccess) return e;
    return launch_rows(rollout_kernel<C>, R - R0, p, stream, w, x, B, T, N, R0, R, seed,
                       temperature, hs, cs, out, p.wcat, p.woutT, p.staged);
  });
}

}  // namespace seqgan_cuda
