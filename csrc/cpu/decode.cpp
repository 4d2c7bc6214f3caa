// CPU kernel of seqgan_fast::decode: one fused generator step (embedding, LSTM cell, projection,
// exact sample) — a thin checked wrapper around seqgan::decode_core (csrc/common/generate.h),
// called through the run-time chosen ISA path (csrc/cpu/isa.cpp).
#include "checks.h"

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cpu(
    const at::Tensor& tokens, const at::Tensor& h, const at::Tensor& c, const at::Tensor& emb,
    const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias,
    const at::Tensor& w_out, const at::Tensor& b_out, int64_t seed, int64_t step,
    int64_t row_offset, int64_t stream, double temperature, int64_t cell) {
  const seqgan::LSTMWeightsView w =
      seqgan::check_weights(emb, w_ih, w_hh, bias, w_out, b_out, cell);
  seqgan::check_cpu_tensor(tokens, "tokens", at::kLong, 1);
  seqgan::check_cpu_tensor(h, "h", at::kFloat, 2);
  seqgan::check_cpu_tensor(c, "c", at::kFloat, 2);
  const int64_t B = tokens.size(0);
  TORCH_CHECK(h.size(0) == B && h.size(1) == w.H, "h must have shape (", B, ", ", w.H,
              "), got ", h.sizes());
  TORCH_CHECK(c.size(0) == B && c.size(1) == w.H, "c must have shape (", B, ", ", w.H,
              "), got ", c.sizes());
  seqgan::check_token_range(tokens, "tokens", w.V);
  TORCH_CHECK(step >= 0 && step < (int64_t{1} << 32), "step must be in [0, 2**32), got ", step);
  TORCH_CHECK(row_offset >= 0 && row_offset + B <= (int64_t{1} << 32),
              "row_offset must be in [0, 2**32 - B], got ", row_offset);
  TORCH_CHECK(stream == 0 || stream == 1, "stream must be 0 (sample) or 1 (rollout), got ",
              stream);
  const float temp = seqgan::check_temperature(temperature);
  at::Tensor out = at::empty({B}, tokens.options());
  at::Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  seqgan::cpu_kernels().decode(w, tokens.data_ptr<int64_t>(), h.data_ptr<float>(), c.data_ptr<float>(),
                      B, static_cast<uint64_t>(seed), static_cast<uint32_t>(step),
                      static_cast<uint32_t>(row_offset), static_cast<uint32_t>(stream), temp,
                      out.data_ptr<int64_t>(), h_out.data_ptr<float>(), c_out.data_ptr<float>(),
                      seqgan::torch_threads());
  return {out, h_out, c_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) { m.impl("decode", &decode_cpu); }
