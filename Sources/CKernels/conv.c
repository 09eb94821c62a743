#include "gemm.h"

#include <stdlib.h>
#include <string.h>

/* Convolutions on the AVX-512 product kernel, without a patch matrix.
 *
 * Stride 1 with output rows of whole 16-pixel vectors, or input rows as wide as output rows
 * (every level of the w2 UNet, and input gradients, which are stride-1 convolutions of the
 * output gradient) runs direct: the micro-kernel of gemm.c with its B operand read straight
 * from the image, 16 adjacent input elements per tap and vector, shifted by the tap and
 * masked where they fall in the padding. Packing the
 * patch matrix cost about half as much as multiplying it, since each packed element is used
 * only once per output channel (32-64 here).
 *
 * Otherwise the convolution is an implicit product (gemm.c): the patch matrix is gathered from
 * the image while B is packed, and the product of the whole batch is stored straight into
 * NCHW. */

#if GEMM_X86

/* A tile: 8 output channels by two 16-pixel vectors, each within one output row. */
typedef struct {
  const distill_conv_geometry *g;
  const float *x;
  const float *weights; /* the block's strips, packed: [strip - first_strip][ci][tap][MR] */
  float *out;
  long o, first_strip, last_strip, tiles, unit;
  /* Per vector of a sample's tiles and tap: where lane 0 reads, and which lanes are inside. */
  const long *offsets;
  const __mmask16 *masks;
} direct_job;

/* Tiles chunk * unit ..< (chunk + 1) * unit, the block's output-channel strips. The input
 * channels run in blocks of DIRECT_CHANNELS, outside the strips, and the taps inside a channel
 * block: the few rows of its channels that a block's taps read stay in L1 over all the
 * strips of the block, where taps outside all channels would stream every channel's rows
 * (planes apart, so often in the same cache sets) once per tap, and strips outside the
 * channels would read each tile's rows of all channels once per strip. A strip's sums over
 * the channel blocks before the last wait in a small buffer (a KiB a strip, in L1); the
 * block's packed weights stay in L2 over the chunk's tiles. */
#define DIRECT_TAPS_MAX 49 /* kernels up to 7x7 run direct */
#define DIRECT_CHANNELS 8
/* Blocks of strips: at most DIRECT_BLOCK_BYTES of packed weights; where a convolution has at
 * least DIRECT_WIDE_TILES tiles (planes of 32x32 and more at batch 1), at least
 * DIRECT_WIDE_STRIPS strips up to DIRECT_WIDE_BLOCK_BYTES, so that each channel block's rows
 * serve several strips (docs/benchmarks.md, "channel blocks outside the strips"). */
#define DIRECT_BLOCK_BYTES (512L << 10)
#define DIRECT_WIDE_BLOCK_BYTES (2048L << 10)
#define DIRECT_WIDE_STRIPS 4
#define DIRECT_WIDE_TILES 32

static _Thread_local __m512 *direct_partial;
static _Thread_local size_t direct_partial_bytes;

