#include "gemm.h"

#include <time.h>

/* Mixed-precision products: operands rounded to bfloat16, products accumulated in float32.
 *
 * DISTILL_BF16_DOT: vdpbf16ps (AVX512-BF16), which multiplies 32 pairs of bfloat16 and adds
 * each pair's sum to one of 16 float32 lanes: twice the multiply-adds of a float32 FMA per
 * instruction, and twice the throughput where the CPU issues it as often as an FMA.
 * DISTILL_BF16_ROUNDED: where it does not (Intel's Emerald Rapids, measured, issues it at a
 * quarter of the FMA rate: half the multiply-adds per cycle), the packed operands are rounded
 * to bfloat16 and kept as float32, and the float32 micro-kernel multiplies them: a product of
 * two bfloat16 values is exact in float32, so the sums are those of vdpbf16ps in another order.
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

BF16_TARGET void gemm_bf16_round(float *block, long count) {
  for (long q = 0; q < count; q += 16) {
    const __mmask16 m = lanes(0, count - q);
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, block + q));
    _mm512_mask_storeu_ps(block + q, m, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
}

typedef struct {
  const float *x;
  float *copy;
  long count, unit;
} rounding_job;

BF16_TARGET static void rounding_chunk(void *context, long chunk) {
  const rounding_job *job = context;
  const long first = chunk * job->unit, n = job->count - first < job->unit ? job->count - first : job->unit;
  memcpy(job->copy + first, job->x + first, (size_t)n * sizeof(float));
  gemm_bf16_round(job->copy + first, n);
}

static _Thread_local float *rounded_copies[2];
static _Thread_local size_t rounded_copy_bytes[2];

const float *bf16_rounded_copy(long threads, const float *x, long count, int slot) {
  rounding_job job = {.x = x, .count = count, .unit = 1L << 16};
  job.copy = grow_scratch((void **)&rounded_copies[slot], &rounded_copy_bytes[slot], (size_t)count * sizeof(float));
  distill_parallel_run(threads, (count + job.unit - 1) / job.unit, rounding_chunk, &job);
  return job.copy;
}

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define CHAINS 12
#define ROUNDS 2048

/* Multiply-adds per second of 12 independent chains of FMA or of vdpbf16ps (best of five). */
BF16_TARGET static double multiply_adds_per_second(int dot) {
  double best = 0;
  for (int trial = 0; trial < 5; trial++) {
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    const __m512 a = _mm512_set1_ps(0.5f), b = _mm512_set1_ps(0.25f);
    const __m512bh pa = (__m512bh)_mm512_set1_epi32(0x3F003F00), pb = (__m512bh)_mm512_set1_epi32(0x3E803E80);
    const double start = seconds_now();
    for (long r = 0; r < ROUNDS; r++) {
#pragma clang loop unroll(full)
      for (int i = 0; i < CHAINS; i++) acc[i] = dot ? _mm512_dpbf16_ps(acc[i], pa, pb) : _mm512_fmadd_ps(a, acc[i], b);
      __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]));
    }
    const double elapsed = seconds_now() - start;
    float sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_ps(acc[i]);
    __asm__ volatile("" : : "x"(sink));
    const double rate = (double)ROUNDS * CHAINS * 16 * (dot ? 2 : 1) / elapsed;
    if (rate > best) best = rate;
  }
  return best;
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

int distill_bf16_fastest_kernel(void) {
#if GEMM_X86
  static _Atomic int kernel; /* 0 until measured; a race only repeats the measurement */
  if (!kernel && distill_bf16_supported())
    kernel = multiply_adds_per_second(1) >= multiply_adds_per_second(0) ? DISTILL_BF16_DOT : DISTILL_BF16_ROUNDED;
  return kernel ? kernel : DISTILL_BF16_DOT;
#else
  return DISTILL_BF16_DOT;
#endif
}

int distill_bf16_supported(void) {
#if GEMM_X86
  return distill_sgemm_supported() && __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}
