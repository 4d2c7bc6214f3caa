// CPU kernel of seqgan_fast::score_pool: the discriminator's convolution, ReLU and max-pool
// over time from the embedding-folded table (csrc/common/score.h), through the run-time
// chosen ISA path. The highway and output layers run as GEMMs in seqgan_fast/ops/score.py.
#include <vector>

#include "cpu/checks.h"

namespace {

at::Tensor score_pool_cpu(const at::Tensor& tokens, int64_t row0,
                          const c10::optional<at::Tensor>& prefix_x, int64_t num_rollouts,
                          const at::Tensor& table, const at::Tensor& bias,
                          at::IntArrayRef width, at::IntArrayRef filters) {
  seqgan::check_cpu_tensor(tokens, "tokens", at::kLong, 2);
  seqgan::check_cpu_tensor(table, "table", at::kFloat, 2);
  seqgan::check_cpu_tensor(bias, "bias", at::kFloat, 1);
  const int64_t M = tokens.size(0), T = tokens.size(1), V = table.size(0);
  TORCH_CHECK(width.size() == filters.size() && !width.empty(),
              "width and filters must be non-empty lists of the same length");
  const int64_t G = static_cast<int64_t>(width.size());
  std::vector<int64_t> w(width.begin(), width.end()), f(filters.begin(), filters.end());
  std::vector<int64_t> fpad(G), off(G), fpoff(G);
  int64_t Kp = 0, fp_total = 0, F = 0;
  for (int64_t g = 0; g < G; ++g) {
    TORCH_CHECK(w[g] >= 1 && w[g] <= T, "filter width ", w[g], " must be in [1, T=", T, "]");
    TORCH_CHECK(f[g] >= 1, "filter counts must be >= 1, got ", f[g]);
    fpad[g] = (f[g] + 15) / 16 * 16;
    off[g] = Kp, fpoff[g] = fp_total;
    Kp += w[g] * fpad[g], fp_total += fpad[g], F += f[g];
  }
  TORCH_CHECK(table.size(1) == Kp, "table must have ", Kp, " columns for these filters, got ",
              table.size(1));
  TORCH_CHECK(bias.size(0) == fp_total, "bias must have ", fp_total, " entries, got ",
              bias.size(0));
  seqgan::check_token_range(tokens, "tokens", V);
  const int64_t* px = nullptr;
  int64_t B = 0;
  if (prefix_x.has_value()) {
    const at::Tensor& x = *prefix_x;
    seqgan::check_cpu_tensor(x, "prefix_x", at::kLong, 2);
    TORCH_CHECK(x.size(1) == T, "prefix_x must have T=", T, " columns, got ", x.size(1));
    TORCH_CHECK(num_rollouts >= 1, "num_rollouts must be >= 1, got ", num_rollouts);
    B = x.size(0);
    TORCH_CHECK(row0 >= 0 && B >= 1 && row0 + M <= (T - 1) * num_rollouts * B,
                "rows [", row0, ", ", row0 + M, ") are outside the (T-1)*N*B = ",
                (T - 1) * num_rollouts * B, " completions of prefix_x");
    seqgan::check_token_range(x, "prefix_x", V);
    px = x.data_ptr<int64_t>();
  }
  at::Tensor pooled = at::empty({M, F}, table.options());
  const seqgan::ConvTableView d{table.data_ptr<float>(), bias.data_ptr<float>(), w.data(),
                                f.data(), fpad.data(), off.data(), fpoff.data(), G, V, Kp,
                                fp_total};
  seqgan::cpu_kernels().score_pool(d, tokens.data_ptr<int64_t>(), row0, M, T, px,
                                   num_rollouts, B, pooled.data_ptr<float>(),
                                   seqgan::torch_threads());
  return pooled;
}

}  // namespace

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) { m.impl("score_pool", &score_pool_cpu); }
