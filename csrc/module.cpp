// seqgan_fast._C: declares the ops once; each device type registers its kernels in its own
// file (csrc/cpu/*.cpp: CPU, csrc/cuda/*.cu: CUDA), so the torch dispatcher is the single
// dispatch point per op. Seeds are unsigned 64-bit values carried in int64 (same bits).
#include <torch/library.h>
#include <Python.h>

#include <string>

#include "common/api.h"

namespace {

// The fused CPU core's instruction-set path (csrc/cpu/isa.cpp), for seqgan_fast.ops.cpu_isa.
std::string cpu_isa() {
  const char* error = nullptr;
  const seqgan::CoreKernels* k = seqgan::active_kernels(&error);
  TORCH_CHECK(k != nullptr, error);
  return k->isa;
}
std::string cpu_isa_best() { return seqgan::best_supported_isa(); }
std::string set_cpu_isa(const std::string& name) {
  const char* error = nullptr;
  const char* previous = seqgan::set_active_isa(name.c_str(), &error);
  TORCH_CHECK(previous != nullptr, error);
  return previous;
}

}  // namespace

TORCH_LIBRARY(seqgan_fast, m) {
  // cell: 0 = LSTM, 1 = GRU (weights layout: csrc/common/api.h). h0, c0 (B, H): per-row
  // initial states, the state before the start token (None = zeros; a GRU takes no c0).
  // One step: feed tokens (B,), state h, c (B, H) -> (next tokens (B,), h, c) (GRU: c
  // ignored, returned zeros).
  m.def(
      "decode(Tensor tokens, Tensor h, Tensor c, Tensor emb, Tensor w_ih, Tensor w_hh, "
      "Tensor bias, Tensor w_out, Tensor b_out, int seed, int step, int row_offset, "
      "int stream, float temperature, int cell=0) -> (Tensor, Tensor, Tensor)");
  // Whole sequences from the start token; prefix (B, P) fixes the first P tokens.
  m.def(
      "sample(Tensor prefix, Tensor emb, Tensor w_ih, Tensor w_hh, Tensor bias, Tensor w_out, "
      "Tensor b_out, int seq_len, int start_token, int seed, int row_offset, float temperature, "
      "int cell=0, Tensor? h0=None, Tensor? c0=None) -> Tensor");
  // The (T-m)*N*B completions of the prefixes t >= m = min_prefix of x (B, T): output
  // (T-m, N, B, T) int64, Philox rows as the full rollout's ((t-1)*N + n)*B + b. With
  // batch_total > 0, x is rows batch_offset.. of a batch of batch_total rows (one rank's
  // share): rows ((t-1)*N + n)*batch_total + batch_offset + b, the whole batch's tokens.
  m.def(
      "rollout(Tensor x, int num_rollouts, Tensor emb, Tensor w_ih, Tensor w_hh, Tensor bias, "
      "Tensor w_out, Tensor b_out, int start_token, int seed, float temperature, int cell=0, "
      "Tensor? h0=None, Tensor? c0=None, int min_prefix=1, int batch_offset=0, "
      "int batch_total=0) -> Tensor");
  // The discriminator's conv + ReLU + max-pool from the embedding-folded table
  // (csrc/common/score.h): pooled (M, sum(filters)) of rows [row0, row0 + M); prefix_x
  // (B, T) selects the rollout layout (rows are completions of prefix_x, prefix windows shared).
  m.def(
      "score_pool(Tensor tokens, int row0, Tensor? prefix_x, int num_rollouts, Tensor table, "
      "Tensor bias, int[] width, int[] filters) -> Tensor");
  // The same pooled features without the whole table: each pass (a group's column block,
  // its V x k slice at most pass_bytes) computes its slice emb (V, E) . w_all (E, Kp)'s
  // columns into a per-thread scratch and pools from it. Rows as score_pool's, then extra's
  // rows scored whole, into out (M + M_extra, sum(filters)).
  m.def(
      "score_fold_pool(Tensor tokens, int row0, Tensor? prefix_x, int num_rollouts, "
      "Tensor? extra, Tensor emb, Tensor w_all, Tensor bias, int[] width, int[] filters, "
      "int pass_bytes, Tensor(a!) out) -> Tensor(a!)");
  // Its scratch: bytes held by the calling thread, and freeing them.
  m.def("score_workspace_bytes() -> int", &seqgan::score_workspace_bytes);
  m.def("score_release_workspace() -> ()", &seqgan::score_release_workspace);
  // The backward of the discriminator's conv + ReLU + max-pool (csrc/common/dpool.h): emb
  // (B, T, E), grad and argmax (B, sum(filters)), weights (F_g, E, k_g) per width ->
  // [grad_emb, grad_weight per width..., grad_bias per width...].
  m.def("conv_pool_backward(Tensor emb, Tensor grad, Tensor argmax, Tensor[] weights) "
        "-> Tensor[]");
  // Its forward (csrc/common/dconv.h): emb (B, T, E), weights (F_g, E, k_g) and biases (F_g)
  // per width -> [relu(max over windows) (B, sum F_g), argmax (B, sum F_g) int64, the first
  // maximum's window start].
  m.def("conv_pool_forward(Tensor emb, Tensor[] weights, Tensor[] biases) -> Tensor[]");
  // The highway layer's unpacked GEMM (csrc/common/gemm_nn.h): a (R, K) . b (K, N) + row_bias
  // (R,) per row or col_bias (N,) per column; gemm_nn_acc_ adds a . b into c (R, N) in place.
  m.def("gemm_nn(Tensor a, Tensor b, Tensor? row_bias=None, Tensor? col_bias=None) -> Tensor");
  m.def("gemm_nn_acc_(Tensor(a!) c, Tensor a, Tensor b) -> Tensor(a!)");
  // Scoring's highway + output layer on those tiles (csrc/common/highway_head.h): logits (M, C)
  // of pooled features x (M, F); wh_t, wt_t the transposed highway weights (F, F).
  m.def("highway_logits(Tensor x, Tensor wh_t, Tensor bh, Tensor wt_t, Tensor bt, Tensor wo, "
        "Tensor bo) -> Tensor");
  // The generator's output layer + log-softmax + NLL (csrc/common/lnll.h): [nll (N,)], and
  // with row_weight (N,) also the gradients of sum_r row_weight[r] * nll[r]:
  // [nll, grad_h (N, H), grad_weight (V, H), grad_bias (V,)].
  m.def("linear_nll(Tensor h, Tensor weight, Tensor bias, Tensor target, Tensor? row_weight=None)"
        " -> Tensor[]");
  // The finite-value guard's check (csrc/common/finite.h): the index of the first of the CPU
  // float32 tensors holding a NaN, an inf or an element of magnitude >= 2^64; -1 if none.
  m.def("first_non_finite(Tensor[] tensors) -> int");
  // The CPU core's ISA path: in use, best this CPU supports, and a forced choice (returns
  // the previous path's name; "auto" = the best supported).
  m.def("cpu_isa() -> str", &cpu_isa);
  m.def("cpu_isa_best() -> str", &cpu_isa_best);
  m.def("set_cpu_isa(str isa) -> str", &set_cpu_isa);
}

// A bare Python module, so that `import seqgan_fast._C` loads the library (and with it the
// registrations above) without pulling pybind11 into every translation unit.
static PyModuleDef seqgan_fast_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&seqgan_fast_module); }
