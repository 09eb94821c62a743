#include "gemm.h"

#include <string.h>

/* Weight gradient of a 3x3, stride-1, padding-1 convolution on bfloat16 operands (AVX512-BF16):
 *
 *   dw[oc, ci, ky, kx] = sum over samples and pixels p of grad[s, oc, p] * x[s, ci, p + (ky - 1, kx - 1)]
 *
 * vdpbf16ps sums a pair of products per lane, so here the pairs run along the pixels: a word
 * of the output gradient holds two adjacent pixels (its bfloat16 plane in memory order), and
 * a word of the input the two pixels those read for one tap. For the middle column of taps
 * that is the input plane in memory order as well; for the left and right columns it is the
 * plane shifted by one pixel, with a zero entering at each row's edge. So each input plane is
 * converted once into three shifted bfloat16 planes, with a zero row above and below and no
 * border at the sides: 16 words of one of them, at the output vector's offset plus a row per
 * ky, are the inputs of 32 output pixels for that tap, across rows wherever rows are narrower
 * than 32 pixels (16x16, 8x8 and 4x4 planes run at full width as 32x32 planes do).
 *
 * A pair of output channels by one input channel holds its 18 sums in registers over all
 * samples and pixels, each 32 pixels costing two gradient loads, nine input loads and 18
 * vdpbf16ps (64 multiply-adds each; conv.c's float32 kernel needs twice the instructions).
 * The implicit product this replaces gathered the patch matrix while packing it, which cost
 * about a third of its multiply on the 35.7 M-parameter UNet. Chunks are groups of input
 * channels, so each weight-gradient element is one thread's sum in a fixed order. */

#if GEMM_X86

#define WGB_CHANNELS 4 /* input channels per group */

typedef struct {
  const distill_conv_geometry *g;
  const float *x;
  const uint16_t *grad; /* [n, o, pixels] in bfloat16 */
  float *weight_grad;
  long o, unit;
} wgrad_bf16_job;

static _Thread_local uint16_t *shifted_planes, *gradient_halves;
static _Thread_local size_t shifted_planes_bytes, gradient_halves_bytes;

/* `count` floats to bfloat16 (round to nearest even). */
BF16_TARGET static void to_bf16(const float *src, uint16_t *dst, long count) {
  for (long q = 0; q < count; q += 16) {
    const __mmask16 m = lanes(0, count - q);
    _mm256_mask_storeu_epi16(dst + q, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + q)));
  }
}

typedef struct {
  const float *grad;
  uint16_t *halves;
  long pixels;
} gradient_convert_job;

BF16_TARGET static void gradient_convert_chunk(void *context, long plane) {
  const gradient_convert_job *job = context;
  to_bf16(job->grad + plane * job->pixels, job->halves + plane * job->pixels, job->pixels);
}

/* The three planes of one input plane, each (h + 2) x w halves: plane kx holds at row r,
 * column j the input at row r - 1, column j + kx - 1 (zero outside the image). */
BF16_TARGET static void shift_plane(const float *src, uint16_t *dst, long h, long w) {
  const long padded = (h + 2) * w;
  uint16_t *left = dst, *middle = dst + padded, *right = dst + 2 * padded;
  memset(left, 0, (size_t)w * sizeof(uint16_t));
  memset(middle, 0, (size_t)w * sizeof(uint16_t));
  memset(right, 0, (size_t)w * sizeof(uint16_t));
  memset(left + (h + 1) * w, 0, (size_t)w * sizeof(uint16_t));
  memset(middle + (h + 1) * w, 0, (size_t)w * sizeof(uint16_t));
  memset(right + (h + 1) * w, 0, (size_t)w * sizeof(uint16_t));
  for (long y = 0; y < h; y++) {
    uint16_t *row = middle + (y + 1) * w;
    to_bf16(src + y * w, row, w);
    left[(y + 1) * w] = 0;
    memcpy(left + (y + 1) * w + 1, row, (size_t)(w - 1) * sizeof(uint16_t));
    memcpy(right + (y + 1) * w, row + 1, (size_t)(w - 1) * sizeof(uint16_t));
    right[(y + 1) * w + w - 1] = 0;
  }
}

