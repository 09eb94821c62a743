#include "gemm.h"

/* Mixed-precision products: operands rounded to bfloat16, products accumulated in float32
 * with vdpbf16ps (AVX512-BF16), which multiplies 32 pairs of bfloat16 and adds each pair's sum
 * to one of 16 float32 lanes: twice the multiply-adds of a float32 FMA per instruction.
 *
 * gemm.c packs its operands in float32 as always (every view, patch gathering included) and
 * then converts each packed block in place: a strip or panel keeps its place and holds pairs
 * of adjacent depth entries as one 32-bit word, so a broadcast of one word of A and a load
 * of 16 words of B feed one vdpbf16ps. Conversion touches each packed element once; the
 * micro-kernel reads it (m / MR or n / NR) times. */

#if GEMM_X86

BF16_TARGET static inline __m256i pair8(__m256 lo, __m256 hi) {
  const __m256i l = _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(lo));
  const __m256i h = _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(hi));
  return _mm256_or_si256(l, _mm256_slli_epi32(h, 16));
}

/* Pair p is written at p * tile, over rows 2p and 2p + 1, which are read first: in place. */
BF16_TARGET void gemm_bf16_convert(float *block, long tiles, long depth, long tile) {
  const long pairs = depth / 2;
  for (long q = 0; q < tiles; q++) {
    float *s = block + q * depth * tile;
    if (tile == NR) {
      for (long p = 0; p < pairs; p++) {
        const float *r = s + 2 * p * NR;
        const __m512i w0 = bf16_pairs16(_mm512_load_ps(r), _mm512_load_ps(r + NR));
        const __m512i w1 = bf16_pairs16(_mm512_load_ps(r + 16), _mm512_load_ps(r + NR + 16));
        _mm512_store_si512((void *)(s + p * NR), w0);
        _mm512_store_si512((void *)(s + p * NR + 16), w1);
      }
      if (depth % 2) {
        const float *r = s + (depth - 1) * NR;
        const __m512i w0 = bf16_pairs16(_mm512_load_ps(r), _mm512_setzero_ps());
        const __m512i w1 = bf16_pairs16(_mm512_load_ps(r + 16), _mm512_setzero_ps());
        _mm512_store_si512((void *)(s + pairs * NR), w0);
        _mm512_store_si512((void *)(s + pairs * NR + 16), w1);
      }
    } else {
      for (long p = 0; p < pairs; p++) {
        const float *r = s + 2 * p * MR;
        _mm256_storeu_si256((void *)(s + p * MR), pair8(_mm256_loadu_ps(r), _mm256_loadu_ps(r + MR)));
      }
      if (depth % 2)
        _mm256_storeu_si256((void *)(s + pairs * MR), pair8(_mm256_loadu_ps(s + (depth - 1) * MR), _mm256_setzero_ps()));
    }
  }
}

BF16_TARGET void gemm_bf16_micro_kernel(long kc, const float *a, const float *b, float *c, long c_rs, long c_cs,
                                        float alpha, float beta, long mr, long nr) {
  const int32_t *aw = (const int32_t *)a;
  __m512 acc0[MR] = {0}, acc1[MR] = {0};
  const long pairs = (kc + 1) / 2;
  for (long p = 0; p < pairs; p++) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(b + p * NR));
    const __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + p * NR + 16));
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(aw[p * MR + i]);
      acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, b1);
    }
  }
  gemm_store_tile(acc0, acc1, c, c_rs, c_cs, alpha, beta, mr, nr);
}

#endif

int distill_bf16_supported(void) {
#if GEMM_X86
  return distill_sgemm_supported() && __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}
