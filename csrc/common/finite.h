// The finite-value guard's check (op `first_non_finite`, seqgan_fast/guard.py; torch-free):
// the index of the first of n float arrays holding a NaN, an inf, or an element of magnitude
// >= 2^64, whose square overflows float32 (Adam's second moment then becomes inf and freezes
// the weight), or -1. The guard runs it on every gradient before and every parameter after
// each optimizer step; one pass over the arrays, both threads on every array.
#pragma once

#include "isa.h"

#include <algorithm>
#include <cstdint>

#include "parallel.h"
#include "vec.h"

namespace seqgan {
namespace SEQGAN_ISA {

// Whether a[0, n) is all finite and below 2^64 in magnitude: a lane's `x < limit &&
// x > -limit` is false for a NaN, an inf and a large value alike, so the loop is two
// compares and an AND per native vector, four vectors a step.
inline bool all_small_finite(const float* a, int64_t n) {
  constexpr float kLimit = 18446744073709551616.0f;  // 2^64
  const vn hi = nset1(kLimit), lo = nset1(-kLimit);
  constexpr int64_t W = kNativeLanes;
  vni ok0 = vni{} - 1, ok1 = ok0, ok2 = ok0, ok3 = ok0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const vn x0 = nload(a + i), x1 = nload(a + i + W), x2 = nload(a + i + 2 * W),
             x3 = nload(a + i + 3 * W);
    ok0 &= (x0 < hi) & (x0 > lo);
    ok1 &= (x1 < hi) & (x1 > lo);
    ok2 &= (x2 < hi) & (x2 > lo);
    ok3 &= (x3 < hi) & (x3 > lo);
  }
  const vni ok = ok0 & ok1 & ok2 & ok3;
  bool all = true;
  for (int l = 0; l < W; ++l) all = all && ok[l] != 0;
  for (; i < n; ++i) all = all && a[i] < kLimit && a[i] > -kLimit;
  return all;
}

inline int64_t first_non_finite_core(const float* const* arrays, const int64_t* sizes,
                                     int64_t n, int num_threads) {
  // Each thread checks its share of every array in order and stops at its first bad one;
  // the arrays before the smallest such index were then checked whole by every thread.
  int64_t first = n;
  constexpr int64_t kBlock = 1 << 16;
#pragma omp parallel num_threads(num_threads) reduction(min : first)
  {
    for (int64_t t = 0; t < n && t < first; ++t) {
      const int64_t blocks = (sizes[t] + kBlock - 1) / kBlock;
      int64_t b0, b1;
      this_thread_share(blocks, &b0, &b1);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t lo = b * kBlock, hi = std::min(sizes[t], lo + kBlock);
        if (!all_small_finite(arrays[t] + lo, hi - lo)) {
          first = t;
          break;
        }
      }
    }
  }
  return first == n ? -1 : first;
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