GEMM_TARGET static void direct_chunk(void *context, long chunk) {
  const direct_job *job = context;
  const distill_conv_geometry *g = job->g;
  const long pixels = g->ho * g->wo, plane = g->h * g->w, taps = g->kh * g->kw, per_sample = pixels / 32;
  const long first = chunk * job->unit, last = first + job->unit < job->tiles ? first + job->unit : job->tiles;
  const long strips = job->last_strip - job->first_strip;
  const size_t partial_bytes = (size_t)strips * 2 * MR * sizeof(__m512);
  __m512 *partial =
      g->c > DIRECT_CHANNELS ? grow_scratch((void **)&direct_partial, &direct_partial_bytes, partial_bytes) : NULL;
  for (long tile = first; tile < last; tile++) {
    const long sample = tile / per_sample, start = (tile % per_sample) * 32;
    const long *offset[2] = {job->offsets + (2 * (tile % per_sample)) * taps, job->offsets + (2 * (tile % per_sample) + 1) * taps};
    const __mmask16 *mask[2] = {job->masks + (2 * (tile % per_sample)) * taps, job->masks + (2 * (tile % per_sample) + 1) * taps};
    const float *image = job->x + sample * g->c * plane;
    for (long c0 = 0; c0 < g->c; c0 += DIRECT_CHANNELS) {
      const long c1 = c0 + DIRECT_CHANNELS < g->c ? c0 + DIRECT_CHANNELS : g->c;
      for (long strip = job->first_strip; strip < job->last_strip; strip++) {
        __m512 acc0[MR], acc1[MR];
        __m512 *sums = partial ? partial + (strip - job->first_strip) * 2 * MR : NULL;
        if (c0 == 0) {
#pragma clang loop unroll(full)
          for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
        } else {
#pragma clang loop unroll(full)
          for (int i = 0; i < MR; i++) {
            acc0[i] = sums[i];
            acc1[i] = sums[MR + i];
          }
        }
        const float *wstrip = job->weights + (strip - job->first_strip) * taps * g->c * MR;
        for (long tap = 0; tap < taps; tap++) {
          const __mmask16 m0 = mask[0][tap], m1 = mask[1][tap];
          if (!m0 && !m1) continue;
          const float *p0 = image + offset[0][tap], *p1 = image + offset[1][tap];
          const float *wk = wstrip + tap * MR;
          for (long ci = c0; ci < c1; ci++) {
            const __m512 x0 = _mm512_maskz_loadu_ps(m0, p0 + ci * plane);
            const __m512 x1 = _mm512_maskz_loadu_ps(m1, p1 + ci * plane);
#pragma clang loop unroll(full)
            for (int i = 0; i < MR; i++) {
              const __m512 a = _mm512_set1_ps(wk[ci * taps * MR + i]);
              acc0[i] = _mm512_fmadd_ps(a, x0, acc0[i]);
              acc1[i] = _mm512_fmadd_ps(a, x1, acc1[i]);
            }
          }
        }
        if (c1 == g->c) {
          const long rows = job->o - strip * MR < MR ? job->o - strip * MR : MR;
          gemm_store_tile(acc0, acc1, job->out + (sample * job->o + strip * MR) * pixels + start, pixels, 1, 1, 0, rows, NR);
        } else {
#pragma clang loop unroll(full)
          for (int i = 0; i < MR; i++) {
            sums[i] = acc0[i];
            sums[MR + i] = acc1[i];
          }
        }
      }
    }
  }
}

/* Packing a block of strips: strip first_strip + chunk into [ci][tap][MR], from a float32
 * weight (rounded to bfloat16 when `round_weight`) or a weight held in bfloat16 (`halves`,
 * widened: exact). The layout is the weight's own with the strip's 8 output channels
 * innermost, so that an unflipped weight packs as a transpose of 8 contiguous rows. */
typedef struct {
  const distill_conv_geometry *g;
  const float *weight;
  const uint16_t *halves;
  int round_weight, flipped;
  long o, first_strip;
  float *packed;
} pack_job;

#define PACK_COLUMNS 512 /* widened halves per row and pass */

GEMM_TARGET static void pack_chunk(void *context, long chunk) {
  const pack_job *job = context;
  const long c = job->g->c, taps = job->g->kh * job->g->kw, o = job->o, strip = job->first_strip + chunk;
  const long depth = c * taps, rows = o - strip * MR < MR ? o - strip * MR : MR;
  float *dst = job->packed + chunk * depth * MR;
  if (rows < MR) memset(dst, 0, (size_t)(depth * MR) * sizeof(float));
  if (job->flipped) {
    /* W'[oc, ci, tap] = weight[ci, oc, taps - 1 - tap]: per input channel, the strip's rows
     * are taps * 8 contiguous values. */
    for (long ci = 0; ci < c; ci++)
      for (long i = 0; i < rows; i++) {
        const long base = (ci * o + strip * MR + i) * taps + taps - 1;
        float *d = dst + ci * taps * MR + i;
        if (job->halves)
          for (long tap = 0; tap < taps; tap++) d[tap * MR] = bf16_widen_scalar(job->halves[base - tap]);
        else
          for (long tap = 0; tap < taps; tap++) d[tap * MR] = job->weight[base - tap];
      }
  } else if (job->halves) {
    float wide[MR * PACK_COLUMNS];
    for (long q = 0; q < depth; q += PACK_COLUMNS) {
      const long n = depth - q < PACK_COLUMNS ? depth - q : PACK_COLUMNS;
      for (long i = 0; i < rows; i++) distill_bf16_widen(job->halves + (strip * MR + i) * depth + q, wide + i * n, n);
      distill_transpose(wide, n, dst + q * MR, MR, rows, n);
    }
  } else {
    distill_transpose(job->weight + strip * MR * depth, depth, dst, MR, rows, depth);
  }
  if (job->round_weight && !job->halves) gemm_bf16_round(dst, depth * MR);
}

