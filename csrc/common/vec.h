// 16-lane float vectors (GCC/Clang vector extensions) and the vectorised exp the fused
// sampler and LSTM cell use. With AVX-512 one v16 is one zmm register; without it the
// compiler splits it into ymm/xmm halves, so the same code builds portably.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
// v16 values never cross a non-inline call, so the psABI note for builds without AVX-512
// (SEQGAN_FAST_PORTABLE=1) does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace seqgan {

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
constexpr int kLanes = 16;

inline v16 vload(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }
inline v16 vset1(float x) {
#if defined(__AVX512F__)
  return (v16)_mm512_set1_ps(x);
#else
  return x - v16{};  // x - (+0) == x for every x, so this folds to a broadcast
#endif
}

// a * b + c with one rounding where the target has FMA. Written out because the extension
// is compiled in ISO C++ mode, where GCC does not contract a * b + c by itself.
inline v16 vfma(v16 a, v16 b, v16 c) {
#if defined(__AVX512F__)
  return (v16)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
  typedef float v8 __attribute__((vector_size(32)));
  union U { v16 w; v8 h[2]; };
  U ua{a}, ub{b}, uc{c}, r;
  r.h[0] = (v8)_mm256_fmadd_ps((__m256)ua.h[0], (__m256)ub.h[0], (__m256)uc.h[0]);
  r.h[1] = (v8)_mm256_fmadd_ps((__m256)ua.h[1], (__m256)ub.h[1], (__m256)uc.h[1]);
  return r.w;
#else
  return a * b + c;
#endif
}

inline v16 vmax(v16 a, v16 b) { return a > b ? a : b; }
inline v16 vmin(v16 a, v16 b) { return a < b ? a : b; }

// Horizontal reductions as trees (log depth), not 15-long dependency chains.
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef double v8d __attribute__((vector_size(64)));

inline float hmax(v16 v) {
  const v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  const v8 b = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const v8 m8 = a > b ? a : b;
  const v4 c = __builtin_shufflevector(m8, m8, 0, 1, 2, 3);
  const v4 d = __builtin_shufflevector(m8, m8, 4, 5, 6, 7);
  const v4 m4 = c > d ? c : d;
  const float x = m4[0] > m4[2] ? m4[0] : m4[2];
  const float y = m4[1] > m4[3] ? m4[1] : m4[3];
  return x > y ? x : y;
}

// Sum of the 16 lanes, in double.
inline double hsum_d(v16 v) {
  const v8d a = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7),
                                        v8d);
  const v8d b = __builtin_convertvector(
      __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
  const v8d s = a + b;
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

// exp(x), lanewise, within 2 ulp of the correctly rounded result for x in [-104, 88]
// (the test binary checks this against std::exp): round n = x*log2(e), Cody-Waite
// reduction r = x - n*ln2 in two parts, a degree-6 polynomial for e^r on |r| <= ln2/2
// (Cephes' expf coefficients), then 2^n applied in two halves so that results in the
// subnormal range and exact zeros (x = -inf) come out as the libm exp gives them.
inline v16 vexp(v16 x) {
  x = vmax(x, vset1(-150.0f));
  x = vmin(x, vset1(88.8f));
  const v16 shifter = vset1(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const v16 t = vfma(x, vset1(1.44269504088896341f), shifter);
  const v16 n = t - shifter;
  v16 r = vfma(n, vset1(-0.693359375f), x);
  r = vfma(n, vset1(2.12194440e-4f), r);
  v16 p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p * r, r, r) + vset1(1.0f);
  const v16i ni = __builtin_convertvector(n, v16i);
  const v16i n1 = ni >> 1;
  const v16i n2 = ni - n1;
  v16 s1, s2;
  const v16i e1 = (n1 + 127) << 23, e2 = (n2 + 127) << 23;
  std::memcpy(&s1, &e1, sizeof s1);
  std::memcpy(&s2, &e2, sizeof s2);
  return p * s1 * s2;
}

// log(x), lanewise, within 2 ulp for normal positive x (checked by the test binary);
// log(0) = -inf, log(x < 0) = NaN, log(inf) = inf. x = 2^e * f with f in [sqrt(1/2),
// sqrt(2)), log f by Cephes' logf polynomial in f - 1, e*ln2 added in two parts.
inline v16 vlog(v16 x) {
  v16i bits;
  std::memcpy(&bits, &x, sizeof bits);
  v16i e = ((bits >> 23) & 0xff) - 126;
  const v16i mbits = (bits & 0x007fffff) | 0x3f000000;  // f in [0.5, 1)
  v16 f;
  std::memcpy(&f, &mbits, sizeof f);
  const v16i small = f < vset1(0.707106781186547524f);  // -1 where f < sqrt(1/2)
  e = e + small;
  const v16 fm = f - vset1(1.0f);
  f = small ? f + fm : fm;  // f' = 2f - 1 or f - 1, in [sqrt(1/2)-1, sqrt(2)-1)
  const v16 z = f * f;
  v16 y = vset1(7.0376836292e-2f);
  y = vfma(y, f, vset1(-1.1514610310e-1f));
  y = vfma(y, f, vset1(1.1676998740e-1f));
  y = vfma(y, f, vset1(-1.2420140846e-1f));
  y = vfma(y, f, vset1(1.4249322787e-1f));
  y = vfma(y, f, vset1(-1.6668057665e-1f));
  y = vfma(y, f, vset1(2.0000714765e-1f));
  y = vfma(y, f, vset1(-2.4999993993e-1f));
  y = vfma(y, f, vset1(3.3333331174e-1f));
  y = y * f * z;
  const v16 ef = __builtin_convertvector(e, v16);
  y = vfma(ef, vset1(-2.12194440e-4f), y);
  y = vfma(z, vset1(-0.5f), y);
  v16 r = vfma(ef, vset1(0.693359375f), f + y);
  const float inf = __builtin_inff();
  r = x == vset1(0.0f) ? vset1(-inf) : r;
  r = x == vset1(inf) ? vset1(inf) : r;
  r = x < vset1(0.0f) ? vset1(__builtin_nanf("")) : r;
  return r;
}

inline v16 vsigmoid(v16 x) { return vset1(1.0f) / (vset1(1.0f) + vexp(-x)); }

// tanh(x) = 1 - 2 / (e^{2x} + 1): absolute error a few 1e-8, enough for the LSTM state.
inline v16 vtanh(v16 x) { return vset1(1.0f) - vset1(2.0f) / (vexp(x + x) + vset1(1.0f)); }

}  // namespace seqgan
