// CPU kernels of seqgan_fast::gemm_nn and gemm_nn_acc_: the unpacked small-batch GEMM of the
// discriminator step's highway layer (csrc/common/gemm_nn.h), through the run-time chosen ISA
// path. The autograd wiring is seqgan_fast/ops/highway.py.
#include "cpu/checks.h"

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

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) {
  m.impl("gemm_nn", &gemm_nn_cpu);
  m.impl("gemm_nn_acc_", &gemm_nn_acc_cpu);
}
