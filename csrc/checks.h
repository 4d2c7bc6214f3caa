// Argument checks shared by the CPU ops (csrc/cpu/*.cpp) and the CUDA host launchers
// (csrc/cuda/*.cu): every precondition is a TORCH_CHECK that names the argument, run before a
// kernel touches memory or anything is enqueued. An op's tensors must all be on its weights'
// device (emb's). The CUDA part (the kernels' 32-bit weights view, launch errors) compiles only
// in nvcc's translation units.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <tuple>

#include "common/api.h"
#ifdef __CUDACC__
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "seqgan_kernels.cuh"
#endif

namespace seqgan {

inline void check_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype,
                         int64_t dim, const at::Device& device) {
  TORCH_CHECK(t.defined(), name, " must be a defined tensor");
  TORCH_CHECK(t.device().type() == device.type(), name, " must be a ",
              device.is_cuda() ? "CUDA" : "CPU", " tensor, got ", t.device());
  TORCH_CHECK(t.device() == device, name, " is on ", t.device(), " but emb is on ", device);
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

inline void check_cpu_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype,
                             int64_t dim) {
  check_tensor(t, name, dtype, dim, at::Device(at::kCPU));
}

struct WeightSizes {
  at::Device device;
  int64_t V, E, H;
};

// The generator's weights: dtypes, device (emb's, which must be of `type`), contiguity and
// mutual shapes. `cell`: kCellLSTM (4 gate blocks in w_ih, w_hh) or kCellGRU (3); bias is 4H
// for both.
inline WeightSizes check_weight_tensors(const at::Tensor& emb, const at::Tensor& w_ih,
                                        const at::Tensor& w_hh, const at::Tensor& bias,
                                        const at::Tensor& w_out, const at::Tensor& b_out,
                                        int64_t cell, at::DeviceType type) {
  TORCH_CHECK(cell == kCellLSTM || cell == kCellGRU, "cell must be 0 (lstm) or 1 (gru), got ",
              cell);
  TORCH_CHECK(emb.defined(), "emb must be a defined tensor");
  const at::Device dev = emb.device().type() == type ? emb.device() : at::Device(type);
  check_tensor(emb, "emb", at::kFloat, 2, dev);
  check_tensor(w_ih, "w_ih", at::kFloat, 2, dev);
  check_tensor(w_hh, "w_hh", at::kFloat, 2, dev);
  check_tensor(bias, "bias", at::kFloat, 1, dev);
  check_tensor(w_out, "w_out", at::kFloat, 2, dev);
  check_tensor(b_out, "b_out", at::kFloat, 1, dev);
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
  TORCH_CHECK(V < (int64_t{1} << 31), "emb: vocabulary size must be < 2**31, got ", V);
  return WeightSizes{dev, V, E, H};
}

// The CPU core's view of the weights (csrc/common/api.h).
inline LSTMWeightsView check_weights(const at::Tensor& emb, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias,
                                     const at::Tensor& w_out, const at::Tensor& b_out,
                                     int64_t cell = kCellLSTM) {
  const WeightSizes s = check_weight_tensors(emb, w_ih, w_hh, bias, w_out, b_out, cell, at::kCPU);
  return LSTMWeightsView{emb.data_ptr<float>(),   w_ih.data_ptr<float>(),
                         w_hh.data_ptr<float>(),  bias.data_ptr<float>(),
                         w_out.data_ptr<float>(), b_out.data_ptr<float>(), s.V, s.E, s.H,
                         static_cast<int>(cell)};
}

// An optional per-row initial state (B, H) float32 on `device`; returns its data or nullptr.
inline const float* check_state(const c10::optional<at::Tensor>& t, const char* name,
                                int64_t B, int64_t H,
                                const at::Device& device = at::Device(at::kCPU)) {
  if (!t.has_value() || !t->defined()) return nullptr;
  check_tensor(*t, name, at::kFloat, 2, device);
  TORCH_CHECK(t->size(0) == B && t->size(1) == H, name, " must have shape (", B, ", ", H,
              "), got ", t->sizes());
  return t->data_ptr<float>();
}

// Token ids in [0, V). On CPU the first bad id is named with its index; on a GPU one device
// reduction and one synchronising read give the range, before any launch.
inline void check_token_range(const at::Tensor& t, const char* name, int64_t V) {
  if (t.numel() == 0) return;
  if (!t.device().is_cpu()) {
    const auto mm = at::aminmax(t);
    const int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < V, name, " has token ids in [", lo, ", ", hi,
                "], outside [0, ", V, ")");
    return;
  }
  const int64_t* p = t.data_ptr<int64_t>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    TORCH_CHECK(p[i] >= 0 && p[i] < V, name, " has token id ", p[i], " at flat index ", i,
                ", outside [0, ", V, ")");
}

inline float check_temperature(double temperature) {
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0.0,
              "temperature must be a finite number > 0, got ", temperature);
  const float t = static_cast<float>(temperature);
  TORCH_CHECK(t > 0.0f && std::isfinite(t),
              "temperature must be representable as a float32 > 0, got ", temperature);
  return t;
}

inline void check_start_token(int64_t start_token, int64_t V) {
  TORCH_CHECK(start_token >= 0 && start_token < V, "start_token must be in [0, ", V, "), got ",
              start_token);
}

inline int torch_threads() { return at::get_num_threads(); }

// The fused CPU core's path in use (csrc/cpu/isa.cpp); a bad SEQGAN_FAST_ISA is an error here.
inline const CoreKernels& cpu_kernels() {
  const char* error = nullptr;
  const CoreKernels* k = active_kernels(&error);
  TORCH_CHECK(k != nullptr, error);
  return *k;
}

}  // namespace seqgan

#ifdef __CUDACC__
namespace seqgan_cuda {

using seqgan::check_start_token;
using seqgan::check_state;
using seqgan::check_temperature;
using seqgan::check_tensor;
using seqgan::check_token_range;

// The CUDA kernels' view (kernels/seqgan_kernels.cuh): the same weights with 32-bit sizes, which
// the kernels' index arithmetic uses, and the start token.
inline LSTMWeightsView check_weights(const at::Tensor& emb, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias,
                                     const at::Tensor& w_out, const at::Tensor& b_out,
                                     int64_t start_token, int64_t cell = kCellLSTM) {
  const seqgan::WeightSizes s =
      seqgan::check_weight_tensors(emb, w_ih, w_hh, bias, w_out, b_out, cell, at::kCUDA);
  TORCH_CHECK(s.E < (1 << 20) && s.H < (1 << 20),
              "emb/w_hh: sizes must fit the kernels' 32-bit indices, got emb ", emb.sizes(),
              " and w_hh ", w_hh.sizes());
  check_start_token(start_token, s.V);
  return LSTMWeightsView{emb.data_ptr<float>(),   w_ih.data_ptr<float>(),
                         w_hh.data_ptr<float>(),  bias.data_ptr<float>(),
                         w_out.data_ptr<float>(), b_out.data_ptr<float>(),
                         static_cast<int>(s.V),   static_cast<int>(s.E),
                         static_cast<int>(s.H),   static_cast<int>(start_token),
                         static_cast<int>(cell)};
}

inline void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, " failed to launch: ", cudaGetErrorString(err));
}

inline at::Tensor workspace(size_t floats, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(floats)}, like.options().dtype(at::kFloat));
}

}  // namespace seqgan_cuda
#endif
