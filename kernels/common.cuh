// Device code shared by the fused CUDA kernels: Philox4x32-10 and the uniform map (DESIGN §4),
// the recurrent cell (LSTM or GRU: cell_rows<CELL>) for a block of rows, and the canonical
// tile sampler fused with the output
// projection. Torch-free; include only from kernels/*.cu.
//
// Block geometry: kWarps warps, each owning kRowsPerWarp rows, so a block owns kRows rows.
// Shared memory holds the rows' state (h double-buffered, c, the input embedding, tokens and
// an activity flag) and, where it fits, the transposed LSTM weights. Logits exist only in
// registers: lane l of a warp computes vocabulary entries j*256 + i*32 + l (i < 8) of tile j
// for the warp's rows, then the warp reduces (max, scan, count) with shuffles.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "seqgan_kernels.cuh"

namespace seqgan_cuda {

constexpr int kTile = 256;
constexpr int kWarp = 32;
constexpr int kPerLane = kTile / kWarp;  // 8 vocabulary entries per lane and tile
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 4;
constexpr int kRows = kWarps * kRowsPerWarp;  // rows per block
constexpr int kThreads = kWarps * kWarp;
constexpr float kUniformScale = 4.6566127342e-10f;
constexpr float kGumbelFloor = 1e-20f;
// Stage the transposed LSTM weights in shared memory up to this size (paper size: 32 KiB).
constexpr size_t kStageBytes = 96 * 1024;

// ---------------------------------------------------------------- random numbers
struct Uniform2 {
  float u0, u1;
};

__device__ __forceinline__ Uniform2 philox_uniforms(uint64_t seed, uint32_t c0, uint32_t c1,
                                                    uint32_t c2, uint32_t c3) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  auto to_uniform = [](uint32_t word) {
    int32_t x = static_cast<int32_t>(word);
    if (x < 0) x = -(x + 1);
    return static_cast<float>(x) * kUniformScale;
  };
  return Uniform2{to_uniform(c0), to_uniform(c1)};
}

