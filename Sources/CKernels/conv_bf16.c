#include "gemm.h"

#include <stdlib.h>
#include <string.h>

/* Direct convolutions on bfloat16 operands (AVX512-BF16), under the conditions of conv.c's
 * float32 direct kernel and with its tiles: 8 output channels by two 16-pixel vectors.
 *
 * vdpbf16ps sums a pair of products per lane, so the pairs run along the input channels: the
 * image is first converted to planes of channel pairs ([n, c/2, h, w] 32-bit words, channel
 * 2p in the low half; half the bytes of the float32 image, read once per tile and tap) and
 * the weight to [strip][tap][pair][8 outputs] words. One masked load then brings 16 pixels of
 * two channels, and each broadcast weight word feeds a vdpbf16ps of 32 multiply-adds. The
 * implicit product (gemm.c) would gather the patches while packing them, which on the
 * 128-256-channel planes of a 35.7 M-parameter UNet cost about a fifth of its multiply. */

#if GEMM_X86

typedef struct {
  const distill_conv_geometry *g;
  const float *x;
  uint32_t *pairs;        /* [n, pair_planes, h * w] */
  long pair_planes;
} convert_job;

/* Sample and pair plane `chunk` of the image into channel pairs. */
BF16_TARGET static void convert_chunk(void *context, long chunk) {
  const convert_job *job = context;
  const distill_conv_geometry *g = job->g;
  const long plane = g->h * g->w, sample = chunk / job->pair_planes, p = chunk % job->pair_planes;
  const float *lo = job->x + (sample * g->c + 2 * p) * plane;
  const float *hi = 2 * p + 1 < g->c ? lo + plane : NULL;
  uint32_t *dst = job->pairs + chunk * plane;
  for (long q = 0; q < plane; q += 16) {
    const __mmask16 m = lanes(0, plane - q);
    const __m512 a = _mm512_maskz_loadu_ps(m, lo + q), b = hi ? _mm512_maskz_loadu_ps(m, hi + q) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(dst + q, m, bf16_pairs16(a, b));
  }
}

typedef struct {
  const distill_conv_geometry *g;
  const uint32_t *x;       /* channel pairs */
  const uint32_t *weights; /* [strip][tap][pair][MR] */
  float *out;
  long o, strips, tiles, unit, pair_planes;
  const long *offsets;
  const __mmask16 *masks;
} direct_bf16_job;

BF16_TARGET static void direct_bf16_chunk(void *context, long chunk) {
  const direct_bf16_job *job = context;
  const distill_conv_geometry *g = job->g;
  const long pixels = g->ho * g->wo, plane = g->h * g->w, taps = g->kh * g->kw, per_sample = pixels / 32;
  const long pairs = job->pair_planes;
  const long first = chunk * job->unit, last = first + job->unit < job->tiles ? first + job->unit : job->tiles;
  for (long tile = first; tile < last; tile++) {
    const long sample = tile / per_sample, start = (tile % per_sample) * 32, v = 2 * (tile % per_sample);
    const long *offset0 = job->offsets + v * taps, *offset1 = job->offsets + (v + 1) * taps;
    const __mmask16 *mask0 = job->masks + v * taps, *mask1 = job->masks + (v + 1) * taps;
    const uint32_t *image = job->x + sample * pairs * plane;
    for (long strip = 0; strip < job->strips; strip++) {
      __m512 acc0[MR] = {0}, acc1[MR] = {0};
      const uint32_t *wstrip = job->weights + strip * taps * pairs * MR;
      for (long tap = 0; tap < taps; tap++) {
        const __mmask16 m0 = mask0[tap], m1 = mask1[tap];
        if (!m0 && !m1) continue;
        const uint32_t *p0 = image + offset0[tap], *p1 = image + offset1[tap];
        const int32_t *wk = (const int32_t *)(wstrip + tap * pairs * MR);
        for (long p = 0; p < pairs; p++) {
          const __m512bh x0 = (__m512bh)_mm512_maskz_loadu_epi32(m0, p0 + p * plane);
          const __m512bh x1 = (__m512bh)_mm512_maskz_loadu_epi32(m1, p1 + p * plane);
#pragma clang loop unroll(full)
          for (int i = 0; i < MR; i++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32(wk[p * MR + i]);
            acc0[i] = _mm512_dpbf16_ps(acc0[i], a, x0);
            acc1[i] = _mm512_dpbf16_ps(acc1[i], a, x1);
          }
        }
      }
      const long rows = job->o - strip * MR < MR ? job->o - strip * MR : MR;
      gemm_store_tile(acc0, acc1, job->out + (sample * job->o + strip * MR) * pixels + start, pixels, 1, 1, 0, rows, NR);
    }
  }
}

static _Thread_local uint32_t *image_pairs, *weight_pairs;
static _Thread_local size_t image_pairs_bytes, weight_pairs_bytes;

