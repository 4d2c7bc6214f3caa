// CUDA kernel of seqgan_fast::decode: checks, then kernels/decode.cu's launch_decode on the
// current stream (no host synchronisation after the token-range check).
#include "checks.h"

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> decode_cuda(
    const at::Tensor& tokens, const at::Tensor& h, const at::Tensor& c, const at::Tensor& emb,
    const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias,
    const at::Tensor& w_out, const at::Tensor& b_out, int64_t seed, int64_t step,
    int64_t row_offset, int64_t stream, double temperature, int64_t cell) {
  using namespace seqgan_cuda;
  const LSTMWeightsView w = check_weights(emb, w_ih, w_hh, bias, w_out, b_out, 0, cell);
  const c10::cuda::CUDAGuard guard(emb.device());
  check_tensor(tokens, "tokens", at::kLong, 1, emb.device());
  const int64_t B = tokens.size(0);
  check_tensor(h, "h", at::kFloat, 2, emb.device());
  check_tensor(c, "c", at::kFloat, 2, emb.device());
  TORCH_CHECK(h.size(0) == B && h.size(1) == w.H, "h must have shape (", B, ", ", w.H,
              "), got ", h.sizes());
  TORCH_CHECK(c.size(0) == B && c.size(1) == w.H, "c must have shape (", B, ", ", w.H,
              "), got ", c.sizes());
  TORCH_CHECK(B < (int64_t{1} << 31), "tokens: batch must be < 2**31, got ", B);
  TORCH_CHECK(step >= 0 && step < (int64_t{1} << 32), "step must be in [0, 2**32), got ", step);
  TORCH_CHECK(row_offset >= 0 && row_offset + B <= (int64_t{1} << 32),
              "row_offset must be in [0, 2**32 - B], got ", row_offset);
  TORCH_CHECK(stream == 0 || stream == 1, "stream must be 0 (sample) or 1 (rollout), got ",
              stream);
  const float temp = check_temperature(temperature);
  check_token_range(tokens, "tokens", w.V);
  at::Tensor next = at::empty({B}, tokens.options());
  at::Tensor h_out = at::empty_like(h), c_out = at::empty_like(c);
  if (B == 0) return {next, h_out, c_out};
  at::Tensor ws = workspace(weights_workspace_floats(w.V, w.E, w.H), emb);
  check_cuda(launch_decode(w, tokens.data_ptr<int64_t>(), h.data_ptr<float>(),
                           c.data_ptr<float>(), static_cast<int>(B), static_cast<uint64_t>(seed),
                           static_cast<uint32_t>(step), static_cast<uint32_t>(row_offset),
                           static_cast<uint32_t>(stream), temp, next.data_ptr<int64_t>(),
                           h_out.data_ptr<float>(), c_out.data_ptr<float>(),
                           ws.data_ptr<float>(), c10::cuda::getCurrentCUDAStream()),
             "decode");
  return {next, h_out, c_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CUDA, m) { m.impl("decode", &decode_cuda); }
