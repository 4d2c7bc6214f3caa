// Argument checks shared by the CPU ops: every precondition is a TORCH_CHECK naming the
// argument, run before any kernel touches memory.
#pragma once

#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>

#include "common/api.h"

namespace seqgan {

inline void check_cpu_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype,
                             int64_t dim) {
  TORCH_CHECK(t.defined(), name, " must be a defined tensor");
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// Checks the weights' dtypes, devices, contiguity and mutual shapes; returns a view on them.
// `cell`: kCellLSTM (4 gate blocks in w_ih, w_hh) or kCellGRU (3); bias is 4H for both.
inline LSTMWeightsView check_weights(const at::Tensor& emb, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias,
                                     const at::Tensor& w_out, const at::Tensor& b_out,
                                     int64_t cell = kCellLSTM) {
  TORCH_CHECK(cell == kCellLSTM || cell == kCellGRU, "cell must be 0 (lstm) or 1 (gru), got ",
              cell);
  check_cpu_tensor(emb, "emb", at::kFloat, 2);
  check_cpu_tensor(w_ih, "w_ih", at::kFloat, 2);
  check_cpu_tensor(w_hh, "w_hh", at::kFloat, 2);
  check_cpu_tensor(bias, "bias", at::kFloat, 1);
  check_cpu_tensor(w_out, "w_out", at::kFloat, 2);
  check_cpu_tensor(b_out, "b_out", at::kFloat, 1);
  const int64_t V = emb.size(0), E = emb.size(1), H = w_hh.size(1);
  const int64_t G = cell == kCellGRU ? 3 : 4;
  TORCH_CHECK(V >= 1 && E >= 1 && H >= 1, "emb (V, E) and w_hh (", G,
              "H, H) must be non-empty, got emb ", emb.sizes(), " and w_hh ", w_hh.sizes());
  TORCH_CHECK(w_ih.size(0) == G * H && w_ih.size(1) == E, "w_ih must have shape (", G * H,
              ", ", E, "), got ", w_ih.sizes());
  TORCH_CHECK(w_hh.size(0) == G * H, "w_hh must have shape (", G * H, ", ", H, "), got ",
              w_hh.sizes());
  TORCH_CHECK(bias.size(0) == 4 * H, "bias must have shape (", 4 * H, "), got ", bias.sizes());
  TORCH_CHECK(w_out.size(0) == V && w_out.size(1) == H, "w_out must have shape (", V, ", ", H,
              "), got ", w_out.sizes());
  TORCH_CHECK(b_out.size(0) == V, "b_out must have shape (", V, "), got ", b_out.sizes());
  TORCH_CHECK(V <= (int64_t{1} << 31), "emb: vocabulary size must be < 2**31, got ", V);
  return LSTMWeightsView{emb.data_ptr<float>(),   w_ih.data_ptr<float>(),
                         w_hh.data_ptr<float>(),  bias.data_ptr<float>(),
                         w_out.data_ptr<float>(), b_out.data_ptr<float>(), V, E, H,
                         static_cast<int>(cell)};
}

// An optional per-row initial state (B, H) float32; returns its data or nullptr.
inline const float* check_state(const c10::optional<at::Tensor>& t, const char* name,
                                int64_t B, int64_t H) {
  if (!t.has_value() || !t->defined()) return nullptr;
  check_cpu_tensor(*t, name, at::kFloat, 2);
  TORCH_CHECK(t->size(0) == B && t->size(1) == H, name, " must have shape (", B, ", ", H,
              "), got ", t->sizes());
  return t->data_ptr<float>();
}

inline void check_token_range(const at::Tensor& t, const char* name, int64_t V) {
  if (t.numel() == 0) return;
  const int64_t* p = t.data_ptr<int64_t>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    TORCH_CHECK(p[i] >= 0 && p[i] < V, name, " has token id ", p[i], " at flat index ", i,
                ", outside [0, ", V, ")");
}

inline float check_temperature(double temperature) {
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0.0,
              "temperature must be a finite number > 0, got ", temperature);
  const float t = static_cast<float>(temperature);
  TORCH_CHECK(t > 0.0f && std::isfinite(t), "temperature must be representable as a float32 > 0, got ",
              temperature);
  return t;
}

inline void check_start_token(int64_t start_token, int64_t V) {
  TORCH_CHECK(start_token >= 0 && start_token < V, "start_token must be in [0, ", V, "), got ",
              start_token);
}

inline int torch_threads() { return at::get_num_threads(); }

// The fused core's path in use (csrc/cpu/isa.cpp); a bad SEQGAN_FAST_ISA is an error here.
inline const CoreKernels& cpu_kernels() {
  const char* error = nullptr;
  const CoreKernels* k = active_kernels(&error);
  TORCH_CHECK(k != nullptr, error);
  return *k;
}

}  // namespace seqgan
