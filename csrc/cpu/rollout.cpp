// CPU kernel of seqgan_fast::rollout: the prefix-state pass and the (T-min_prefix)*N*B
// completions in one call — a thin checked wrapper around seqgan::rollout_core (csrc/common/generate.h), called
// through the run-time chosen ISA path (csrc/cpu/isa.cpp) (memory bound: see
// csrc/common/generate.h; the output plus packed weights, prefix states and per-thread block
// workspaces).
#include "checks.h"

namespace {

at::Tensor rollout_cpu(const at::Tensor& x, int64_t num_rollouts, const at::Tensor& emb,
                       const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias,
                       const at::Tensor& w_out, const at::Tensor& b_out, int64_t start_token,
                       int64_t seed, double temperature, int64_t cell,
                       const c10::optional<at::Tensor>& h0,
                       const c10::optional<at::Tensor>& c0, int64_t min_prefix,
                       int64_t batch_offset, int64_t batch_total) {
  const seqgan::LSTMWeightsView w =
      seqgan::check_weights(emb, w_ih, w_hh, bias, w_out, b_out, cell);
  seqgan::check_cpu_tensor(x, "x", at::kLong, 2);
  const int64_t B = x.size(0), T = x.size(1), N = num_rollouts;
  TORCH_CHECK(N >= 1, "num_rollouts must be >= 1, got ", N);
  TORCH_CHECK(min_prefix >= 1 && min_prefix <= std::max<int64_t>(T, 1),
              "min_prefix must be in [1, T=", T, "], got ", min_prefix);
  seqgan::check_start_token(start_token, w.V);
  seqgan::check_token_range(x, "x", w.V);
  const int64_t Btot = batch_total > 0 ? batch_total : B;
  TORCH_CHECK(batch_total >= 0 && batch_offset >= 0 && batch_offset + B <= Btot &&
                  Btot <= (int64_t{1} << 32),
              "batch rows: x holds rows [", batch_offset, ", ", batch_offset + B,
              ") of a batch of ", Btot, "; they must lie inside it");
  const int64_t completions = std::max<int64_t>(T - 1, 0);
  const int64_t rows_per_rollout = completions * Btot;  // <= 2**32 * T: no overflow
  TORCH_CHECK(N <= (int64_t{1} << 32) && rows_per_rollout <= (int64_t{1} << 32) &&
                  (rows_per_rollout == 0 || N <= (int64_t{1} << 32) / rows_per_rollout),
              "num_rollouts: (T-1) * num_rollouts * B = ", completions, " * ", N, " * ", Btot,
              " rows must fit Philox's 32-bit row counter");
  const float temp = seqgan::check_temperature(temperature);
  const float* h0p = seqgan::check_state(h0, "h0", B, w.H);
  const float* c0p = seqgan::check_state(c0, "c0", B, w.H);
  TORCH_CHECK(!(c0p && w.cell == seqgan::kCellGRU), "c0: a GRU has no cell state");
  const int64_t kept = std::max<int64_t>(T - min_prefix, 0);  // prefixes t >= min_prefix
  at::Tensor out = at::empty({kept, N, B, T}, x.options());
  seqgan::cpu_kernels().rollout(w, x.data_ptr<int64_t>(), B, T, N, start_token,
                       static_cast<uint64_t>(seed), temp, out.data_ptr<int64_t>(),
                       seqgan::torch_threads(), h0p, c0p, min_prefix, batch_offset,
                       batch_total);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) { m.impl("rollout", &rollout_cpu); }