static _Thread_local float *direct_weights;
static _Thread_local size_t direct_weights_bytes;

/* Lane u of vector v of a tile is output pixel start + 16 v + u; for tap (ky, kx) it reads
 * input element offset + u, which is contiguous in u because the vector lies in one output
 * row or because input rows are as wide as output rows (w == wo). Lanes whose input lies in
 * the padding are masked off. The pattern repeats in every sample. */
void conv_direct_tables(const distill_conv_geometry *g, const long **offsets_out, const __mmask16 **masks_out) {
  const long taps = g->kh * g->kw;
  const long vectors = g->ho * g->wo / 16;
  static _Thread_local long *offsets;
  static _Thread_local __mmask16 *masks;
  static _Thread_local size_t table_entries;
  if (table_entries < (size_t)(vectors * taps)) {
    free(offsets);
    free(masks);
    offsets = malloc((size_t)(vectors * taps) * sizeof(long));
    masks = malloc((size_t)(vectors * taps) * sizeof(__mmask16));
    if (!offsets || !masks) abort();
    table_entries = (size_t)(vectors * taps);
  }
  for (long v = 0; v < vectors; v++) {
    const long q = 16 * v, oy = q / g->wo, ox = q % g->wo;
    for (long tap = 0; tap < taps; tap++) {
      const long ky = tap / g->kw, kx = tap % g->kw;
      offsets[v * taps + tap] = (oy - g->ph + ky) * g->w + ox - g->pw + kx;
      unsigned bits = 0;
      for (long u = 0, y = oy, x = ox; u < 16; u++) {
        const long iy = y - g->ph + ky, ix = x - g->pw + kx;
        if (iy >= 0 && iy < g->h && ix >= 0 && ix < g->w) bits |= 1u << u;
        if (++x == g->wo) {
          x = 0;
          y++;
        }
      }
      masks[v * taps + tap] = (__mmask16)bits;
    }
  }
  *offsets_out = offsets;
  *masks_out = masks;
}

/* out = conv(x, weight), stride 1, wo a multiple of 16 (gemm.h: where the weight comes from).
 * The strips run in blocks (DIRECT_BLOCK_BYTES, above), each block packed (in parallel over
 * its strips) just before its tiles run: the packed copy never takes more than a block (at
 * most 2 MiB on SD 1.5), where a whole layer's would take up to 118 MiB (its 2560 -> 1280
 * convolutions). */
