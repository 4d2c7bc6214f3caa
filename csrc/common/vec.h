// 16-lane float vectors (GCC/Clang vector extensions) and the vectorised exp the fused
// sampler and LSTM cell use. v16 is the logical unit of every kernel (one zmm register with
// AVX-512, two ymm halves with AVX2, four xmm quarters on the baseline), so all paths compute
// the same lanes in the same order; the arithmetic below is written per ISA only where the
// compiler's generic splitting of 64-byte vectors was measured to go through memory (FMA:
// a union-based split spilled every accumulator on AVX2). `vn` is the native register, for
// the register-blocked GEMM microkernel (gemm.h).
#pragma once

#include "isa.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
// v16 values never cross a call between differently compiled code (every path's copy lives
// in its own namespace), so the psABI note for 64-byte vectors does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace seqgan {
namespace SEQGAN_ISA {

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef double v8d __attribute__((vector_size(64)));
constexpr int kLanes = 16;

#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
typedef v16 vn;
#elif SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX2
typedef v8 vn;
#else
typedef v4 vn;
#endif
constexpr int kNativeLanes = static_cast<int>(sizeof(vn) / sizeof(float));

inline v16 vload(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }
inline vn nload(const float* p) {
  vn v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void nstore(float* p, vn v) { std::memcpy(p, &v, sizeof v); }

inline v16 vset1(float x) {
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  return (v16)_mm512_set1_ps(x);
#else
  return x - v16{};  // x - (+0) == x for every x, so this folds to a broadcast
#endif
}
inline vn nset1(float x) { return x - vn{}; }

// ---- native-width lanewise math: the only place the arithmetic is written --------------

typedef int32_t vni __attribute__((vector_size(sizeof(vn))));

// a * b + c with one rounding where the path has FMA (the baseline rounds twice). Written out
// because the extension is compiled in ISO C++ mode, where GCC does not contract a * b + c.
inline vn nfma(vn a, vn b, vn c) {
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  return (vn)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX2
  return (vn)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}
inline vn nmax(vn a, vn b) { return a > b ? a : b; }
inline vn nmin(vn a, vn b) { return a < b ? a : b; }

// exp(x), lanewise, within 2 ulp of the correctly rounded result for x in [-104, 88]
// (the test binary checks this against std::exp): round n = x*log2(e), Cody-Waite
// reduction r = x - n*ln2 in two parts, a degree-6 polynomial for e^r on |r| <= ln2/2
// (Cephes' expf coefficients), then 2^n applied in two halves so that results in the
// subnormal range and exact zeros (x = -inf) come out as the libm exp gives them.
inline vn nexp(vn x) {
  x = nmax(x, nset1(-150.0f));
  x = nmin(x, nset1(88.8f));
  const vn shifter = nset1(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vn t = nfma(x, nset1(1.44269504088896341f), shifter);
  const vn n = t - shifter;
  vn r = nfma(n, nset1(-0.693359375f), x);
  r = nfma(n, nset1(2.12194440e-4f), r);
  vn p = nset1(1.9875691500e-4f);
  p = nfma(p, r, nset1(1.3981999507e-3f));
  p = nfma(p, r, nset1(8.3334519073e-3f));
  p = nfma(p, r, nset1(4.1665795894e-2f));
  p = nfma(p, r, nset1(1.6666665459e-1f));
  p = nfma(p, r, nset1(5.0000001201e-1f));
  p = nfma(p * r, r, r) + nset1(1.0f);
  const vni ni = __builtin_convertvector(n, vni);
  const vni n1 = ni >> 1;
  const vni n2 = ni - n1;
  vn s1, s2;
  const vni e1 = (n1 + 127) << 23, e2 = (n2 + 127) << 23;
  std::memcpy(&s1, &e1, sizeof s1);
  std::memcpy(&s2, &e2, sizeof s2);
  return p * s1 * s2;
}

// log(x), lanewise, within 2 ulp for normal positive x (checked by the test binary);
// log(0) = -inf, log(x < 0) = NaN, log(inf) = inf. x = 2^e * f with f in [sqrt(1/2),
// sqrt(2)), log f by Cephes' logf polynomial in f - 1, e*ln2 added in two parts.
inline vn nlog(vn x) {
  vni bits;
  std::memcpy(&bits, &x, sizeof bits);
  vni e = ((bits >> 23) & 0xff) - 126;
  const vni mbits = (bits & 0x007fffff) | 0x3f000000;  // f in [0.5, 1)
  vn f;
  std::memcpy(&f, &mbits, sizeof f);
  const vni small = f < nset1(0.707106781186547524f);  // -1 where f < sqrt(1/2)
  e = e + small;
  const vn fm = f - nset1(1.0f);
  f = small ? f + fm : fm;  // f' = 2f - 1 or f - 1, in [sqrt(1/2)-1, sqrt(2)-1)
  const vn z = f * f;
  vn y = nset1(7.0376836292e-2f);
  y = nfma(y, f, nset1(-1.1514610310e-1f));
  y = nfma(y, f, nset1(1.1676998740e-1f));
  y = nfma(y, f, nset1(-1.2420140846e-1f));
  y = nfma(y, f, nset1(1.4249322787e-1f));
  y = nfma(y, f, nset1(-1.6668057665e-1f));
  y = nfma(y, f, nset1(2.0000714765e-1f));
  y = nfma(y, f, nset1(-2.4999993993e-1f));
  y = nfma(y, f, nset1(3.3333331174e-1f));
  y = y * f * z;
  const vn ef = __builtin_convertvector(e, vn);
  y = nfma(ef, nset1(-2.12194440e-4f), y);
  y = nfma(z, nset1(-0.5f), y);
  vn r = nfma(ef, nset1(0.693359375f), f + y);
  const float inf = __builtin_inff();
  r = x == nset1(0.0f) ? nset1(-inf) : r;
  r = x == nset1(inf) ? nset1(inf) : r;
  r = x < nset1(0.0f) ? nset1(__builtin_nanf("")) : r;
  return r;
}

inline vn nsigmoid(vn x) { return nset1(1.0f) / (nset1(1.0f) + nexp(-x)); }

// tanh(x) = 1 - 2 / (e^{2x} + 1): absolute error a few 1e-8, enough for the LSTM state.
inline vn ntanh(vn x) { return nset1(1.0f) - nset1(2.0f) / (nexp(x + x) + nset1(1.0f)); }

// ---- v16 = kParts native vectors ------------------------------------------------------
// GCC lowers selects, compares and conversions on vectors wider than the target's registers
// lane by lane through the stack (measured: ~250 spills per sample step on AVX2), so every
// v16 function below splits into native registers, applies the native form, and joins.

constexpr int kParts = kLanes / kNativeLanes;

struct v16parts {
  vn p[kParts];
};
inline v16parts split(v16 v) {
  v16parts r;
  std::memcpy(r.p, &v, sizeof v);
  return r;
}
inline v16 join(const v16parts& r) {
  v16 v;
  std::memcpy(&v, r.p, sizeof v);
  return v;
}
template <class F>
inline v16 vmap(v16 a, F f) {
  v16parts x = split(a);
#pragma GCC unroll 4
  for (int i = 0; i < kParts; ++i) x.p[i] = f(x.p[i]);
  return join(x);
}
template <class F>
inline v16 vmap(v16 a, v16 b, F f) {
  v16parts x = split(a);
  const v16parts y = split(b);
#pragma GCC unroll 4
  for (int i = 0; i < kParts; ++i) x.p[i] = f(x.p[i], y.p[i]);
  return join(x);
}

inline v16 vfma(v16 a, v16 b, v16 c) {
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  return nfma(a, b, c);
#else
  v16parts x = split(a);
  const v16parts y = split(b), z = split(c);
#pragma GCC unroll 4
  for (int i = 0; i < kParts; ++i) x.p[i] = nfma(x.p[i], y.p[i], z.p[i]);
  return join(x);
#endif
}
inline v16 vmax(v16 a, v16 b) {
  return vmap(a, b, [](vn x, vn y) { return nmax(x, y); });
}
inline v16 vmin(v16 a, v16 b) {
  return vmap(a, b, [](vn x, vn y) { return nmin(x, y); });
}
inline v16 vexp(v16 x) {
  return vmap(x, [](vn a) { return nexp(a); });
}
inline v16 vlog(v16 x) {
  return vmap(x, [](vn a) { return nlog(a); });
}
inline v16 vsigmoid(v16 x) {
  return vmap(x, [](vn a) { return nsigmoid(a); });
}
inline v16 vtanh(v16 x) {
  return vmap(x, [](vn a) { return ntanh(a); });
}

// Horizontal reductions as trees (log depth), not 15-long dependency chains.
inline float hmax4(v4 m4) {
  const float x = m4[0] > m4[2] ? m4[0] : m4[2];
  const float y = m4[1] > m4[3] ? m4[1] : m4[3];
  return x > y ? x : y;
}

inline float hmax(v16 v) {
#if SEQGAN_ISA_LEVEL == SEQGAN_ISA_BASELINE
  const v16parts x = split(v);
  return hmax4(nmax(nmax(x.p[0], x.p[1]), nmax(x.p[2], x.p[3])));
#else
  const v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  const v8 b = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const v8 m8 = a > b ? a : b;
  const v4 c = __builtin_shufflevector(m8, m8, 0, 1, 2, 3);
  const v4 d = __builtin_shufflevector(m8, m8, 4, 5, 6, 7);
  return hmax4(c > d ? c : d);
#endif
}

// Sum of the 16 lanes, in double: s_i = v_i + v_{i+8}, then ((s0+s4) + (s1+s5)) +
// ((s2+s6) + (s3+s7)), in 4-lane double vectors (native on AVX2; halves of a zmm).
inline double hsum_d(v16 v) {
  typedef double v4d __attribute__((vector_size(32)));
  const v16parts x = split(v);
  v4 q[4];
  std::memcpy(q, x.p, sizeof q);
  const v4d s_lo = __builtin_convertvector(q[0], v4d) + __builtin_convertvector(q[2], v4d);
  const v4d s_hi = __builtin_convertvector(q[1], v4d) + __builtin_convertvector(q[3], v4d);
  const v4d t = s_lo + s_hi;
  return (t[0] + t[1]) + (t[2] + t[3]);
}

}  // namespace SEQGAN_ISA
}  // namespace seqgan
