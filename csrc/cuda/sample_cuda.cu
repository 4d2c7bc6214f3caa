// CUDA kernel of seqgan_fast::sample: checks, then kernels/sample.cu's launch_sample on the
// current stream (one persistent launch for all positions).
#include "checks.h"

namespace {

at::Tensor sample_cuda(const at::Tensor& prefix, const at::Tensor& emb, const at::Tensor& w_ih,
                       const at::Tensor& w_hh, const at::Tensor& bias, const at::Tensor& w_out,
                       const at::Tensor& b_out, int64_t seq_len, int64_t start_token,
                       int64_t seed, int64_t row_offset, double temperature, int64_t cell,
                       const c10::optional<at::Tensor>& h0, const c10::optional<at::Tensor>& c0) {
  using namespace seqgan_cuda;
  const LSTMWeightsView w =
      check_weights(emb, w_ih, w_hh, bias, w_out, b_out, start_token, cell);
  const c10::cuda::CUDAGuard guard(emb.device());
  check_tensor(prefix, "prefix", at::kLong, 2, emb.device());
  const int64_t B = prefix.size(0), P = prefix.size(1);
  TORCH_CHECK(seq_len >= 1 && seq_len < (int64_t{1} << 31), "seq_len must be in [1, 2**31), got ",
              seq_len);
  TORCH_CHECK(P <= seq_len, "prefix has ", P, " positions, more than seq_len = ", seq_len);
  TORCH_CHECK(B < (int64_t{1} << 31), "prefix: batch must be < 2**31, got ", B);
  TORCH_CHECK(row_offset >= 0 && row_offset + B <= (int64_t{1} << 32),
              "row_offset must be in [0, 2**32 - B], got ", row_offset);
  const float temp = check_temperature(temperature);
  const float* h0p = check_state(h0, "h0", B, w.H, emb.device());
  const float* c0p = check_state(c0, "c0", B, w.H, emb.device());
  TORCH_CHECK(!(c0p && w.cell == kCellGRU), "c0: a GRU has no cell state");
  check_token_range(prefix, "prefix", w.V);
  at::Tensor out = at::empty({B, seq_len}, prefix.options());
  if (B == 0) return out;
  at::Tensor ws = workspace(weights_workspace_floats(w.V, w.E, w.H), emb);
  check_cuda(launch_sample(w, prefix.data_ptr<int64_t>(), static_cast<int>(B),
                           static_cast<int>(P), static_cast<int>(seq_len),
                           static_cast<uint64_t>(seed), static_cast<uint32_t>(row_offset), temp,
                           out.data_ptr<int64_t>(), ws.data_ptr<float>(),
                           c10::cuda::getCurrentCUDAStream(), h0p, c0p),
             "sample");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CUDA, m) { m.impl("sample", &sample_cuda); }