GEMM_TARGET void conv_direct(long threads, const float *x, const float *weight, const uint16_t *halves, int round_weight,
                             int flipped, long o, float *out, const distill_conv_geometry *g) {
  const long taps = g->kh * g->kw, strips = (o + MR - 1) / MR;
  const long strip_floats = taps * g->c * MR, strip_bytes = strip_floats * (long)sizeof(float);
  const long tiles = g->n * g->ho * g->wo / 32;
  long block = strip_bytes < DIRECT_BLOCK_BYTES ? DIRECT_BLOCK_BYTES / strip_bytes : 1;
  if (tiles >= DIRECT_WIDE_TILES && block < DIRECT_WIDE_STRIPS) {
    const long wide = DIRECT_WIDE_BLOCK_BYTES / strip_bytes;
    block = DIRECT_WIDE_STRIPS < wide ? DIRECT_WIDE_STRIPS : wide > 1 ? wide : 1;
  }
  const long blocks_floats = (block < strips ? block : strips) * strip_floats;
  float *packed = grow_scratch((void **)&direct_weights, &direct_weights_bytes, (size_t)blocks_floats * sizeof(float));
  pack_job pack = {.g = g, .weight = weight, .halves = halves, .round_weight = round_weight, .flipped = flipped,
                   .o = o, .packed = packed};
  direct_job job = {.g = g, .x = x, .weights = packed, .out = out, .o = o};
  conv_direct_tables(g, &job.offsets, &job.masks);
  job.tiles = tiles;
  const long chunks = threads * 4;
  job.unit = (job.tiles + chunks - 1) / chunks;
  for (long first_strip = 0; first_strip < strips; first_strip += block) {
    const long last_strip = first_strip + block < strips ? first_strip + block : strips;
    pack.first_strip = job.first_strip = first_strip;
    job.last_strip = last_strip;
    distill_parallel_run(threads, last_strip - first_strip, pack_chunk, &pack);
    distill_parallel_run(threads, (job.tiles + job.unit - 1) / job.unit, direct_chunk, &job);
  }
}

/* Weight gradient, direct (3x3, stride 1): dw[oc, ci, ky, kx] = sum over samples and output
 * pixels of grad[s, oc, oy, ox] * x[s, ci, oy - ph + ky, ox - pw + kx], vectorised over 16
 * output pixels of a row. A pair of output channels by one input channel holds its 18 partial
 * sums in registers and reads two gradient vectors and nine shifted input vectors per 16
 * pixels. Input planes are first copied with a zero border, so that no load needs a mask;
 * the partial sums of a group of input channels by all output channels stay in a small buffer
 * across the samples, so that each sample's planes are read from cache. */

#define WG_TAPS 9     /* 3x3 */
#define WG_CHANNELS 4 /* input channels per group */

typedef struct {
  const distill_conv_geometry *g;
  const float *x, *grad;
  float *weight_grad;
  long o, unit;
} gradient_job;

static _Thread_local float *gradient_sums, *padded_planes;
static _Thread_local size_t gradient_sums_bytes, padded_planes_bytes;

