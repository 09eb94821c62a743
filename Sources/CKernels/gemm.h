/* Internal to CKernels: the operands of gemm.c's products (used by gemm.c and conv.c). */
#ifndef DISTILL_GEMM_H
#define DISTILL_GEMM_H

#include "CKernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GEMM_X86 1
#include <immintrin.h>
#define GEMM_TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))
#endif

#define MR 8    /* rows of a micro-tile */
#define NR 32   /* columns of a micro-tile: two 16-float vectors */
#ifndef KC
#define KC 256  /* depth of a packed block: a B panel of KC x NR is 32 KiB, in L1 */
#endif
#define MC 128  /* rows of A a row chunk packs at a time: 128 KiB at full depth, in L2 */

/* A matrix operand.
 *
 * Strided: element (r, c) at p[r * rs + c * cs]. With group > 0, the index q along the
 * dimension of unit stride is at (q / group) * group_stride + q % group instead: the rows (or
 * columns) of a batch of NCHW planes, [channel, sample * pixels + pixel].
 *
 * Patches: the patch matrix of the image p with geometry `patches`, as im2col would write it
 * (rows: c * kh * kw patch entries; columns: n * ho * wo output pixels; zero over the
 * padding), or its transpose; never materialised, gathered while packing.
 *
 * Flipped taps (an A operand only): a convolution weight [c, o, taps] read as the weight of its
 * adjoint convolution, flipped in both spatial axes and transposed: element (i, k) with
 * k = ci * taps + t at p[ci * group_stride + i * taps + taps - 1 - t] (group_stride = o * taps);
 * flipped_taps = taps. */
typedef struct {
  const float *p;
  long rs, cs;
  long group, group_stride;
  const distill_conv_geometry *patches;
  int transposed;
  long flipped_taps;
  /* A B operand held in bfloat16 (p NULL): element (r, c) at halves[r + c * cs] (rs 1, the
   * transposed weight of a linear layer), widened as it is packed (gemm.c, pack_b). */
  const uint16_t *halves;
} gemm_view;

/* Where the product goes: element (i, j) of C at p[i * rs + j * cs], or with group > 0 at
 * p[i * rs + (j / group) * group_stride + (j % group) * cs]; a panel may span groups (stored through
 * a tile, gemm.c). */
typedef struct {
  float *p;
  long rs, cs, group, group_stride;
} gemm_output;

static inline gemm_view gemm_strided(const float *p, long rs, long cs) {
  return (gemm_view){.p = p, .rs = rs, .cs = cs};
}

enum { GEMM_ALONG_ROWS, GEMM_ALONG_COLUMNS, GEMM_ALONG_NEITHER };

/* The dimension along which consecutive elements are adjacent in memory (runs of pixels for
 * a patch matrix). */
static inline int gemm_contiguous(const gemm_view *v) {
  if (v->patches) return v->transposed ? GEMM_ALONG_ROWS : GEMM_ALONG_COLUMNS;
  if (v->cs == 1) return GEMM_ALONG_COLUMNS;
  if (v->rs == 1) return GEMM_ALONG_ROWS;
  return GEMM_ALONG_NEITHER;
}

