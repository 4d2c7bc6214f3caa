// CPU kernels of seqgan_fast::conv_pool_forward and conv_pool_backward: the discriminator's
// convolution + ReLU + max-pool over time for training (csrc/common/dconv.h) and its
// backward in the sparse form (csrc/common/dpool.h), through the run-time chosen ISA path.
#include <vector>

#include "checks.h"

namespace {

// The convolutions' weights (F_g, E, k_g) per width, checked against emb (B, T, E): widths,
// filter counts, data pointers and the total filter count F.
struct ConvGroups {
  std::vector<int64_t> width, filters;
  std::vector<const float*> weight;
  int64_t F = 0;
};

ConvGroups check_conv_weights(const at::Tensor& emb, at::TensorList weights) {
  seqgan::check_cpu_tensor(emb, "emb", at::kFloat, 3);
  TORCH_CHECK(!weights.empty(), "weights must be a non-empty list");
  const int64_t T = emb.size(1), E = emb.size(2);
  ConvGroups c;
  for (int64_t g = 0; g < static_cast<int64_t>(weights.size()); ++g) {
    seqgan::check_cpu_tensor(weights[g], "weights[i]", at::kFloat, 3);
    TORCH_CHECK(weights[g].size(1) == E, "weights[", g, "] must have E=", E,
                " input channels, got shape ", weights[g].sizes());
    const int64_t k = weights[g].size(2);
    TORCH_CHECK(k >= 1 && k <= T, "weights[", g, "]: filter width ", k, " must be in [1, T=",
                T, "]");
    c.width.push_back(k);
    c.filters.push_back(weights[g].size(0));
    c.weight.push_back(weights[g].data_ptr<float>());
    c.F += weights[g].size(0);
  }
  return c;
}

std::vector<at::Tensor> conv_pool_backward_cpu(const at::Tensor& emb, const at::Tensor& grad,
                                               const at::Tensor& argmax,
                                               at::TensorList weights) {
  ConvGroups c = check_conv_weights(emb, weights);
  seqgan::check_cpu_tensor(grad, "grad", at::kFloat, 2);
  seqgan::check_cpu_tensor(argmax, "argmax", at::kLong, 2);
  const int64_t B = emb.size(0), T = emb.size(1), E = emb.size(2), F = c.F;
  const int64_t G = static_cast<int64_t>(weights.size());
  const std::vector<int64_t>&width = c.width, &filters = c.filters;
  std::vector<at::Tensor> out;
  std::vector<float*> gw(G), gb(G);
  TORCH_CHECK(grad.size(0) == B && grad.size(1) == F, "grad must have shape (", B, ", ", F,
              "), got ", grad.sizes());
  TORCH_CHECK(argmax.size(0) == B && argmax.size(1) == F, "argmax must have shape (", B, ", ",
              F, "), got ", argmax.sizes());
  {  // every window must lie inside its row
    const int64_t* a = argmax.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t j = 0;
      for (int64_t g = 0; g < G; ++g)
        for (int64_t f = 0; f < filters[g]; ++f, ++j) {
          const int64_t p = a[b * F + j];
          TORCH_CHECK(p >= 0 && p + width[g] <= T, "argmax[", b, ", ", j, "] = ", p,
                      " is not a window start of width ", width[g], " in T=", T);
        }
    }
  }
  at::Tensor grad_emb = at::empty({B, T, E}, emb.options());
  out.push_back(grad_emb);
  for (int64_t g = 0; g < G; ++g) {
    out.push_back(at::empty_like(weights[g]));
    gw[g] = out.back().data_ptr<float>();
  }
  for (int64_t g = 0; g < G; ++g) {
    out.push_back(at::empty({filters[g]}, emb.options()));
    gb[g] = out.back().data_ptr<float>();
  }
  const seqgan::ConvPoolGradView v{c.weight.data(),
                                   width.data(),
                                   filters.data(),
                                   G,
                                   B,
                                   T,
                                   E,
                                   emb.data_ptr<float>(),
                                   grad.data_ptr<float>(),
                                   argmax.data_ptr<int64_t>(),
                                   grad_emb.data_ptr<float>(),
                                   gw.data(),
                                   gb.data()};
  seqgan::cpu_kernels().conv_pool_backward(v, seqgan::torch_threads());
  return out;
}

std::vector<at::Tensor> conv_pool_forward_cpu(const at::Tensor& emb, at::TensorList weights,
                                              at::TensorList biases) {
  ConvGroups c = check_conv_weights(emb, weights);
  TORCH_CHECK(biases.size() == weights.size(), "biases must have one tensor per weight, got ",
              biases.size(), " for ", weights.size());
  const int64_t B = emb.size(0), T = emb.size(1), E = emb.size(2), F = c.F;
  const int64_t G = static_cast<int64_t>(weights.size());
  std::vector<const float*> b(G);
  for (int64_t g = 0; g < G; ++g) {
    seqgan::check_cpu_tensor(biases[g], "biases[i]", at::kFloat, 1);
    TORCH_CHECK(biases[g].size(0) == c.filters[g], "biases[", g, "] must have ", c.filters[g],
                " entries, got ", biases[g].sizes());
    b[g] = biases[g].data_ptr<float>();
  }
  at::Tensor values = at::empty({B, F}, emb.options());
  at::Tensor argmax = at::empty({B, F}, emb.options().dtype(at::kLong));
  const seqgan::ConvPoolFwdView v{c.weight.data(), b.data(), c.width.data(), c.filters.data(),
                                  G, B, T, E, emb.data_ptr<float>(), values.data_ptr<float>(),
                                  argmax.data_ptr<int64_t>()};
  if (B > 0) seqgan::cpu_kernels().conv_pool_forward(v, seqgan::torch_threads());
  return {values, argmax};
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) {
  m.impl("conv_pool_backward", &conv_pool_backward_cpu);
  m.impl("conv_pool_forward", &conv_pool_forward_cpu);
}