GEMM_TARGET static void gradient_chunk(void *context, long chunk) {
  const gradient_job *job = context;
  const distill_conv_geometry *g = job->g;
  const long pairs = (job->o + 1) / 2, pixels = g->ho * g->wo, plane = g->h * g->w;
  const long padded_w = g->w + 2 * g->pw, padded_h = g->h + 2 * g->ph;
  const long padded_plane = padded_w * padded_h;
  const long c0 = chunk * job->unit, c1 = c0 + job->unit < g->c ? c0 + job->unit : g->c;
  const size_t sum_floats = (size_t)pairs * WG_CHANNELS * 2 * WG_TAPS * 16;
  float *sums_all = grow_scratch((void **)&gradient_sums, &gradient_sums_bytes, sum_floats * sizeof(float));
  float *padded = grow_scratch(
      (void **)&padded_planes, &padded_planes_bytes, ((size_t)WG_CHANNELS * padded_plane + 16) * sizeof(float));
  memset(padded, 0, ((size_t)WG_CHANNELS * padded_plane + 16) * sizeof(float));
  for (long group = c0; group < c1; group += WG_CHANNELS) {
    const long channels = c1 - group < WG_CHANNELS ? c1 - group : WG_CHANNELS;
    memset(sums_all, 0, sum_floats * sizeof(float));
    for (long sample = 0; sample < g->n; sample++) {
      /* The group's planes of this sample inside a zero border (the border stays zero). */
      for (long cc = 0; cc < channels; cc++) {
        const float *src = job->x + (sample * g->c + group + cc) * plane;
        float *dst = padded + cc * padded_plane + g->ph * padded_w + g->pw;
        for (long y = 0; y < g->h; y++) memcpy(dst + y * padded_w, src + y * g->w, (size_t)g->w * sizeof(float));
      }
      for (long pair = 0; pair < pairs; pair++) {
        const long oc0 = 2 * pair, oc1 = oc0 + 1 < job->o ? oc0 + 1 : oc0;
        const float *g0 = job->grad + (sample * job->o + oc0) * pixels;
        const float *g1 = job->grad + (sample * job->o + oc1) * pixels;
        for (long cc = 0; cc < channels; cc++) {
          const float *image = padded + cc * padded_plane;
          float *sums = sums_all + ((pair * WG_CHANNELS + cc) * 2 * WG_TAPS) * 16;
          __m512 acc0[WG_TAPS], acc1[WG_TAPS];
#pragma clang loop unroll(full)
          for (int t = 0; t < WG_TAPS; t++) {
            acc0[t] = _mm512_load_ps(sums + t * 16);
            acc1[t] = _mm512_load_ps(sums + (WG_TAPS + t) * 16);
          }
          /* One pass over the plane's 16-pixel vectors; the input pointer skips the border
           * at each row's end. */
          const float *row = image;
          for (long q = 0, column = 0; q < pixels; q += 16) {
            const __m512 a = _mm512_loadu_ps(g0 + q), b = _mm512_loadu_ps(g1 + q);
#pragma clang loop unroll(full)
            for (int ky = 0; ky < 3; ky++)
#pragma clang loop unroll(full)
              for (int kx = 0; kx < 3; kx++) {
                const __m512 xv = _mm512_loadu_ps(row + ky * padded_w + kx);
                acc0[ky * 3 + kx] = _mm512_fmadd_ps(a, xv, acc0[ky * 3 + kx]);
                acc1[ky * 3 + kx] = _mm512_fmadd_ps(b, xv, acc1[ky * 3 + kx]);
              }
            row += 16;
            column += 16;
            if (column == g->wo) {
              column = 0;
              row += padded_w - g->wo;
            }
          }
#pragma clang loop unroll(full)
          for (int t = 0; t < WG_TAPS; t++) {
            _mm512_store_ps(sums + t * 16, acc0[t]);
            _mm512_store_ps(sums + (WG_TAPS + t) * 16, acc1[t]);
          }
        }
      }
    }
    for (long pair = 0; pair < pairs; pair++)
      for (long cc = 0; cc < channels; cc++) {
        const float *sums = sums_all + ((pair * WG_CHANNELS + cc) * 2 * WG_TAPS) * 16;
        for (long half = 0; half < 2; half++) {
          const long oc = 2 * pair + half;
          if (oc >= job->o) continue;
          for (long t = 0; t < WG_TAPS; t++)
            job->weight_grad[(oc * g->c + group + cc) * WG_TAPS + t] =
                _mm512_reduce_add_ps(_mm512_load_ps(sums + (half * WG_TAPS + t) * 16));
        }
      }
  }
}

#endif

#if GEMM_X86
/* Whether a forward convolution runs direct rather than as an implicit product. */
static int runs_direct(const distill_conv_geometry *g) {
  return g->sh == 1 && g->sw == 1 && (g->ho * g->wo) % 32 == 0 && (g->wo % 16 == 0 || g->w == g->wo) &&
         g->kh * g->kw <= DIRECT_TAPS_MAX;
}

GEMM_TARGET static void conv_forward(long threads, const float *x, const float *weight, int flipped, long o, float *out,
                                     const distill_conv_geometry *g, int bf16) {
  const long taps = g->kh * g->kw;
  if (runs_direct(g)) {
    if (bf16 == DISTILL_BF16_DOT)
      conv_direct_bf16(threads, x, weight, NULL, flipped, o, out, g);
    else if (bf16 == DISTILL_BF16_ROUNDED)
      conv_direct_rounded(threads, x, weight, NULL, flipped, o, out, g);
    else
      conv_direct(threads, x, weight, NULL, 0, flipped, o, out, g);
    return;
  }
  /* out[s, oc, p] = sum_e weight[oc, e] * patches[e, s * P + p], P = ho * wo. */
  const long pixels = g->ho * g->wo, patch = g->c * taps;
  const gemm_view A =
      flipped ? (gemm_view){.p = weight, .group_stride = o * taps, .flipped_taps = taps} : gemm_strided(weight, patch, 1);
  const gemm_view B = {.p = x, .patches = g};
  gemm_run(threads, o, g->n * pixels, patch, 1, &A, &B, 0, (gemm_output){out, pixels, 1, pixels, o * pixels}, bf16);
}
#endif

