// Argument checks shared by the CUDA host launchers: every precondition is a TORCH_CHECK that
// names the argument, run before anything is enqueued (no out-of-bounds access on device).
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>

#include "seqgan_kernels.cuh"

namespace seqgan_cuda {

inline void check_cuda_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype,
                              int64_t dim, const at::Device& device) {
  TORCH_CHECK(t.defined(), name, " must be a defined tensor");
  TORCH_CHECK(t.device().is_cuda(), name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.device() == device, name, " is on ", t.device(), " but emb is on ", device);
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

inline LstmWeightsView check_weights(const at::Tensor& emb, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias,
                                     const at::Tensor& w_out, const at::Tensor& b_out,
                                     int64_t start_token, int64_t cell = kCellLSTM) {
  TORCH_CHECK(cell == kCellLSTM || cell == kCellGRU, "cell must be 0 (lstm) or 1 (gru), got ",
              cell);
  TORCH_CHECK(emb.defined() && emb.device().is_cuda(), "emb must be a CUDA tensor");
  const at::Device dev = emb.device();
  check_cuda_tensor(emb, "emb", at::kFloat, 2, dev);
  check_cuda_tensor(w_ih, "w_ih", at::kFloat, 2, dev);
  check_cuda_tensor(w_hh, "w_hh", at::kFloat, 2, dev);
  check_cuda_tensor(bias, "bias", at::kFloat, 1, dev);
  check_cuda_tensor(w_out, "w_out", at::kFloat, 2, dev);
  check_cuda_tensor(b_out, "b_out", at::kFloat, 1, dev);
  const int64_t V = emb.size(0), E = emb.size(1), H = w_hh.size(1);
  const int64_t G = cell == kCellGRU ? 3 : 4;
  TORCH_CHECK(V >= 1 && E >= 1 && H >= 1, "emb (V, E) and w_hh (", G,
              "H, H) must be non-empty, got emb ", emb.sizes(), " and w_hh ", w_hh.sizes());
  TORCH_CHECK(V < (int64_t{1} << 31) && E < (1 << 20) && H < (1 << 20),
              "emb/w_hh: sizes must fit the kernels' 32-bit indices, got emb ", emb.sizes(),
              " and w_hh ", w_hh.sizes());
  TORCH_CHECK(w_ih.size(0) == G * H && w_ih.size(1) == E, "w_ih must have shape (", G * H, ", ",
              E, "), got ", w_ih.sizes());
  TORCH_CHECK(w_hh.size(0) == G * H, "w_hh must have shape (", G * H, ", ", H, "), got ",
              w_hh.sizes());
  TORCH_CHECK(bias.size(0) == 4 * H, "bias must have shape (", 4 * H, "), got ", bias.sizes());
  TORCH_CHECK(w_out.size(0) == V && w_out.size(1) == H, "w_out must have shape (", V, ", ", H,
              "), got ", w_out.sizes());
  TORCH_CHECK(b_out.size(0) == V, "b_out must have shape (", V, "), got ", b_out.sizes());
  TORCH_CHECK(start_token >= 0 && start_token < V, "start_token must be in [0, ", V, "), got ",
              start_token);
  return LstmWeightsView{emb.data_ptr<float>(),   w_ih.data_ptr<float>(),
                         w_hh.data_ptr<float>(),  bias.data_ptr<float>(),
                         w_out.data_ptr<float>(), b_out.data_ptr<float>(),
                         static_cast<int>(V),     static_cast<int>(E),
                         static_cast<int>(H),     static_cast<int>(start_token),
                         static_cast<int>(cell)};
}

// An optional per-row initial state (B, H) float32 on emb's device; its data or nullptr.
inline const float* check_state(const c10::optional<at::Tensor>& t, const char* name,
                                int64_t B, int64_t H, const at::Device& device) {
  if (!t.has_value() || !t->defined()) return nullptr;
  check_cuda_tensor(*t, name, at::kFloat, 2, device);
  TORCH_CHECK(t->size(0) == B && t->size(1) == H, name, " must have shape (", B, ", ", H,
              "), got ", t->sizes());
  return t->data_ptr<float>();
}

// Token ids in [0, V): one device reduction and one synchronising read, before any launch.
inline void check_token_range(const at::Tensor& t, const char* name, int64_t V) {
  if (t.numel() == 0) return;
  const auto mm = at::aminmax(t);
  const int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
  TORCH_CHECK(lo >= 0 && hi < V, name, " has token ids in [", lo, ", ", hi,
              "], outside [0, ", V, ")");
}

inline float check_temperature(double temperature) {
  const float t = static_cast<float>(temperature);
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0.0 && std::isfinite(t) && t > 0.0f,
              "temperature must be a finite float32 > 0, got ", temperature);
  return t;
}

inline void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, " failed to launch: ", cudaGetErrorString(err));
}

inline at::Tensor workspace(size_t floats, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(floats)}, like.options().dtype(at::kFloat));
}

}  // namespace seqgan_cuda
