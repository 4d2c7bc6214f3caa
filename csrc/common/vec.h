// 16-lane float vectors (GCC/Clang vector extensions) and the vectorised exp the fused
// sampler and LSTM cell use. With AVX-512 one v16 is one zmm register; without it the
// compiler splits it into ymm/xmm halves, so the same code builds portably.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
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
inline v16 vset1(float x) { return v16{} + x; }

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

inline float hmax(v16 v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
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

inline v16 vsigmoid(v16 x) { return vset1(1.0f) / (vset1(1.0f) + vexp(-x)); }

// tanh(x) = 1 - 2 / (e^{2x} + 1): absolute error a few 1e-8, enough for the LSTM state.
inline v16 vtanh(v16 x) { return vset1(1.0f) - vset1(2.0f) / (vexp(x + x) + vset1(1.0f)); }

}  // namespace seqgan