#if GEMM_X86
/* Lanes a..<b of a 16-lane mask (a, b clamped to 0...16). */
static inline __mmask16 lanes(long a, long b) {
  a = a < 0 ? 0 : (a > 16 ? 16 : a);
  b = b < 0 ? 0 : (b > 16 ? 16 : b);
  return (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}

#define BF16_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,avx2,fma")))

/* 16 float32 lanes of two rows -> 16 pairs of bfloat16 (round to nearest even), row `lo` in
 * the low half of each 32-bit word. */
BF16_TARGET static inline __m512i bf16_pairs16(__m512 lo, __m512 hi) {
  const __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
  const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
  return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
}

/* Direct convolutions (conv.c, conv_bf16.c): per 16-pixel vector of a sample's output and
 * tap, the offset of lane 0's input in its plane and the lanes inside the image (thread-local
 * tables, valid until the thread's next call). */
void conv_direct_tables(const distill_conv_geometry *g, const long **offsets, const __mmask16 **masks);
/* out = conv(x, weight) on bfloat16 operands, stride 1, under conv.c's direct conditions; the
 * weight given in float32 (`weight`) or already in bfloat16 (`halves`, the other NULL). */
void conv_direct_bf16(long threads, const float *x, const float *weight, const uint16_t *halves, int flipped, long o,
                      float *out, const distill_conv_geometry *g);
/* The same with DISTILL_BF16_ROUNDED: conv.c's float32 direct kernel on a copy of the image
 * rounded to bfloat16 and the weight rounded (`weight`) or widened (`halves`) as it is packed. */
void conv_direct_rounded(long threads, const float *x, const float *weight, const uint16_t *halves, int flipped, long o,
                         float *out, const distill_conv_geometry *g);
/* conv.c's float32 direct kernel (out = conv(x, weight), runs_direct(g)): the weight in float32
 * (`weight`, rounded to bfloat16 as it is packed when `round_weight`) or held in bfloat16
 * (`halves`, widened as it is packed; the other NULL). */
void conv_direct(long threads, const float *x, const float *weight, const uint16_t *halves, int round_weight,
                 int flipped, long o, float *out, const distill_conv_geometry *g);
/* `count` floats of x rounded to bfloat16 (as vcvtneps2bf16) and widened back, on up to
 * `threads` threads, into the calling thread's scratch buffer `slot` (0 or 1; valid until
 * the thread's next call with that slot). */
const float *bf16_rounded_copy(long threads, const float *x, long count, int slot);

/* Round to nearest even on the bits, as vcvtneps2bf16 does: a NaN stays a (quiet) NaN, and a
 * subnormal input becomes a zero of its sign. */
static inline uint16_t bf16_round_scalar(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x40);
  if ((bits & 0x7F800000u) == 0) return (uint16_t)((bits >> 16) & 0x8000u);
  return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
/* A bfloat16 value widened to float32 (exact). */
static inline float bf16_widen_scalar(uint16_t half) {
  const uint32_t bits = (uint32_t)half << 16;
  float x;
  memcpy(&x, &bits, sizeof x);
  return x;
}

/* bf16 != 0: operands rounded to bfloat16 while packed, products accumulated in float32
 * (gemm_bf16.c); only when distill_bf16_supported(). */
void gemm_run(long threads, long m, long n, long k, float alpha, const gemm_view *A, const gemm_view *B, float beta,
              gemm_output C, int bf16);

/* Stores a micro-tile: C[0..<mr, 0..<nr] = alpha * acc + beta * C, row i from acc0[i] (columns
 * 0..<16) and acc1[i] (16..<32); C's element (i, j) at c[i * c_rs + j * c_cs], not read when
 * beta is 0. */
GEMM_TARGET static inline __attribute__((always_inline)) void gemm_store_tile(
    const __m512 *acc0, const __m512 *acc1, float *c, long c_rs, long c_cs, float alpha, float beta, long mr, long nr) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (c_cs != 1) {
    /* A transposed result (see distill_sgemm): scatter the tile. */
    float tile[MR][NR] __attribute__((aligned(64)));
    for (int i = 0; i < MR; i++) {
      _mm512_store_ps(tile[i], acc0[i]);
      _mm512_store_ps(tile[i] + 16, acc1[i]);
    }
    for (long i = 0; i < mr; i++)
      for (long j = 0; j < nr; j++) {
        float *cij = c + i * c_rs + j * c_cs;
        *cij = alpha * tile[i][j] + (beta != 0 ? beta * *cij : 0);
      }
    return;
  }
  const __mmask16 m0 = lanes(0, nr), m1 = lanes(0, nr - 16);
  for (int i = 0; i < mr; i++) {
    float *ci = c + i * c_rs;
    __m512 r0 = alpha == 1 ? acc0[i] : _mm512_mul_ps(va, acc0[i]);
    __m512 r1 = alpha == 1 ? acc1[i] : _mm512_mul_ps(va, acc1[i]);
    if (beta != 0) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

/* bfloat16 (gemm_bf16.c). A packed block of `tiles` strips (A: tile = MR rows) or panels
 * (B: tile = NR columns), each `depth` deep with element (t, w) at t * tile + w, rewritten in
 * place: strip q keeps its start (q * depth * tile) and holds (depth + 1) / 2 rows of `tile`
 * 32-bit pairs, pair (p, w) = bf16(element (2p, w)) | bf16(element (2p + 1, w)) << 16
 * (zero past an odd depth), rounded to nearest even. */
void gemm_bf16_convert(float *block, long tiles, long depth, long tile);
/* `count` floats rounded to bfloat16 in place and kept as float32 (DISTILL_BF16_ROUNDED). */
void gemm_bf16_round(float *block, long count);
/* The micro-kernel on converted strips and panels (vdpbf16ps), stored as gemm_store_tile. */
void gemm_bf16_micro_kernel(long kc, const float *a, const float *b, float *c, long c_rs, long c_cs, float alpha,
                            float beta, long mr, long nr);
#endif

/* A thread's scratch buffer of at least `bytes`, 64-byte aligned: *buffer, replaced (contents
   lost) when *capacity (in bytes) is too small. */
static inline void *grow_scratch(void **buffer, size_t *capacity, size_t bytes) {
  if (*capacity < bytes) {
    free(*buffer);
    *buffer = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!*buffer) abort();
    *capacity = bytes;
  }
  return *buffer;
}

#endif