static _Thread_local uint16_t *weight_halves;
static _Thread_local size_t weight_halves_bytes;

BF16_TARGET void conv_direct_bf16(long threads, const float *x, const float *weight, const uint16_t *halves,
                                  int flipped, long o, float *out, const distill_conv_geometry *g) {
  const long taps = g->kh * g->kw, strips = (o + MR - 1) / MR, pairs = (g->c + 1) / 2, plane = g->h * g->w;
  /* The weight in bfloat16, in its own layout (a weight held in bfloat16 already is), then its
   * pairs gathered from that. */
  const long count = o * g->c * taps;
  if (!halves) {
    uint16_t *rounded =
        grow_scratch((void **)&weight_halves, &weight_halves_bytes, (size_t)count * sizeof(uint16_t));
    for (long q = 0; q < count; q += 16) {
      const __mmask16 m = lanes(0, count - q);
      _mm256_mask_storeu_epi16(rounded + q, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, weight + q)));
    }
    halves = rounded;
  }
  uint32_t *packed =
      grow_scratch((void **)&weight_pairs, &weight_pairs_bytes, (size_t)strips * taps * pairs * MR * sizeof(uint32_t));
  for (long strip = 0; strip < strips; strip++)
    for (long tap = 0; tap < taps; tap++)
      for (long p = 0; p < pairs; p++)
        for (long i = 0; i < MR; i++) {
          const long oc = strip * MR + i, ci = 2 * p;
          uint32_t word = 0;
          if (oc < o) {
            /* Element (oc, ci, tap) of the weight [o, c, taps], or with `flipped` of the
             * adjoint convolution's, read from a weight [c, o, taps] flipped in both spatial
             * axes (input gradients need no flipped copy). */
            const long lo = flipped ? (ci * o + oc) * taps + taps - 1 - tap : (oc * g->c + ci) * taps + tap;
            word = halves[lo];
            if (ci + 1 < g->c) word |= (uint32_t)halves[lo + (flipped ? o * taps : taps)] << 16;
          }
          packed[((strip * taps + tap) * pairs + p) * MR + i] = word;
        }
  convert_job convert = {.g = g, .x = x, .pair_planes = pairs};
  convert.pairs =
      grow_scratch((void **)&image_pairs, &image_pairs_bytes, (size_t)g->n * pairs * plane * sizeof(uint32_t));
  distill_parallel_run(threads, g->n * pairs, convert_chunk, &convert);
  direct_bf16_job job = {.g = g, .x = convert.pairs, .weights = packed, .out = out, .o = o, .strips = strips,
                         .pair_planes = pairs};
  conv_direct_tables(g, &job.offsets, &job.masks);
  job.tiles = g->n * g->ho * g->wo / 32;
  const long chunks = threads * 4;
  job.unit = (job.tiles + chunks - 1) / chunks;
  distill_parallel_run(threads, (job.tiles + job.unit - 1) / job.unit, direct_bf16_chunk, &job);
}

/* DISTILL_BF16_ROUNDED: conv.c's float32 direct kernel on the image rounded to bfloat16 and the
 * weight rounded (or, held in bfloat16, widened) while it is packed. */
GEMM_TARGET void conv_direct_rounded(long threads, const float *x, const float *weight, const uint16_t *halves,
                                     int flipped, long o, float *out, const distill_conv_geometry *g) {
  conv_direct(threads, bf16_rounded_copy(threads, x, g->n * g->c * g->h * g->w, 0), weight, halves, 1, flipped, o, out,
              g);
}

#endif

#if GEMM_X86
BF16_TARGET static void bf16_round_avx512(const float *x, uint16_t *halves, long n) {
  for (long q = 0; q < n; q += 16) {
    const __mmask16 m = lanes(0, n - q);
    _mm256_mask_storeu_epi16(halves + q, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + q)));
  }
}

/* The whole vectors of n; returns how many values it widened. */
GEMM_TARGET static long bf16_widen_avx512(const uint16_t *halves, float *x, long n) {
  long q = 0;
  for (; q + 16 <= n; q += 16) {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(halves + q)));
    _mm512_storeu_ps(x + q, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
  }
  return q;
}
#endif

void distill_bf16_round(const float *x, uint16_t *halves, long n) {
#if GEMM_X86
  if (distill_bf16_supported()) {
    bf16_round_avx512(x, halves, n);
    return;
  }
#endif
  for (long i = 0; i < n; i++) halves[i] = bf16_round_scalar(x[i]);
}

void distill_bf16_widen(const uint16_t *halves, float *x, long n) {
  long first = 0;
#if GEMM_X86
  if (distill_sgemm_supported()) first = bf16_widen_avx512(halves, x, n);
#endif
  for (long i = first; i < n; i++) {
    const uint32_t bits = (uint32_t)halves[i] << 16;
    memcpy(x + i, &bits, sizeof bits);
  }
}
