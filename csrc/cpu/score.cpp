// CPU kernels of seqgan_fast::score_pool and score_fold_pool: the discriminator's
// convolution, ReLU and max-pool over time from the embedding-folded table (csrc/common/
// score.h), through the run-time chosen ISA path; score_fold_pool computes the table pass by
// pass into a scratch buffer this thread keeps between calls (score_release_workspace frees
// it). The highway and output layers run in seqgan_fast/ops/score.py.
#include <vector>

#include "checks.h"

namespace {

// The filter groups' layout (csrc/common/api.h ConvTableView) and the rows to pool.
struct ScoreJob {
  std::vector<int64_t> width, filters, fpad, off, fpoff;
  int64_t Kp = 0, fp_total = 0, F = 0;
  seqgan::ScoreRowsView rows{};

  seqgan::ConvTableView view(const float* table, const float* bias, int64_t V) const {
    return {table, bias, width.data(), filters.data(), fpad.data(), off.data(), fpoff.data(),
            static_cast<int64_t>(width.size()), V, Kp, fp_total};
  }
};

ScoreJob make_job(const at::Tensor& tokens, int64_t row0, const c10::optional<at::Tensor>& prefix_x,
                  int64_t num_rollouts, const c10::optional<at::Tensor>& extra,
                  const at::Tensor& bias, at::IntArrayRef width, at::IntArrayRef filters,
                  int64_t V) {
  seqgan::check_cpu_tensor(tokens, "tokens", at::kLong, 2);
  seqgan::check_cpu_tensor(bias, "bias", at::kFloat, 1);
  const int64_t M = tokens.size(0), T = tokens.size(1);
  TORCH_CHECK(width.size() == filters.size() && !width.empty(),
              "width and filters must be non-empty lists of the same length");
  ScoreJob j;
  j.width.assign(width.begin(), width.end());
  j.filters.assign(filters.begin(), filters.end());
  const size_t G = j.width.size();
  j.fpad.resize(G), j.off.resize(G), j.fpoff.resize(G);
  for (size_t g = 0; g < G; ++g) {
    TORCH_CHECK(j.width[g] >= 1 && j.width[g] <= T, "filter width ", j.width[g],
                " must be in [1, T=", T, "]");
    TORCH_CHECK(j.filters[g] >= 1, "filter counts must be >= 1, got ", j.filters[g]);
    j.fpad[g] = (j.filters[g] + 15) / 16 * 16;
    j.off[g] = j.Kp, j.fpoff[g] = j.fp_total;
    j.Kp += j.width[g] * j.fpad[g], j.fp_total += j.fpad[g], j.F += j.filters[g];
  }
  TORCH_CHECK(bias.size(0) == j.fp_total, "bias must have ", j.fp_total, " entries, got ",
              bias.size(0));
  seqgan::check_token_range(tokens, "tokens", V);
  j.rows.tokens = tokens.data_ptr<int64_t>();
  j.rows.row0 = row0, j.rows.M = M, j.rows.T = T, j.rows.N = 1;
  if (prefix_x.has_value()) {
    const at::Tensor& x = *prefix_x;
    seqgan::check_cpu_tensor(x, "prefix_x", at::kLong, 2);
    TORCH_CHECK(x.size(1) == T, "prefix_x must have T=", T, " columns, got ", x.size(1));
    TORCH_CHECK(num_rollouts >= 1, "num_rollouts must be >= 1, got ", num_rollouts);
    const int64_t B = x.size(0);
    TORCH_CHECK(row0 >= 0 && B >= 1 && row0 + M <= (T - 1) * num_rollouts * B,
                "rows [", row0, ", ", row0 + M, ") are outside the (T-1)*N*B = ",
                (T - 1) * num_rollouts * B, " completions of prefix_x");
    seqgan::check_token_range(x, "prefix_x", V);
    j.rows.prefix_x = x.data_ptr<int64_t>(), j.rows.N = num_rollouts, j.rows.B = B;
  }
  if (extra.has_value()) {
    seqgan::check_cpu_tensor(*extra, "extra", at::kLong, 2);
    TORCH_CHECK(extra->size(1) == T, "extra must have T=", T, " columns, got ", extra->size(1));
    seqgan::check_token_range(*extra, "extra", V);
    j.rows.extra = extra->data_ptr<int64_t>(), j.rows.M_extra = extra->size(0);
  }
  return j;
}

at::Tensor score_pool_cpu(const at::Tensor& tokens, int64_t row0,
                          const c10::optional<at::Tensor>& prefix_x, int64_t num_rollouts,
                          const at::Tensor& table, const at::Tensor& bias,
                          at::IntArrayRef width, at::IntArrayRef filters) {
  seqgan::check_cpu_tensor(table, "table", at::kFloat, 2);
  ScoreJob j = make_job(tokens, row0, prefix_x, num_rollouts, c10::nullopt, bias, width,
                        filters, table.size(0));
  TORCH_CHECK(table.size(1) == j.Kp, "table must have ", j.Kp, " columns for these filters, got ",
              table.size(1));
  at::Tensor pooled = at::empty({j.rows.M, j.F}, table.options());
  j.rows.pooled = pooled.data_ptr<float>();
  seqgan::cpu_kernels().score_pool(j.view(table.data_ptr<float>(), bias.data_ptr<float>(),
                                          table.size(0)),
                                   j.rows, seqgan::torch_threads());
  return pooled;
}

// This thread's scratch for score_fold_pool's slices (a fresh 32 MiB buffer per call would
// pay its page faults every time).
thread_local std::vector<float> fold_scratch;

at::Tensor& score_fold_pool_cpu(const at::Tensor& tokens, int64_t row0,
                                const c10::optional<at::Tensor>& prefix_x,
                                int64_t num_rollouts, const c10::optional<at::Tensor>& extra,
                                const at::Tensor& emb, const at::Tensor& w_all,
                                const at::Tensor& bias, at::IntArrayRef width,
                                at::IntArrayRef filters, int64_t pass_bytes, at::Tensor& out) {
  seqgan::check_cpu_tensor(emb, "emb", at::kFloat, 2);
  seqgan::check_cpu_tensor(w_all, "w_all", at::kFloat, 2);
  const int64_t V = emb.size(0), E = emb.size(1);
  ScoreJob j = make_job(tokens, row0, prefix_x, num_rollouts, extra, bias, width, filters, V);
  TORCH_CHECK(w_all.size(0) == E && w_all.size(1) == j.Kp, "w_all must be (E=", E, ", ", j.Kp,
              ") for these filters, got (", w_all.size(0), ", ", w_all.size(1), ")");
  TORCH_CHECK(pass_bytes >= 1, "pass_bytes must be >= 1, got ", pass_bytes);
  seqgan::check_cpu_tensor(out, "out", at::kFloat, 2);
  TORCH_CHECK(out.size(0) == j.rows.M + j.rows.M_extra && out.size(1) == j.F, "out must be (",
              j.rows.M + j.rows.M_extra, ", ", j.F, "), got (", out.size(0), ", ", out.size(1),
              ")");
  seqgan::ScoreFoldView v{j.view(nullptr, bias.data_ptr<float>(), V), emb.data_ptr<float>(),
                          w_all.data_ptr<float>(), E, pass_bytes, nullptr};
  const int64_t need = seqgan::score_fold_scratch_floats(v.conv, E, pass_bytes);
  if (static_cast<int64_t>(fold_scratch.size()) < need) {
    std::vector<float>().swap(fold_scratch);  // free the old one before allocating the new
    fold_scratch.resize(static_cast<size_t>(need));
  }
  v.scratch = fold_scratch.data();
  j.rows.pooled = out.data_ptr<float>();
  seqgan::cpu_kernels().score_fold_pool(v, j.rows, seqgan::torch_threads());
  return out;
}

}  // namespace

namespace seqgan {
void score_release_workspace() { std::vector<float>().swap(fold_scratch); }
int64_t score_workspace_bytes() { return static_cast<int64_t>(fold_scratch.capacity() * 4); }
}  // namespace seqgan

TORCH_LIBRARY_IMPL(seqgan_fast, CPU, m) {
  m.impl("score_pool", &score_pool_cpu);
  m.impl("score_fold_pool", &score_fold_pool_cpu);
}