// ---------------------------------------------------------------- small math
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ int warp_sum(int v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_inclusive_scan(float v, int lane) {
#pragma unroll
  for (int o = 1; o < kWarp; o <<= 1) {
    const float n = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += n;
  }
  return v;
}

// ---------------------------------------------------------------- shared-memory layout
struct BlockState {
  float* wcat;     // (E + H, 4H) transposed LSTM weights: staged copy or global workspace
  float* h[2];     // (kRows, H) each: the state and the next state
  float* c;        // (kRows, H)
  float* x;        // (kRows, E) input embeddings
  int64_t* tok;    // (kRows,) input / sampled tokens
  int* active;     // (kRows,) whether the row advances this step
};

__host__ __device__ inline size_t align16(size_t bytes) { return (bytes + 15) / 16 * 16; }

__host__ inline bool stage_weights(int E, int H) {
  return static_cast<size_t>(E + H) * 4 * H * sizeof(float) <= kStageBytes;
}

__host__ __device__ inline size_t block_smem_bytes(int E, int H, bool staged) {
  size_t bytes = staged ? align16(static_cast<size_t>(E + H) * 4 * H * sizeof(float)) : 0;
  bytes += align16(3 * static_cast<size_t>(kRows) * H * sizeof(float));
  bytes += align16(static_cast<size_t>(kRows) * E * sizeof(float));
  bytes += align16(kRows * sizeof(int64_t)) + align16(kRows * sizeof(int));
  return bytes;
}

// Carves the dynamic shared memory and stages the weights when asked (ends with a barrier).
__device__ inline BlockState block_state(unsigned char* smem, const float* wcat_global, int E,
                                         int H, bool staged) {
  BlockState s;
  size_t off = 0;
  const int wn = (E + H) * 4 * H;
  if (staged) {
    s.wcat = reinterpret_cast<float*>(smem);
    for (int i = threadIdx.x; i < wn; i += blockDim.x) s.wcat[i] = wcat_global[i];
    off = align16(static_cast<size_t>(wn) * sizeof(float));
  } else {
    s.wcat = const_cast<float*>(wcat_global);
  }
  s.h[0] = reinterpret_cast<float*>(smem + off);
  s.h[1] = s.h[0] + kRows * H;
  s.c = s.h[1] + kRows * H;
  off += align16(3 * static_cast<size_t>(kRows) * H * sizeof(float));
  s.x = reinterpret_cast<float*>(smem + off);
  off += align16(static_cast<size_t>(kRows) * E * sizeof(float));
  s.tok = reinterpret_cast<int64_t*>(smem + off);
  off += align16(kRows * sizeof(int64_t));
  s.active = reinterpret_cast<int*>(smem + off);
  __syncthreads();
  return s;
}

// Every sequence starts from its initial state (h0, c0 (B, H); nullptr: zeros) with the start
// token as input; rows past B stay idle. (Ends with a barrier.)
__device__ inline void start_rows(const BlockState& s, int64_t b0, int64_t B, int64_t start_token,
                                  int H, const float* h0 = nullptr, const float* c0 = nullptr) {
  for (int r = threadIdx.x; r < kRows; r += blockDim.x) {
    s.active[r] = b0 + r < B;
    s.tok[r] = start_token;
  }
  for (int p = threadIdx.x; p < kRows * H; p += blockDim.x) {
    const bool valid = b0 + p / H < B;
    s.h[0][p] = h0 && valid ? h0[b0 * H + p] : 0.0f;
    s.c[p] = c0 && valid ? c0[b0 * H + p] : 0.0f;
  }
  __syncthreads();
}

// ---------------------------------------------------------------- weight transposes
// wcat[k][g] ((E + H) x 4H, 4 gate segments of H): k < E from w_ih, else from w_hh.
//   LSTM segments [i | f | g | o] = torch's gate blocks 0..3 from both;
//   GRU  segments [r | z | n_x | n_h]: r, z from both, n_x = W_in x only, n_h = W_hn h only
//   (n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) needs them apart). woutT[k][v] = w_out[v][k].
__host__ __device__ inline int gate_block(int cell, int seg, bool from_x) {
  if (cell != kCellGRU) return seg;
  if (seg < 2) return seg;
  return (seg == 2) == from_x ? 2 : -1;
}

static __global__ void transpose_weights_kernel(LSTMWeightsView w, float* wcat, float* woutT) {
  const int G = 4 * w.H, K = w.E + w.H;
  const size_t n1 = static_cast<size_t>(K) * G, n2 = static_cast<size_t>(w.H) * w.V;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n1 + n2;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    if (i < n1) {
      const int k = static_cast<int>(i / G), g = static_cast<int>(i % G);
      const int seg = g / w.H, u = g - seg * w.H;
      const int blk = gate_block(w.cell, seg, k < w.E);
      const size_t src = static_cast<size_t>(blk) * w.H + u;
      wcat[i] = blk < 0      ? 0.0f
                : k < w.E    ? w.w_ih[src * w.E + k]
                             : w.w_hh[src * w.H + (k - w.E)];
    } else {
      const size_t j = i - n1;
      const int k = static_cast<int>(j / w.V), v = static_cast<int>(j % w.V);
      woutT[j] = w.w_out[static_cast<size_t>(v) * w.H + k];
    }
  }
}

