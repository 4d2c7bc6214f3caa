// CPU kernel of seqgan_fast::linear_nll: the generator's output layer, log-softmax and NLL
// fused (csrc/common/lnll.h), through the run-time chosen ISA path. The autograd wiring is
// seqgan_fast/ops/linear_nll.py.
#include <vector>

#include "checks.h"

namespace {

std::vector<at::Tensor> linear_nll_cpu(const at::Tensor& h, const at::Tensor& weight,
                                       const at::Tensor& bias, const at::Tensor& target,
                                       const c10::optional<at::Tensor>& row_weight) {
  seqgan::check_cpu_tensor(h, "h", at::kFloat, 2);
  seqgan::check_cpu_tensor(weight, "weight", at::kFloat, 2);
  seqgan::check_cpu_tensor(bias, "bias", at::kFloat, 1);
  seqgan::check_cpu_tensor(target, "target", at::kLong, 1);
  const int64_t N = h.size(0), H = h.size(1), V = weight.size(0);
  TORCH_CHECK(weight.size(1) == H, "weight must have shape (V, H=", H, "), got ",
              weight.sizes());
  TORCH_CHECK(V >= 1, "weight must have at least one row (V >= 1)");
  TORCH_CHECK(bias.size(0) == V, "bias must have V=", V, " entries, got ", bias.sizes());
  TORCH_CHECK(target.size(0) == N, "target must have N=", N, " entries, got ", target.sizes());
  const bool grad = row_weight.has_value() && row_weight->defined();
  if (grad) {
    seqgan::check_cpu_tensor(*row_weight, "row_weight", at::kFloat, 1);
    TORCH_CHECK(row_weight->size(0) == N, "row_weight must have N=", N, " entries, got ",
                row_weight->sizes());
  }
  const int64_t* y = target.data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r)
    TORCH_CHECK(y[r] >= 0 && y[r] < V, "target[", r, "] = ", y[r], " is outside [0, V=", V,
                ")");
  std::vector<at::Tensor> out{at::empty({N}, h.options())};
  if (grad) {
    out.push_back(at::empty({N, H}, h.options()));
    out.push_back(at::empty({V, H}, h.options()));
    out.push_back(at::empty({V}, h.options()));
  }
  const seqgan::LinearNLLView v{h.data_ptr<float>(),
                                weight.data_ptr<float>(),
                                bias.data_ptr<float>(),
                                y,
                                grad ? row_weight->data_ptr<float>() : nullptr,
                                N,
                                H,
                                V,
                                out[0].data_ptr<float>(),
                                grad ? out[1].data_ptr<float>() : nullptr,
                                grad ? out[2].data_ptr<float>() : nullptr,
                                grad ? out[3].data_ptr<float>() : nullptr};
  if (N > 0)
    seqgan::cpu_kernels().linear_nll(v, seqgan::torch_threads());
  else  // no rows: zero gradients
    for (size_t i = 1; i < out.size(); ++i) out[i].zero_();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) { m.impl("linear_nll", &linear_nll_cpu); }
