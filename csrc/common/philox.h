// Philox4x32-10 (Salmon et al., SC'11) and the word -> uniform map of DESIGN §4.
// Torch-free: shared by the CPU kernels (csrc/cpu) and the ctest binary (tests/cpp).
#pragma once

#include "isa.h"

#include <cstdint>

namespace seqgan {
namespace SEQGAN_ISA {

struct Philox4 {
  uint32_t w[4];
};

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
// Triton's uint_to_uniform_float scale: u can be exactly 0, and rounds to 1.0f at the top.
constexpr float kUniformScale = 4.6566127342e-10f;

// Counter words (c0, c1, c2, c3) = (tile j, step s, row r, stream k); key = seed (lo, hi).
inline Philox4 philox4x32_10(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2,
                             uint32_t c3) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t lo0 = static_cast<uint32_t>(p0), hi0 = static_cast<uint32_t>(p0 >> 32);
    const uint32_t lo1 = static_cast<uint32_t>(p1), hi1 = static_cast<uint32_t>(p1 >> 32);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Word -> uniform in [0, 1]: reinterpret as int32 x; x < 0 -> -x - 1; float(x) * scale.
inline float to_uniform(uint32_t word) {
  int32_t x = static_cast<int32_t>(word);
  if (x < 0) x = -(x + 1);  // == -x - 1 without overflow at INT32_MIN
  return static_cast<float>(x) * kUniformScale;
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