void distill_conv2d_forward(long threads, const float *x, const float *weight, int flipped, long o, float *out,
                            distill_conv_geometry g, int bf16) {
#if GEMM_X86
  conv_forward(threads, x, weight, flipped, o, out, &g, bf16);
#else
  (void)bf16, (void)threads, (void)x, (void)weight, (void)flipped, (void)o, (void)out, (void)g;
  abort(); /* callers check distill_sgemm_supported() */
#endif
}

int distill_conv2d_runs_direct(distill_conv_geometry g) {
#if GEMM_X86
  return distill_sgemm_supported() && runs_direct(&g);
#else
  (void)g;
  return 0;
#endif
}

void distill_conv2d_forward_bf16_weight(long threads, const float *x, const uint16_t *weight, int flipped, long o,
                                        float *out, distill_conv_geometry g, int bf16) {
#if GEMM_X86
  if (!runs_direct(&g)) abort(); /* callers check distill_conv2d_runs_direct */
  if (bf16 == DISTILL_BF16_DOT)
    conv_direct_bf16(threads, x, NULL, weight, flipped, o, out, &g);
  else
    conv_direct_rounded(threads, x, NULL, weight, flipped, o, out, &g);
#else
  (void)threads, (void)x, (void)weight, (void)flipped, (void)o, (void)out, (void)g, (void)bf16;
  abort();
#endif
}

void distill_conv2d_weight_gradient(long threads, const float *x, const float *grad, long o, float *weight_grad,
                                    distill_conv_geometry g, int bf16) {
#if GEMM_X86
  /* Direct where it was faster than the implicit product: planes of 32x32 and more, or few
   * output channels (the product fills 8-row strips); on 16x16 planes the product won. With
   * DISTILL_BF16_ROUNDED, on copies of both operands rounded to bfloat16. */
  if (bf16 != DISTILL_BF16_DOT && g.sh == 1 && g.sw == 1 && g.kh == 3 && g.kw == 3 && g.wo % 16 == 0 && (g.ho * g.wo >= 1024 || o < 8)) {
    if (bf16 == DISTILL_BF16_ROUNDED) {
      x = bf16_rounded_copy(threads, x, g.n * g.c * g.h * g.w, 0);
      grad = bf16_rounded_copy(threads, grad, g.n * o * g.ho * g.wo, 1);
    }
    gradient_job job = {.g = &g, .x = x, .grad = grad, .weight_grad = weight_grad, .o = o};
    const long chunks = threads * 4;
    job.unit = (g.c + chunks - 1) / chunks;
    distill_parallel_run(threads, (g.c + job.unit - 1) / job.unit, gradient_chunk, &job);
    return;
  }
  /* weight_grad[oc, e] = sum_q grad[s, oc, p] * patches[e, q], q = s * P + p. */
  const long pixels = g.ho * g.wo, patch = g.c * g.kh * g.kw;
  const gemm_view A = {.p = grad, .rs = pixels, .cs = 1, .group = pixels, .group_stride = o * pixels};
  const gemm_view B = {.p = x, .patches = &g, .transposed = 1};
  gemm_run(threads, o, patch, g.n * pixels, 1, &A, &B, 0, (gemm_output){weight_grad, patch, 1, 0, 0}, bf16);
#else
  (void)bf16, (void)threads, (void)x, (void)grad, (void)o, (void)weight_grad, (void)g;
  abort();
#endif
}