static inline cudaError_t launch_transpose(const LSTMWeightsView& w, float* wcat, float* woutT,
                                    cudaStream_t stream) {
  const size_t n = static_cast<size_t>(w.E + w.H) * 4 * w.H + static_cast<size_t>(w.H) * w.V;
  const int blocks = static_cast<int>((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
  transpose_weights_kernel<<<blocks, 256, 0, stream>>>(w, wcat, woutT);
  return cudaGetLastError();
}

// ---------------------------------------------------------------- block-wide steps
// x[r] = emb[tok[r]] for active rows (zeros otherwise). Callers sync before and after.
__device__ inline void embed_rows(const BlockState& s, const float* emb, int E) {
  for (int p = threadIdx.x; p < kRows * E; p += blockDim.x) {
    const int r = p / E;
    s.x[p] = s.active[r] ? emb[s.tok[r] * E + (p - r * E)] : 0.0f;
  }
}

// One cell step for the block's rows: the 4 gate segments (see transpose_weights_kernel),
// then CELL's element-wise update. LSTM (torch order i, f, g, o): c = s(f) c + s(i) tanh(g),
// h = s(o) tanh(c). GRU (r, z, n): n = tanh(n_x + s(r) n_h), h = (1 - z) n + z h.
// Reads h[cur], writes h[cur ^ 1] (and c for the LSTM). Inactive rows carry their state
// over. Callers sync before and after.
template <int CELL>
__device__ inline void cell_rows(const BlockState& s, int cur, const float* bias, int E,
                                 int H) {
  const int G = 4 * H;
  const float* h_in = s.h[cur];
  float* h_out = s.h[cur ^ 1];
  for (int p = threadIdx.x; p < kRows * H; p += blockDim.x) {
    const int r = p / H, u = p - r * H;
    if (!s.active[r]) {
      h_out[p] = h_in[p];
      continue;
    }
    float gi = bias[u], gf = bias[H + u], gg = bias[2 * H + u], go = bias[3 * H + u];
    const float* xr = s.x + r * E;
    for (int k = 0; k < E; ++k) {
      const float xv = xr[k];
      const float* wk = s.wcat + static_cast<size_t>(k) * G + u;
      gi = fmaf(xv, wk[0], gi);
      gf = fmaf(xv, wk[H], gf);
      gg = fmaf(xv, wk[2 * H], gg);
      go = fmaf(xv, wk[3 * H], go);
    }
    const float* hr = h_in + r * H;
    for (int k = 0; k < H; ++k) {
      const float hv = hr[k];
      const float* wk = s.wcat + static_cast<size_t>(E + k) * G + u;
      gi = fmaf(hv, wk[0], gi);
      gf = fmaf(hv, wk[H], gf);
      gg = fmaf(hv, wk[2 * H], gg);
      go = fmaf(hv, wk[3 * H], go);
    }
    if (CELL == kCellGRU) {  // segments (gi, gf, gg, go) hold (r, z, n_x, n_h)
      const float n = tanhf(gg + sigmoid(gi) * go), z = sigmoid(gf);
      h_out[p] = (1.0f - z) * n + z * hr[u];
    } else {
      const float c = sigmoid(gf) * s.c[p] + sigmoid(gi) * tanhf(gg);
      s.c[p] = c;
      h_out[p] = sigmoid(go) * tanhf(c);
    }
  }
}

// Calls f(std::integral_constant-like tag) with the weights' cell as a compile-time value.
template <int C>
struct CellTag {
  static constexpr int value = C;
};
template <class F>
inline cudaError_t with_cell(int cell, F&& f) {
  return cell == kCellGRU ? f(CellTag<kCellGRU>{}) : f(CellTag<kCellLSTM>{});
}

// The canonical sampler fused with the projection: each warp draws the tokens of its rows
// from softmax((h W_out^T + b_out) / temperature) and writes them to s.tok (inactive rows
// are left alone). Row r of the block has logical Philox row row_base + r. No barrier.
__device__ inline void sample_rows(const BlockState& s, const float* h, const float* woutT,
                                   const float* b_out, int V, int H, float temperature,
                                   uint64_t seed, uint32_t step, uint64_t row_base,
                                   uint32_t stream_id) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int row0 = warp * kRowsPerWarp;
  bool any = false;
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) any |= s.active[row0 + r] != 0;
  if (!any) return;  // warp-uniform
  float best[kRowsPerWarp];
  int64_t best_tok[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    best[r] = -INFINITY;
    best_tok[r] = 0;
  }
  const int tiles = (V + kTile - 1) / kTile;
  for (int j = 0; j < tiles; ++j) {
    int col[kPerLane];
    bool ok[kPerLane];
    float acc[kRowsPerWarp][kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      col[i] = j * kTile + i * kWarp + lane;
      ok[i] = col[i] < V;
      const float b = ok[i] ? __ldg(b_out + col[i]) : 0.0f;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) acc[r][i] = b;
    }
    for (int k = 0; k < H; ++k) {
      float wv[kPerLane];
      const float* wk = woutT + static_cast<size_t>(k) * V;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) wv[i] = ok[i] ? __ldg(wk + col[i]) : 0.0f;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float hv = h[(row0 + r) * H + k];
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) acc[r][i] = fmaf(hv, wv[i], acc[r][i]);
      }
    }
    const int tile_len = min(kTile, V - j * kTile);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      if (!s.active[row0 + r]) continue;  // warp-uniform
      float z[kPerLane];
      float m = -INFINITY;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        z[i] = ok[i] ? acc[r][i] / temperature : -INFINITY;
        m = fmaxf(m, z[i]);
      }
      m = warp_max(m);
      float run[kPerLane];
      float carry = 0.0f;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const float e = ok[i] ? expf(z[i] - m) : 0.0f;
        const float scan = warp_inclusive_scan(e, lane);
        run[i] = carry + scan;
        carry += __shfl_sync(0xffffffffu, scan, kWarp - 1);
      }
      const float total = carry;
      const Uniform2 u = philox_uniforms(seed, static_cast<uint32_t>(j), step,
                                         static_cast<uint32_t>(row_base + row0 + r), stream_id);
      const float thr = u.u0 * total;
      int below = 0;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) below += run[i] <= thr ? 1 : 0;
      below = warp_sum(below);
      const int cand = min(below, tile_len - 1);
      const float g = -logf(-logf(fmaxf(u.u1, kGumbelFloor)));
      const float score = m + logf(total) + g;
      if (score > best[r]) {  // strict: ties keep the lowest tile
        best[r] = score;
        best_tok[r] = static_cast<int64_t>(j) * kTile + cand;
      }
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r)
      if (s.active[row0 + r]) s.tok[row0 + r] = best_tok[r];
  }
}

