/* Internal to CKernels: the operands of gemm.c's products (used by gemm.c and conv.c). */
#ifndef DISTILL_GEMM_H
#define DISTILL_GEMM_H

#include "CKernels.h"

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

void gemm_run(long threads, long m, long n, long k, float alpha, const gemm_view *A, const gemm_view *B, float beta,
              gemm_output C);
#endif

#endif
