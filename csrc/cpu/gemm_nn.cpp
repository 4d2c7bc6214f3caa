// CPU kernels of seqgan_fast::gemm_nn and gemm_nn_acc_: the unpacked small-batch GEMM of the
// discriminator step's highway layer (csrc/common/gemm_nn.h), and of highway_logits, scoring's
// fused highway + output layer on its tiles (csrc/common/highway_head.h), through the run-time
// chosen ISA path. The autograd wiring is seqgan_fast/ops/highway.py.
#include <utility>

#include "checks.h"

namespace {

void check_operands(const at::Tensor& a, const at::Tensor& b) {
  seqgan::check_cpu_tensor(a, "a", at::kFloat, 2);
  seqgan::check_cpu_tensor(b, "b", at::kFloat, 2);
  TORCH_CHECK(a.size(1) == b.size(0), "a (R, K) and b (K, N) must agree on K, got a ",
              a.sizes(), " and b ", b.sizes());
}

void run(const at::Tensor& a, const at::Tensor& b, const float* row_bias, at::Tensor& c,
         bool accumulate, const float* col_bias = nullptr) {
  const seqgan::GemmNNView g{a.data_ptr<float>(), a.size(1), b.data_ptr<float>(), b.size(1),
                             c.data_ptr<float>(), c.size(1), a.size(0), a.size(1), b.size(1),
                             row_bias, accumulate, col_bias};
  seqgan::cpu_kernels().gemm_nn(g, seqgan::torch_threads());
}

// The bias named `name` (R or N entries, `n`) as a pointer; nullptr when absent.
const float* bias_ptr(const c10::optional<at::Tensor>& bias, const char* name, int64_t n,
                      const char* what) {
  if (!bias.has_value() || !bias->defined()) return nullptr;
  seqgan::check_cpu_tensor(*bias, name, at::kFloat, 1);
  TORCH_CHECK(bias->size(0) == n, name, " must have ", what, "=", n, " entries, got ",
              bias->sizes());
  return bias->data_ptr<float>();
}

at::Tensor gemm_nn_cpu(const at::Tensor& a, const at::Tensor& b,
                       const c10::optional<at::Tensor>& row_bias,
                       const c10::optional<at::Tensor>& col_bias) {
  check_operands(a, b);
  const float* rb = bias_ptr(row_bias, "row_bias", a.size(0), "a's R");
  const float* cb = bias_ptr(col_bias, "col_bias", b.size(1), "b's N");
  TORCH_CHECK(rb == nullptr || cb == nullptr, "gemm_nn takes row_bias or col_bias, not both");
  at::Tensor c = at::empty({a.size(0), b.size(1)}, a.options());
  run(a, b, rb, c, false, cb);
  return c;
}

at::Tensor& gemm_nn_acc_cpu(at::Tensor& c, const at::Tensor& a, const at::Tensor& b) {
  check_operands(a, b);
  seqgan::check_cpu_tensor(c, "c", at::kFloat, 2);
  TORCH_CHECK(c.size(0) == a.size(0) && c.size(1) == b.size(1), "c must have shape (",
              a.size(0), ", ", b.size(1), "), got ", c.sizes());
  run(a, b, nullptr, c, true);
  return c;
}

at::Tensor highway_logits_cpu(const at::Tensor& x, const at::Tensor& wh_t, const at::Tensor& bh,
                             const at::Tensor& wt_t, const at::Tensor& bt, const at::Tensor& wo,
                             const at::Tensor& bo) {
  seqgan::check_cpu_tensor(x, "x", at::kFloat, 2);
  const int64_t M = x.size(0), F = x.size(1);
  for (const auto& [w, name] : {std::pair{&wh_t, "wh_t"}, std::pair{&wt_t, "wt_t"}}) {
    seqgan::check_cpu_tensor(*w, name, at::kFloat, 2);
    TORCH_CHECK(w->size(0) == F && w->size(1) == F, name, " must have shape (", F, ", ", F,
                ") for x's F=", F, ", got ", w->sizes());
  }
  seqgan::check_cpu_tensor(wo, "wo", at::kFloat, 2);
  TORCH_CHECK(wo.size(1) == F && wo.size(0) >= 1, "wo must have shape (C, ", F, "), got ",
              wo.sizes());
  const int64_t C = wo.size(0);
  const float* b_h = bias_ptr(bh, "bh", F, "F");
  const float* b_t = bias_ptr(bt, "bt", F, "F");
  const float* b_o = bias_ptr(bo, "bo", C, "wo's C");
  at::Tensor logits = at::empty({M, C}, x.options());
  const seqgan::HighwayHeadView v{x.data_ptr<float>(), wh_t.data_ptr<float>(), b_h,
                                  wt_t.data_ptr<float>(), b_t, wo.data_ptr<float>(), b_o,
                                  M, F, C, logits.data_ptr<float>()};
  seqgan::cpu_kernels().highway_head(v, seqgan::torch_threads());
  return logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) {
  m.impl("gemm_nn", &gemm_nn_cpu);
  m.impl("gemm_nn_acc_", &gemm_nn_acc_cpu);
  m.impl("highway_logits", &highway_logits_cpu);
}