// Opt in to more than 48 KiB of dynamic shared memory where needed.
template <typename Kernel>
inline cudaError_t set_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

// What every launch does first: carve the transposed weights out of the workspace, write
// them (one transpose kernel), and size the blocks' dynamic shared memory.
struct PreparedWeights {
  float* wcat = nullptr;   // (E + H, 4H) transposed cell weights
  float* woutT = nullptr;  // (H, V) transposed output layer; the workspace goes on after it
  bool staged = false;     // cell weights copied into shared memory by each block
  size_t smem = 0;         // dynamic shared memory per block
};

inline cudaError_t prepare_weights(const LSTMWeightsView& w, float* workspace,
                                   cudaStream_t stream, PreparedWeights* p) {
  p->wcat = workspace;
  p->woutT = workspace + static_cast<size_t>(w.E + w.H) * 4 * w.H;
  p->staged = stage_weights(w.E, w.H);
  p->smem = block_smem_bytes(w.E, w.H, p->staged);
  return launch_transpose(w, p->wcat, p->woutT, stream);
}

// One launch of a row kernel: `rows` rows in blocks of kRows, kThreads threads and p.smem
// bytes of dynamic shared memory each (opted in first), on `stream`; the launch's error.
template <typename... Params, typename... Args>
inline cudaError_t launch_rows(void (*kernel)(Params...), int64_t rows,
                               const PreparedWeights& p, cudaStream_t stream, Args... args) {
  cudaError_t e = set_smem(kernel, p.smem);
  if (e != cudaSuccess) return e;
  const auto blocks = static_cast<unsigned>((rows + kRows - 1) / kRows);
  kernel<<<blocks, kThreads, p.smem, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace seqgan_cuda
