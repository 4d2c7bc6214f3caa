// CUDA kernel of seqgan_fast::rollout: checks, then kernels/rollout.cu's launch_rollout on the
// current stream: the prefix-state pass and one persistent launch for the (T-min_prefix)*N*B
// completions of the prefixes t >= min_prefix. Memory: the output, transposed weights and the prefix states 2*T*B*H fp32.
#include "checks.h"

namespace {

at::Tensor rollout_cuda(const at::Tensor& x, int64_t num_rollouts, const at::Tensor& emb,
                        const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias,
                        const at::Tensor& w_out, const at::Tensor& b_out, int64_t start_token,
                        int64_t seed, double temperature, int64_t cell,
                        const c10::optional<at::Tensor>& h0, const c10::optional<at::Tensor>& c0,
                        int64_t min_prefix, int64_t batch_offset, int64_t batch_total) {
  using namespace seqgan_cuda;
  const LSTMWeightsView w =
      check_weights(emb, w_ih, w_hh, bias, w_out, b_out, start_token, cell);
  const c10::cuda::CUDAGuard guard(emb.device());
  check_tensor(x, "x", at::kLong, 2, emb.device());
  const int64_t B = x.size(0), T = x.size(1), N = num_rollouts;
  TORCH_CHECK(N >= 1 && N < (int64_t{1} << 31), "num_rollouts must be in [1, 2**31), got ", N);
  TORCH_CHECK(batch_offset == 0 && (batch_total == 0 || batch_total == B),
              "the CUDA rollout takes the whole batch (batch_offset/batch_total: cpp only)");
  TORCH_CHECK(min_prefix >= 1 && min_prefix <= std::max<int64_t>(T, 1),
              "min_prefix must be in [1, T=", T, "], got ", min_prefix);
  TORCH_CHECK(B < (int64_t{1} << 31) && T < (int64_t{1} << 31), "x: shape must fit 32 bits, got ",
              x.sizes());
  const int64_t completions = std::max<int64_t>(T - 1, 0);
  TORCH_CHECK(completions * B == 0 || N <= (int64_t{1} << 32) / (completions * B),
              "num_rollouts: (T-1) * num_rollouts * B = ", completions, " * ", N, " * ", B,
              " rows must fit Philox's 32-bit row counter");
  const float temp = check_temperature(temperature);
  const float* h0p = check_state(h0, "h0", B, w.H, emb.device());
  const float* c0p = check_state(c0, "c0", B, w.H, emb.device());
  TORCH_CHECK(!(c0p && w.cell == kCellGRU), "c0: a GRU has no cell state");
  check_token_range(x, "x", w.V);
  // Only the prefixes t >= min_prefix are computed (logical rows (min_prefix-1)*N*B on).
  const int64_t kept = std::max<int64_t>(T - min_prefix, 0);
  at::Tensor out = at::empty({kept, N, B, T}, x.options());
  if (out.numel() == 0) return out;
  at::Tensor ws = workspace(rollout_workspace_floats(w.V, w.E, w.H, static_cast<int>(B),
                                                     static_cast<int>(T)),
                            emb);
  check_cuda(launch_rollout(w, x.data_ptr<int64_t>(), static_cast<int>(B), static_cast<int>(T),
                            static_cast<int>(N), static_cast<uint64_t>(seed), temp,
                            out.data_ptr<int64_t>(), ws.data_ptr<float>(),
                            c10::cuda::getCurrentCUDAStream(), h0p, c0p,
                            static_cast<int>(min_prefix)),
             "rollout");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CUDA, m) { m.impl("rollout", &rollout_cuda); }
