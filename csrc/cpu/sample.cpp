// CPU kernel of seqgan_fast::sample: whole sequences from the start token, the first P positions
// teacher-forced from `prefix` — a thin checked wrapper around seqgan::sample_core
// (csrc/common/generate.h), called through the run-time chosen ISA path (csrc/cpu/isa.cpp).
#include "checks.h"

namespace {

at::Tensor sample_cpu(const at::Tensor& prefix, const at::Tensor& emb, const at::Tensor& w_ih,
                      const at::Tensor& w_hh, const at::Tensor& bias, const at::Tensor& w_out,
                      const at::Tensor& b_out, int64_t seq_len, int64_t start_token,
                      int64_t seed, int64_t row_offset, double temperature, int64_t cell,
                      const c10::optional<at::Tensor>& h0,
                      const c10::optional<at::Tensor>& c0) {
  const seqgan::LSTMWeightsView w =
      seqgan::check_weights(emb, w_ih, w_hh, bias, w_out, b_out, cell);
  seqgan::check_cpu_tensor(prefix, "prefix", at::kLong, 2);
  const int64_t B = prefix.size(0), P = prefix.size(1);
  TORCH_CHECK(seq_len >= 1, "seq_len must be >= 1, got ", seq_len);
  TORCH_CHECK(seq_len >= P, "seq_len must be >= the prefix length ", P, ", got ", seq_len);
  TORCH_CHECK(seq_len < (int64_t{1} << 32), "seq_len must be < 2**32, got ", seq_len);
  seqgan::check_start_token(start_token, w.V);
  seqgan::check_token_range(prefix, "prefix", w.V);
  TORCH_CHECK(row_offset >= 0 && row_offset + B <= (int64_t{1} << 32),
              "row_offset must be in [0, 2**32 - B], got ", row_offset);
  const float temp = seqgan::check_temperature(temperature);
  const float* h0p = seqgan::check_state(h0, "h0", B, w.H);
  const float* c0p = seqgan::check_state(c0, "c0", B, w.H);
  TORCH_CHECK(!(c0p && w.cell == seqgan::kCellGRU), "c0: a GRU has no cell state");
  at::Tensor out = at::empty({B, seq_len}, prefix.options());
  seqgan::cpu_kernels().sample(w, prefix.data_ptr<int64_t>(), B, P, seq_len, start_token,
                      static_cast<uint64_t>(seed), static_cast<uint32_t>(row_offset), temp,
                      out.data_ptr<int64_t>(), seqgan::torch_threads(), h0p, c0p);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) { m.impl("sample", &sample_cpu); }
