// CPU kernel of seqgan_fast::first_non_finite (csrc/common/finite.h) through the run-time
// chosen ISA path; seqgan_fast/guard.py calls it on CPU float32 tensors.
#include <vector>

#include "checks.h"

namespace {

int64_t first_non_finite_cpu(at::TensorList tensors) {
  std::vector<const float*> arrays;
  std::vector<int64_t> sizes;
  arrays.reserve(tensors.size());
  sizes.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    TORCH_CHECK(t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat &&
                    t.is_contiguous(),
                "tensors[", i, "] must be a contiguous CPU float32 tensor");
    arrays.push_back(t.data_ptr<float>());
    sizes.push_back(t.numel());
  }
  return seqgan::cpu_kernels().first_non_finite(arrays.data(), sizes.data(),
                                                static_cast<int64_t>(arrays.size()),
                                                seqgan::torch_threads());
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) { m.impl("first_non_finite", &first_non_finite_cpu); }
