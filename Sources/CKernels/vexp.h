/* Internal to CKernels: e^x on 16 lanes (kernels.c's SiLU, attention.c's softmax). */
#ifndef DISTILL_VEXP_H
#define DISTILL_VEXP_H

#include <immintrin.h>

/* e^x for x within [-87.33654, 88] (callers clamp; a NaN propagates): Cody-Waite reduction
 * x = n ln2 + r, |r| <= ln2/2, Cephes expf's degree-5 polynomial for e^r (kernels.c's scalar
 * fast_exp), and 2^n by vscalefps. */
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 er = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(er, n);
}

#endif