BF16_TARGET static void wgrad_bf16_chunk(void *context, long chunk) {
  const wgrad_bf16_job *job = context;
  const distill_conv_geometry *g = job->g;
  const long pixels = g->h * g->w, padded = (g->h + 2) * g->w, pairs = (job->o + 1) / 2;
  const long c0 = chunk * job->unit, c1 = c0 + job->unit < g->c ? c0 + job->unit : g->c;
  /* [channel of the group][sample][kx][padded] */
  uint16_t *planes = grow_scratch((void **)&shifted_planes, &shifted_planes_bytes,
                                  (size_t)WGB_CHANNELS * g->n * 3 * padded * sizeof(uint16_t));
  for (long group = c0; group < c1; group += WGB_CHANNELS) {
    const long channels = c1 - group < WGB_CHANNELS ? c1 - group : WGB_CHANNELS;
    for (long cc = 0; cc < channels; cc++)
      for (long sample = 0; sample < g->n; sample++)
        shift_plane(job->x + (sample * g->c + group + cc) * pixels, planes + (cc * g->n + sample) * 3 * padded, g->h,
                    g->w);
    for (long pair = 0; pair < pairs; pair++) {
      const long oc0 = 2 * pair, oc1 = oc0 + 1 < job->o ? oc0 + 1 : oc0;
      for (long cc = 0; cc < channels; cc++) {
        __m512 acc0[9], acc1[9];
#pragma clang loop unroll(full)
        for (int t = 0; t < 9; t++) acc0[t] = acc1[t] = _mm512_setzero_ps();
        for (long sample = 0; sample < g->n; sample++) {
          const uint16_t *g0 = job->grad + (sample * job->o + oc0) * pixels;
          const uint16_t *g1 = job->grad + (sample * job->o + oc1) * pixels;
          const uint16_t *image = planes + (cc * g->n + sample) * 3 * padded;
          for (long q = 0; q < pixels; q += 32) {
            const __mmask16 m = lanes(0, (pixels - q) / 2);
            const __m512bh a = (__m512bh)_mm512_maskz_loadu_epi32(m, g0 + q);
            const __m512bh b = (__m512bh)_mm512_maskz_loadu_epi32(m, g1 + q);
#pragma clang loop unroll(full)
            for (int ky = 0; ky < 3; ky++)
#pragma clang loop unroll(full)
              for (int kx = 0; kx < 3; kx++) {
                const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi32(m, image + kx * padded + ky * g->w + q);
                acc0[ky * 3 + kx] = _mm512_dpbf16_ps(acc0[ky * 3 + kx], a, xv);
                acc1[ky * 3 + kx] = _mm512_dpbf16_ps(acc1[ky * 3 + kx], b, xv);
              }
          }
        }
        float *out0 = job->weight_grad + (oc0 * g->c + group + cc) * 9;
        float *out1 = job->weight_grad + (oc1 * g->c + group + cc) * 9;
        for (int t = 0; t < 9; t++) {
          out0[t] = _mm512_reduce_add_ps(acc0[t]);
          if (oc1 != oc0) out1[t] = _mm512_reduce_add_ps(acc1[t]);
        }
      }
    }
  }
}

int conv_weight_gradient_bf16_fits(const distill_conv_geometry *g) {
  return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == 1 && g->pw == 1 && g->ho == g->h &&
         g->wo == g->w && g->w % 2 == 0 && g->h * g->w >= 1024;
}

BF16_TARGET void conv_weight_gradient_bf16(long threads, const float *x, const float *grad, long o, float *weight_grad,
                                           const distill_conv_geometry *g) {
  const long pixels = g->h * g->w;
  gradient_convert_job convert = {.grad = grad, .pixels = pixels};
  convert.halves = grow_scratch((void **)&gradient_halves, &gradient_halves_bytes,
                                (size_t)g->n * o * pixels * sizeof(uint16_t));
  distill_parallel_run(threads, g->n * o, gradient_convert_chunk, &convert);
  wgrad_bf16_job job = {.g = g, .x = x, .grad = convert.halves, .weight_grad = weight_grad, .o = o};
  const long chunks = threads * 4;
  job.unit = (g->c + chunks - 1) / chunks;
  distill_parallel_run(threads, (g->c + job.unit - 1) / job.unit, wgrad_bf16_chunk, &job);
}

#endif
