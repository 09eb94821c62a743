#include <stdlib.h>
#include <string.h>

/* Single-precision matrix products with AVX-512, for CPUs that have it; convolutions as
 * implicit products (conv.c describes their operands).
 *
 * Why not OpenBLAS alone: the machines this project is measured on are Zen 5 (512-bit FMA
 * units) and ship with OPENBLAS_CORETYPE=Haswell, which pins OpenBLAS to its AVX2 kernels
 * (about 110 GFLOP/s per core here, against 150-210 for the loop below on the products of the
 * w1 MLPs and the w2 convolutions). Products here are also small (a few MFLOP), where
 * OpenBLAS's thread hand-off (sched_yield polling) costs as much as the arithmetic.
 *
 * The structure is the usual one (Goto, BLIS): B is packed in panels of KC x NR, A in strips
 * of MR x KC, and a register-blocked micro-kernel computes an MR x NR tile of C from one strip
 * and one panel with 16 accumulators. Operands are read through "views" (gemm.h): strided
 * matrices, optionally in groups (a batch of NCHW planes), or the patch matrix of an image,
 * which is gathered while packing instead of being written out first (im2col).
 *
 * Threads: the operand that every chunk needs is packed once, in parallel; then each chunk
 * (a few per thread, so that a thread that loses its core holds up only a small part) packs
 * its own part of the other operand and computes its tiles. Wide products are split by
 * column panels, tall ones by row blocks. */

#include "gemm.h"

#if GEMM_X86

/* Thread-local scratch that grows to the largest request and is kept. */
typedef struct {
  float *p;
  size_t floats;
} scratch;

static float *grow(scratch *s, size_t floats) {
  if (s->floats < floats) {
    free(s->p);
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    s->p = aligned_alloc(64, bytes);
    if (!s->p) abort();
    s->floats = floats;
  }
  return s->p;
}

static _Thread_local scratch packed_all, packed_own, transpose_rows;

static long ceil_div(long a, long b) { return (a + b - 1) / b; }
static long min_long(long a, long b) { return a < b ? a : b; }
static long max_long(long a, long b) { return a > b ? a : b; }

/* dst[c * dst_stride + r] = src[r * src_stride + c] for an 8 x 8 block. */
GEMM_TARGET static inline void transpose8(const float *src, long src_stride, float *dst, long dst_stride) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * src_stride), r1 = _mm256_loadu_ps(src + 1 * src_stride);
  __m256 r2 = _mm256_loadu_ps(src + 2 * src_stride), r3 = _mm256_loadu_ps(src + 3 * src_stride);
  __m256 r4 = _mm256_loadu_ps(src + 4 * src_stride), r5 = _mm256_loadu_ps(src + 5 * src_stride);
  __m256 r6 = _mm256_loadu_ps(src + 6 * src_stride), r7 = _mm256_loadu_ps(src + 7 * src_stride);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * dst_stride, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * dst_stride, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * dst_stride, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * dst_stride, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * dst_stride, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * dst_stride, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * dst_stride, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * dst_stride, _mm256_permute2f128_ps(s3, s7, 0x31));
}


/* dst[0..<n] = src[0..<n], 16 lanes at a time: runs here are short, where a call to memcpy
 * costs more than the copy (masked stores also keep the compiler from making it one). */
GEMM_TARGET static inline void copy_floats(float *restrict dst, const float *restrict src, long n) {
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(0, n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
}

/* dst[0..<n] = 0. */
GEMM_TARGET static inline void zero_floats(float *dst, long n) {
  for (long i = 0; i < n; i += 16) _mm512_mask_storeu_ps(dst + i, lanes(0, n - i), _mm512_setzero_ps());
}

/* The offset of a strided view's element (r, c). */
static inline long strided_offset(const gemm_view *v, long r, long c) {
  if (v->group <= 0) return r * v->rs + c * v->cs;
  if (v->cs == 1) return r * v->rs + (c / v->group) * v->group_stride + c % v->group;
  return c * v->cs + (r / v->group) * v->group_stride + r % v->group;
}

/* dst[q] = element of a strided view at index start + q along rows (`along_rows`) or
 * columns, at index `fixed` of the other dimension, for q in 0..<count. */
GEMM_TARGET static void strided_line(
    const gemm_view *v, int along_rows, long fixed, long start, long count, float *restrict dst) {
  const long step = along_rows ? v->rs : v->cs, across = along_rows ? v->cs : v->rs;
  if (step != 1) {
    for (long q = 0; q < count; q++) {
      const long r = along_rows ? start + q : fixed, c = along_rows ? fixed : start + q;
      dst[q] = v->p[strided_offset(v, r, c)];
    }
    return;
  }
  const float *base = v->p + fixed * across;
  if (v->group <= 0) {
    copy_floats(dst, base + start, count);
    return;
  }
  for (long q = start, left = count; left > 0;) {
    const long offset = q % v->group, length = min_long(v->group - offset, left);
    copy_floats(dst, base + (q / v->group) * v->group_stride + offset, length);
    dst += length;
    q += length;
    left -= length;
  }
}

/* dst[t * tile + w] = rows[w * KC + t] for t in 0..<depth, w in 0..<tile: `tile` lines of a
 * strip, each in a row of the thread's transpose_rows buffer, transposed 8 x 8 into packed rows. */
GEMM_TARGET static void pack_from_rows(const float *rows, long depth, long tile, float *restrict dst) {
  long t = 0;
  for (; t + 8 <= depth; t += 8)
    for (long w = 0; w < tile; w += 8) transpose8(rows + w * KC + t, KC, dst + t * tile + w, tile);
  for (; t < depth; t++)
    for (long w = 0; w < tile; w++) dst[t * tile + w] = rows[w * KC + t];
}

/* Packs a tile-wide strip of a strided view: dst[t * tile + w] for t in 0..<depth, w in
 * 0..<tile, zero for w >= width. Element (t, w) is the view's element at depth index start + t
 * and tile index first + w; `depth_along_rows` says which dimension is the depth (rows for
 * B, columns for A). Lines run along the view's contiguous dimension, either straight into
 * packed rows or through an 8 x 8 transposition. */
GEMM_TARGET static void pack_strip(
    const gemm_view *v, int depth_along_rows, long first, long width, long start, long depth, long tile,
    float *restrict dst) {
  const int contiguous = gemm_contiguous(v);
  const int lines_along_depth = depth_along_rows ? contiguous == GEMM_ALONG_ROWS : contiguous == GEMM_ALONG_COLUMNS;
  /* The stride between lines and the start of line `first` in a plain strided view. */
  const long across = depth_along_rows == lines_along_depth ? v->cs : v->rs;
  const float *base = v->p + (depth_along_rows ? start * v->rs + first * v->cs : first * v->rs + start * v->cs);
  if (!lines_along_depth) {
    if (v->group <= 0 && contiguous != GEMM_ALONG_NEITHER) {
      /* Packed row t is a run of `width` adjacent elements. */
      const long step = depth_along_rows ? v->rs : v->cs;
      for (long t = 0; t < depth; t++) {
        float *d = dst + t * tile;
        copy_floats(d, base + t * step, width);
        zero_floats(d + width, tile - width);
      }
      return;
    }
    for (long t = 0; t < depth; t++) {
      float *d = dst + t * tile;
      strided_line(v, !depth_along_rows, start + t, first, width, d);
      zero_floats(d + width, tile - width);
    }
    return;
  }
  if (v->group <= 0 && width == tile) {
    /* Lines are rows of the source `across` apart: transpose 8 x 8 blocks straight from it. */
    long t = 0;
    for (; t + 8 <= depth; t += 8)
      for (long w = 0; w < tile; w += 8) transpose8(base + w * across + t, across, dst + t * tile + w, tile);
    for (; t < depth; t++)
      for (long w = 0; w < tile; w++) dst[t * tile + w] = base[w * across + t];
    return;
  }
  float *rows = grow(&transpose_rows, (size_t)NR * KC);
  for (long w = 0; w < width; w++) strided_line(v, depth_along_rows, first + w, start, depth, rows + w * KC);
  for (long w = width; w < tile; w++) zero_floats(rows + w * KC, depth);
  pack_from_rows(rows, depth, tile, dst);
}

/* Patch matrices. A span of pixels is cut once into pieces; the masks of the lanes inside the
 * image are computed once per piece and tap row ky or column kx; then every patch entry is one
 * or two masked copies per piece. A generic line-by-line packer spent more time per packed row
 * than the kernel spends multiplying it (w2: 20% of the step).
 *
 * Pieces lie within one output row, except where input rows are as wide as output rows
 * (stride 1, w == wo, the padding of a "same" convolution): there output pixel q of a plane
 * reads input element q + (ky - ph) w + kx - pw for every q, so a piece runs across rows
 * (up to 32 pixels of one sample) and each lane's mask is its row's for ky and its column's for
 * kx. On the small planes of AlexNet (3x3, 7x7) and a UNet's inner levels that gathers a whole
 * plane or panel per copy instead of one row. */

#define PANEL_BLOCK_MAX 256           /* the widest block of packed rows (columns of B) */
#define MAX_PIECES (2 * KC)           /* a span of at most KC pixels, cut at rows and panels */
#define MAX_TAPS 8                    /* kernel widths and heights with precomputed masks */

enum { GATHER_ELEMENTS, GATHER_ROWS, GATHER_PLANES };

typedef struct {
  long plane, oy, ox, length; /* plane: the sample's first input plane (sample * c) */
  long offset;                /* where the piece goes in the packed block or line */
  __mmask16 store[2];         /* lanes 0..<length */
  __mmask16 valid[MAX_TAPS][2]; /* lanes whose input column is inside, per kx */
  __mmask16 rows[MAX_TAPS][2];  /* GATHER_PLANES: lanes whose input row is inside, per ky */
} pixel_piece;

/* How pieces gather: masked copies across rows, within rows (stride-1 columns, narrow
 * kernels), or element by element. */
static inline int gather_mode(const distill_conv_geometry *g) {
  if (g->sw != 1 || g->kw > MAX_TAPS) return GATHER_ELEMENTS;
  if (g->sh == 1 && g->w == g->wo && g->kh <= MAX_TAPS) return GATHER_PLANES;
  return GATHER_ROWS;
}

/* Cuts pixels q..<q+count into pieces within one output row (within one sample for
 * GATHER_PLANES, at most 32 pixels) and, with `split`, within one split-wide segment of the
 * span; offsets are positions in the span, mapped by `panel_kc` (> 0) to packed-block offsets
 * (segment * panel_kc * NR + lane). Returns the piece count. */
static long pixel_pieces(const distill_conv_geometry *g, long q, long count, long split, long panel_kc, pixel_piece *pieces) {
  const long pixels = g->ho * g->wo;
  const int mode = gather_mode(g);
  long sample = q / pixels, r = q % pixels, oy = r / g->wo, ox = r % g->wo, n = 0;
  for (long position = 0; position < count;) {
    long length = mode == GATHER_PLANES ? min_long(min_long(pixels - (oy * g->wo + ox), 32), count - position)
                                        : min_long(g->wo - ox, count - position);
    if (split) length = min_long(length, split - position % split);
    pixel_piece *p = &pieces[n++];
    p->plane = sample * g->c;
    p->oy = oy;
    p->ox = ox;
    p->length = length;
    p->offset = panel_kc ? (position / NR) * panel_kc * NR + position % NR : position;
    p->store[0] = lanes(0, length);
    p->store[1] = lanes(0, length - 16);
    if (mode == GATHER_PLANES) {
      /* Lane u (of vector u / 16) is output pixel (oy, ox) + u in row-major order; its input
       * for tap (ky, kx) is inside when its row is inside for ky and its column for kx. */
      memset(p->valid, 0, sizeof p->valid);
      memset(p->rows, 0, sizeof p->rows);
      for (long u = 0, y = oy, x = ox; u < length; u++) {
        const __mmask16 bit = (__mmask16)(1u << (u % 16));
        for (long k = 0; k < g->kw; k++)
          if (x >= g->pw - k && x < g->w + g->pw - k) p->valid[k][u / 16] |= bit;
        for (long k = 0; k < g->kh; k++)
          if (y >= g->ph - k && y < g->h + g->ph - k) p->rows[k][u / 16] |= bit;
        if (++x == g->wo) {
          x = 0;
          y++;
        }
      }
    } else {
      for (long kx = 0; kx < g->kw && kx < MAX_TAPS; kx++) {
        /* Output pixel ox + u reads input column ox + u - pw + kx (stride 1). */
        const long lo = g->pw - kx - ox, hi = g->w + g->pw - kx - ox;
        p->valid[kx][0] = p->store[0] & lanes(lo, hi);
        p->valid[kx][1] = p->store[1] & lanes(lo - 16, hi - 16);
      }
    }
    position += length;
    ox += length;
    while (ox >= g->wo) {
      ox -= g->wo;
      oy++;
    }
    if (oy == g->ho) {
      oy = 0;
      sample++;
    }
  }
  return n;
}

/* The values of piece p for patch entry (ci, ky, kx) into dst[0..<p->length]. */
GEMM_TARGET static inline __attribute__((always_inline)) void gather_piece(
    const distill_conv_geometry *g, const float *x, const pixel_piece *p, long ci, long ky, long kx, int mode,
    float *restrict dst) {
  if (mode == GATHER_PLANES) {
    /* Output pixel q = oy * wo + ox reads input element q + (ky - ph) w + kx - pw (w == wo). */
    const float *src = x + (p->plane + ci) * g->h * g->w + (p->oy - g->ph + ky) * g->w + p->ox - g->pw + kx;
    _mm512_mask_storeu_ps(dst, p->store[0], _mm512_maskz_loadu_ps(p->valid[kx][0] & p->rows[ky][0], src));
    if (p->length > 16)
      _mm512_mask_storeu_ps(dst + 16, p->store[1], _mm512_maskz_loadu_ps(p->valid[kx][1] & p->rows[ky][1], src + 16));
    return;
  }
  const int fast = mode == GATHER_ROWS;
  const long iy = p->oy * g->sh - g->ph + ky;
  if (iy < 0 || iy >= g->h) {
    if (fast && p->length <= 32) {
      _mm512_mask_storeu_ps(dst, p->store[0], _mm512_setzero_ps());
      _mm512_mask_storeu_ps(dst + 16, p->store[1], _mm512_setzero_ps());
    } else {
      memset(dst, 0, (size_t)p->length * sizeof(float));
    }
    return;
  }
  const float *row = x + ((p->plane + ci) * g->h + iy) * g->w;
  if (fast && p->length <= 32) {
    const float *src = row + p->ox - g->pw + kx;
    _mm512_mask_storeu_ps(dst, p->store[0], _mm512_maskz_loadu_ps(p->valid[kx][0], src));
    if (p->length > 16) _mm512_mask_storeu_ps(dst + 16, p->store[1], _mm512_maskz_loadu_ps(p->valid[kx][1], src + 16));
    return;
  }
  for (long u = 0; u < p->length; u++) {
    const long ix = (p->ox + u) * g->sw - g->pw + kx;
    dst[u] = ix >= 0 && ix < g->w ? row[ix] : 0;
  }
}

#ifndef PREFETCH_CHANNELS
#define PREFETCH_CHANNELS 1 /* how far ahead pack_patch_rows prefetches input planes */
#endif

static _Thread_local pixel_piece piece_buffer[MAX_PIECES];

/* Patch-matrix rows k0..<k0+kc (patch entries), columns j0..<j0+nc (pixels, nc at most
 * PANEL_BLOCK_MAX), packed as pack_b packs. */
GEMM_TARGET static void pack_patch_rows(const gemm_view *B, long k0, long kc, long j0, long nc, float *restrict dst) {
  const distill_conv_geometry *g = B->patches;
  pixel_piece *pieces = piece_buffer;
  const long count = pixel_pieces(g, j0, nc, NR, kc, pieces);
  const int mode = gather_mode(g);
  const long taps = g->kh * g->kw;
  long ci = k0 / taps, ky = (k0 % taps) / g->kw, kx = k0 % g->kw;
  for (long t = 0; t < kc;) {
    if (ky == 0 && kx == 0 && ci + PREFETCH_CHANNELS < g->c) {
      /* The rows of the next channel: the planes lie pages apart, which the hardware
       * prefetchers do not follow. */
      for (long q = 0; q < count; q++) {
        const float *plane = B->p + (pieces[q].plane + ci + PREFETCH_CHANNELS) * g->h * g->w;
        if (mode == GATHER_PLANES) {
          /* The rows the piece's windows cover, within the plane. */
          const long first = max_long(0, (pieces[q].oy - g->ph) * g->w), end = min_long(g->h * g->w, (pieces[q].oy - g->ph + g->kh) * g->w + pieces[q].ox + pieces[q].length);
          for (long e = first; e < end; e += 16) _mm_prefetch((const char *)(plane + e), _MM_HINT_T0);
          continue;
        }
        for (long y = 0; y < g->kh; y++) {
          const long iy = pieces[q].oy * g->sh - g->ph + y;
          if (iy < 0 || iy >= g->h) continue;
          const float *first = plane + iy * g->w + pieces[q].ox;
          for (long u = 0; u < pieces[q].length; u += 16) _mm_prefetch((const char *)(first + u), _MM_HINT_T0);
        }
      }
    }
    const long span = min_long(g->kw - kx, kc - t);
    for (long q = 0; q < count; q++)
      for (long u = 0; u < span; u++) gather_piece(g, B->p, &pieces[q], ci, ky, kx + u, mode, dst + pieces[q].offset + (t + u) * NR);
    t += span;
    kx += span;
    if (kx == g->kw) {
      kx = 0;
      if (++ky == g->kh) {
        ky = 0;
        ci++;
      }
    }
  }
  if (nc % NR) {
    /* Zero the lanes past the last column in the last panel. */
    float *last = dst + (nc / NR) * kc * NR;
    const __mmask16 tail0 = (__mmask16)~lanes(0, nc % NR), tail1 = (__mmask16)~lanes(0, nc % NR - 16);
    for (long t = 0; t < kc; t++) {
      _mm512_mask_storeu_ps(last + t * NR, tail0, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(last + t * NR + 16, tail1, _mm512_setzero_ps());
    }
  }
}

/* The transposed patch matrix (rows: pixels k0..<k0+kc; columns: patch entries j0..<j0+nc),
 * packed as pack_b packs: each patch entry of a panel is gathered along the pixels into a
 * line, and 8 x 8 blocks of lines are transposed into the panel. */
GEMM_TARGET static void pack_patch_columns(const gemm_view *B, long k0, long kc, long j0, long nc, float *restrict dst) {
  const distill_conv_geometry *g = B->patches;
  pixel_piece *pieces = piece_buffer;
  const long count = pixel_pieces(g, k0, kc, 0, 0, pieces);
  const int mode = gather_mode(g);
  float *rows = grow(&transpose_rows, (size_t)NR * KC);
  const long taps = g->kh * g->kw;
  for (long jr = 0; jr < nc; jr += NR) {
    const long width = min_long(NR, nc - jr);
    long e = j0 + jr, ci = e / taps, ky = (e % taps) / g->kw, kx = e % g->kw;
    for (long w = 0; w < width; w++) {
      float *line = rows + w * KC;
      for (long q = 0; q < count; q++) gather_piece(g, B->p, &pieces[q], ci, ky, kx, mode, line + pieces[q].offset);
      if (++kx == g->kw) {
        kx = 0;
        if (++ky == g->kh) {
          ky = 0;
          ci++;
        }
      }
    }
    for (long w = width; w < NR; w++) zero_floats(rows + w * KC, kc);
    float *d = dst + jr * kc;
    long t = 0;
    for (; t + 8 <= kc; t += 8)
      for (long w = 0; w < NR; w += 8) transpose8(rows + w * KC + t, KC, d + t * NR + w, NR);
    for (; t < kc; t++)
      for (long w = 0; w < NR; w++) d[t * NR + w] = rows[w * KC + t];
  }
}

/* Packs `depth` source rows of `width` adjacent elements (row t at src + t * stride) into
 * tiles of `tile` columns: tile q holds dst[q * depth * tile + t * tile + w], zero past the
 * width. One pass along each source row serves every tile, so the source is read in order
 * (strip by strip, a transposed A was read one cache line per row, half of it used). */
GEMM_TARGET static void pack_rows_across(const float *src, long stride, long depth, long width, long tile, float *restrict dst) {
  const long full = width / tile * tile;
  for (long t = 0; t < depth; t++) {
    const float *row = src + t * stride;
    if (tile == MR) {
      for (long w = 0; w < full; w += MR) _mm256_store_ps(dst + w * depth + t * MR, _mm256_loadu_ps(row + w));
    } else {
      for (long w = 0; w < full; w += NR) {
        float *d = dst + w * depth + t * NR;
        _mm512_store_ps(d, _mm512_loadu_ps(row + w));
        _mm512_store_ps(d + 16, _mm512_loadu_ps(row + w + 16));
      }
    }
    if (full < width) {
      float *d = dst + full * depth + t * tile;
      copy_floats(d, row + full, width - full);
      zero_floats(d + width - full, tile - (width - full));
    }
  }
}

/* pack_b for a B held in bfloat16 (gemm_view.halves, rs 1): each column's run of depth is
 * widened into a row of the transpose buffer (in L1) and the rows packed as pack_strip packs
 * strided lines (pack_from_rows). */
GEMM_TARGET static void pack_b_halves(const gemm_view *B, long k0, long kc, long j0, long nc, float *restrict dst) {
  float *rows = grow(&transpose_rows, (size_t)NR * KC);
  for (long jr = 0; jr < nc; jr += NR) {
    const long width = min_long(NR, nc - jr);
    for (long w = 0; w < width; w++) distill_bf16_widen(B->halves + (j0 + jr + w) * B->cs + k0, rows + w * KC, kc);
    for (long w = width; w < NR; w++) zero_floats(rows + w * KC, kc);
    pack_from_rows(rows, kc, NR, dst + jr * kc);
  }
}

/* B rows k0..<k0+kc, columns j0..<j0+nc, in panels of NR columns: panel p at dst + p * kc * NR. */
GEMM_TARGET static void pack_b(const gemm_view *B, long k0, long kc, long j0, long nc, float *restrict dst) {
  if (B->halves) {
    pack_b_halves(B, k0, kc, j0, nc, dst);
    return;
  }
  if (B->patches) {
    if (B->transposed) {
      pack_patch_columns(B, k0, kc, j0, nc, dst);
    } else {
      for (long j = 0; j < nc; j += PANEL_BLOCK_MAX)
        pack_patch_rows(B, k0, kc, j0 + j, min_long(PANEL_BLOCK_MAX, nc - j), dst + j * kc);
    }
    return;
  }
  if (gemm_contiguous(B) == GEMM_ALONG_COLUMNS && B->group <= 0) {
    pack_rows_across(B->p + k0 * B->rs + j0, B->rs, kc, nc, NR, dst);
    return;
  }
  for (long jr = 0; jr < nc; jr += NR) pack_strip(B, 1, j0 + jr, min_long(NR, nc - jr), k0, kc, NR, dst + jr * kc);
}

/* Rows i0..<i0+mc, columns k0..<k0+kc of a flipped-taps view (gemm.h), in strips of MR rows.
 * For one input channel ci, the taps of rows i..<i+MR are MR * taps adjacent floats: that
 * block is transposed 8 x 8 at a time into `flipped` with its taps in reverse order (rows
 * written from the last), and the part of it inside the depth block copied into the strip.
 * (An 8-lane gather per depth entry took 13% of an LPIPS step on an AMD EPYC.) */
#define FLIP_TAPS_MAX 128
GEMM_TARGET static void pack_flipped_taps(const gemm_view *A, long i0, long mc, long k0, long kc, float *restrict dst) {
  const long taps = A->flipped_taps;
  float flipped[FLIP_TAPS_MAX * MR] __attribute__((aligned(32)));
  for (long ir = 0; ir < mc; ir += MR) {
    const long mr = min_long(MR, mc - ir);
    float *strip = dst + ir * kc;
    long ci = k0 / taps, first = k0 % taps;
    for (long k = 0; k < kc; ci++, first = 0) {
      const float *block = A->p + ci * A->group_stride + (i0 + ir) * taps;
      const long count = min_long(taps - first, kc - k);
      if (mr == MR && taps <= FLIP_TAPS_MAX) {
        long t = 0;
        for (; t + 8 <= taps; t += 8) transpose8(block + t, taps, flipped + (taps - 1 - t) * MR, -MR);
        for (; t < taps; t++)
          for (long r = 0; r < MR; r++) flipped[(taps - 1 - t) * MR + r] = block[r * taps + t];
        copy_floats(strip + k * MR, flipped + first * MR, count * MR);
      } else {
        for (long u = 0; u < count; u++)
          for (long r = 0; r < MR; r++)
            strip[(k + u) * MR + r] = r < mr ? block[r * taps + taps - 1 - (first + u)] : 0;
      }
      k += count;
    }
  }
}

/* A rows i0..<i0+mc, columns k0..<k0+kc, in strips of MR rows: strip q at dst + q * kc * MR. */
GEMM_TARGET static void pack_a(const gemm_view *A, long i0, long mc, long k0, long kc, float *restrict dst) {
  if (A->flipped_taps) {
    pack_flipped_taps(A, i0, mc, k0, kc, dst);
    return;
  }
  if (gemm_contiguous(A) == GEMM_ALONG_ROWS && A->group <= 0) {
    pack_rows_across(A->p + k0 * A->cs + i0, A->cs, kc, mc, MR, dst);
    return;
  }
  for (long ir = 0; ir < mc; ir += MR) pack_strip(A, 0, i0 + ir, min_long(MR, mc - ir), k0, kc, MR, dst + ir * kc);
}

/* C[0..<mr, 0..<nr] = alpha * (a strip x b panel) + beta * C, C's element (i, j) at
 * c[i * c_rs + j * c_cs]; C is not read when beta is 0. */
GEMM_TARGET static void micro_kernel(
    long kc, const float *restrict a, const float *restrict b, float *c, long c_rs, long c_cs, float alpha, float beta,
    long mr, long nr) {
  __m512 acc0[MR] = {0}, acc1[MR] = {0};
  for (long k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b + k * NR), b1 = _mm512_load_ps(b + k * NR + 16);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[k * MR + i]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  gemm_store_tile(acc0, acc1, c, c_rs, c_cs, alpha, beta, mr, nr);
}

/* One product, read by the chunks of its parallel steps. */
typedef struct {
  const gemm_view *A, *B;
  gemm_output C;
  float alpha, beta;
  long m, n, k;
  long k_base;  /* the first depth index of this segment of the product (see gemm_run) */
  long unit;    /* rows (row split), panels (panel split) or depth blocks (packing) per chunk */
  float *whole; /* the operand every chunk reads, packed: A (panel split) or B (row split) */
  long padded;  /* its rows (A, to MR) or columns (B, to NR), padded */
  int bf16;     /* DISTILL_FP32, DISTILL_BF16_DOT or DISTILL_BF16_ROUNDED (gemm_bf16.c) */
} gemm_job;

/* A packed block of `tiles` strips or panels of `depth` by `tile`, made ready for the
 * micro-kernel: pairs of bfloat16 for vdpbf16ps, or float32 values rounded to bfloat16. */
GEMM_TARGET static inline void finish_packing(const gemm_job *job, float *block, long tiles, long depth, long tile) {
  if (job->bf16 == DISTILL_BF16_DOT)
    gemm_bf16_convert(block, tiles, depth, tile);
  else if (job->bf16 == DISTILL_BF16_ROUNDED)
    gemm_bf16_round(block, tiles * depth * tile);
}

/* finish_packing for B, whose values are bfloat16 already when it is held in bfloat16: only
 * `dot`'s pairs are made. */
GEMM_TARGET static inline void finish_packing_b(const gemm_job *job, float *block, long tiles, long depth) {
  if (job->B->halves && job->bf16 != DISTILL_BF16_DOT) return;
  finish_packing(job, block, tiles, depth, NR);
}

/* The tile's micro-kernel: vdpbf16ps on pairs, or float32 FMA. */
GEMM_TARGET static inline void tile_kernel(
    const gemm_job *job, long kc, const float *a, const float *b, float *c, long c_rs, long c_cs, float beta, long mr,
    long nr) {
  if (job->bf16 == DISTILL_BF16_DOT)
    gemm_bf16_micro_kernel(kc, a, b, c, c_rs, c_cs, job->alpha, beta, mr, nr);
  else
    micro_kernel(kc, a, b, c, c_rs, c_cs, job->alpha, beta, mr, nr);
}

/* The address of C's element (i, j). */
static inline float *c_at(const gemm_output *C, long i, long j) {
  const long column = C->group ? (j / C->group) * C->group_stride + (j % C->group) * C->cs : j * C->cs;
  return C->p + i * C->rs + column;
}

/* The micro-kernel's tile for rows ir..<ir+mr, columns jc..<jc+nr of C. A panel that straddles
 * a group boundary (an implicit convolution whose output planes are not whole panels: the
 * columns of two samples, stored in two NCHW planes) goes through a tile on the stack. */
GEMM_TARGET static inline void kernel_into_c(
    const gemm_job *job, long kc, const float *a, const float *b, long ir, long jc, long mr, long nr, float beta) {
  const gemm_output *C = &job->C;
  if (!C->group || jc % C->group + nr <= C->group) {
    tile_kernel(job, kc, a, b, c_at(C, ir, jc), C->rs, C->cs, beta, mr, nr);
    return;
  }
  float tile[MR * NR] __attribute__((aligned(64)));
  tile_kernel(job, kc, a, b, tile, NR, 1, 0, mr, nr);
  /* The columns in runs that lie within one group. */
  for (long j = 0, group = jc / C->group, r = jc % C->group; j < nr; group++, r = 0) {
    const long run = min_long(nr - j, C->group - r);
    float *first = C->p + ir * C->rs + group * C->group_stride + r * C->cs;
    for (long i = 0; i < mr; i++) {
      float *row = first + i * C->rs;
      const float *t = tile + i * NR + j;
      if (C->cs == 1 && beta == 0) {
        for (long u = 0; u < run; u++) row[u] = t[u];
      } else {
        for (long u = 0; u < run; u++) row[u * C->cs] = t[u] + (beta != 0 ? beta * row[u * C->cs] : 0);
      }
    }
    j += run;
  }
}

/* Depth block `chunk` of A, all rows, into the whole-A buffer (block at k0 * padded rows). */
GEMM_TARGET static void pack_whole_a(void *context, long chunk) {
  const gemm_job *job = context;
  const long k0 = chunk * KC, kc = min_long(KC, job->k - k0);
  pack_a(job->A, 0, job->m, job->k_base + k0, kc, job->whole + k0 * job->padded);
  finish_packing(job, job->whole + k0 * job->padded, job->padded / MR, kc, MR);
}

/* Depth block chunk / unit, panels of group chunk % unit, of B into the whole-B buffer. */
GEMM_TARGET static void pack_whole_b(void *context, long chunk) {
  const gemm_job *job = context;
  const long groups = job->unit, block = chunk / groups, group = chunk % groups;
  const long panels = ceil_div(job->n, NR), per = ceil_div(panels, groups);
  const long j0 = group * per * NR, j1 = min_long(job->n, (group + 1) * per * NR);
  if (j0 >= j1) return;
  const long k0 = block * KC, kc = min_long(KC, job->k - k0);
  pack_b(job->B, job->k_base + k0, kc, j0, j1 - j0, job->whole + k0 * job->padded + j0 * kc);
  finish_packing_b(job, job->whole + k0 * job->padded + j0 * kc, ceil_div(j1 - j0, NR), kc);
}

/* Rows i0..<i1 by all columns, against the whole packed B. */
GEMM_TARGET static void rows_chunk(void *context, long chunk) {
  const gemm_job *job = context;
  const long i0 = chunk * job->unit, i1 = min_long(job->m, i0 + job->unit);
  float *pa = grow(&packed_own, (size_t)MC * KC);
  for (long k0 = 0; k0 < job->k; k0 += KC) {
    const long kc = min_long(KC, job->k - k0);
    const float beta = k0 == 0 ? job->beta : 1.0f;
    pack_a(job->A, i0, i1 - i0, job->k_base + k0, kc, pa);
    finish_packing(job, pa, ceil_div(i1 - i0, MR), kc, MR);
    const float *pb = job->whole + k0 * job->padded;
    for (long jr = 0; jr < job->n; jr += NR)
      for (long ir = i0; ir < i1; ir += MR)
        kernel_into_c(job, kc, pa + (ir - i0) * kc, pb + jr * kc, ir, jr, min_long(MR, i1 - ir), min_long(NR, job->n - jr), beta);
  }
}

#define PANEL_BLOCK PANEL_BLOCK_MAX /* columns of B a panel chunk packs at a time (256 KiB at full depth) */

/* Panels of one chunk by all rows, against the whole packed A. */
GEMM_TARGET static void panels_chunk(void *context, long chunk) {
  const gemm_job *job = context;
  const long first = chunk * job->unit * NR, end = min_long(job->n, (chunk + 1) * job->unit * NR);
  float *pb = grow(&packed_own, (size_t)PANEL_BLOCK * KC);
  for (long j0 = first; j0 < end; j0 += PANEL_BLOCK) {
    const long nc = min_long(PANEL_BLOCK, end - j0);
    for (long k0 = 0; k0 < job->k; k0 += KC) {
      const long kc = min_long(KC, job->k - k0);
      const float beta = k0 == 0 ? job->beta : 1.0f;
      pack_b(job->B, job->k_base + k0, kc, j0, nc, pb);
      finish_packing_b(job, pb, ceil_div(nc, NR), kc);
      const float *pa = job->whole + k0 * job->padded;
      for (long jr = 0; jr < nc; jr += NR)
        for (long ir = 0; ir < job->m; ir += MR)
          kernel_into_c(job, kc, pa + ir * kc, pb + jr * kc, ir, j0 + jr, min_long(MR, job->m - ir), min_long(NR, nc - jr), beta);
    }
  }
}

/* Chunks per thread: more than one, so that a thread that loses its core holds up only a
 * small part of a product. */
#define CHUNKS_PER_THREAD 4

/* The most floats the shared packed operand may take: a longer product runs as segments of
 * its depth, each accumulated onto C, so that memory stays bounded (a weight gradient over a
 * large batch of large images packs its whole output gradient otherwise). */
#define WHOLE_LIMIT (4L << 20)

GEMM_TARGET void gemm_run(
    long threads, long m, long n, long k, float alpha, const gemm_view *A, const gemm_view *B, float beta,
    gemm_output C, int bf16) {
  gemm_job job = {.A = A, .B = B, .C = C, .alpha = alpha, .m = m, .n = n, .bf16 = bf16};
  const long chunks = threads * CHUNKS_PER_THREAD;
  const int tall = m >= n && m >= 2 * MR * threads;
  job.padded = tall ? ceil_div(n, NR) * NR : ceil_div(m, MR) * MR;
  const long limit = WHOLE_LIMIT / job.padded / KC * KC;
  const long segment = limit > KC ? limit : KC;
  job.whole = grow(&packed_all, (size_t)job.padded * (size_t)min_long(k, segment));
  for (job.k_base = 0; job.k_base < k; job.k_base += segment) {
    job.k = min_long(segment, k - job.k_base);
    job.beta = job.k_base == 0 ? beta : 1.0f;
    const long blocks = ceil_div(job.k, KC);
    if (tall) {
      /* Tall: pack all of B (in parallel over depth blocks and column groups), then row blocks. */
      job.unit = min_long(ceil_div(n, NR), ceil_div(chunks, blocks));
      distill_parallel_run(threads, blocks * job.unit, pack_whole_b, &job);
      const long rows = ceil_div(ceil_div(m, chunks), MR) * MR;
      job.unit = rows > MC ? MC : rows;
      distill_parallel_run(threads, ceil_div(m, job.unit), rows_chunk, &job);
    } else {
      /* Wide: pack all of A (in parallel over depth blocks), then panel groups. */
      distill_parallel_run(threads, blocks, pack_whole_a, &job);
      const long panels = ceil_div(n, NR);
      job.unit = ceil_div(panels, chunks);
      distill_parallel_run(threads, ceil_div(panels, job.unit), panels_chunk, &job);
    }
  }
}

#endif

#if GEMM_X86
GEMM_TARGET static void transpose_avx(const float *src, long src_stride, float *dst, long dst_stride, long rows, long cols) {
  long r = 0;
  for (; r + 8 <= rows; r += 8) {
    long c = 0;
    for (; c + 8 <= cols; c += 8) transpose8(src + r * src_stride + c, src_stride, dst + c * dst_stride + r, dst_stride);
    for (; c < cols; c++)
      for (long i = r; i < r + 8; i++) dst[c * dst_stride + i] = src[i * src_stride + c];
  }
  for (; r < rows; r++)
    for (long c = 0; c < cols; c++) dst[c * dst_stride + r] = src[r * src_stride + c];
}
#endif

void distill_transpose(const float *src, long src_stride, float *dst, long dst_stride, long rows, long cols) {
#if GEMM_X86
  if (__builtin_cpu_supports("avx2")) {
    transpose_avx(src, src_stride, dst, dst_stride, rows, cols);
    return;
  }
#endif
  for (long r0 = 0; r0 < rows; r0 += 8)
    for (long c0 = 0; c0 < cols; c0 += 8)
      for (long r = r0; r < r0 + 8 && r < rows; r++)
        for (long c = c0; c < c0 + 8 && c < cols; c++) dst[c * dst_stride + r] = src[r * src_stride + c];
}

int distill_sgemm_supported(void) {
#if GEMM_X86
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#else
  return 0;
#endif
}

void distill_sgemm_bf16_weight(long threads, long m, long n, long k, const float *a, const uint16_t *weight, float beta,
                                float *c, int bf16) {
  if (m <= 0 || n <= 0) return;
#if GEMM_X86
  const gemm_view A = gemm_strided(a, k, 1), B = {.rs = 1, .cs = k, .halves = weight};
  gemm_run(threads, m, n, k, 1.0f, &A, &B, beta, (gemm_output){c, n, 1, 0, 0}, bf16);
#else
  (void)threads, (void)k, (void)a, (void)weight, (void)beta, (void)c, (void)bf16;
  abort(); /* callers check distill_bf16_supported() */
#endif
}

void distill_sgemm(
    long threads, long m, long n, long k, float alpha, const float *a, long a_row_stride, long a_column_stride,
    const float *b, long b_row_stride, long b_column_stride, float beta, float *c, long ldc, int bf16) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (long i = 0; i < m; i++)
      for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
    return;
  }
#if GEMM_X86
  if (n < NR / 2 && m >= 4 * n) {
    /* A few columns (an MLP's 2-D output) would fill a fraction of each 32-column tile:
     * compute C^T = B^T A^T instead, whose tiles are full, and store it transposed. */
    const gemm_view At = gemm_strided(a, a_column_stride, a_row_stride), Bt = gemm_strided(b, b_column_stride, b_row_stride);
    gemm_run(threads, n, m, k, alpha, &Bt, &At, beta, (gemm_output){c, 1, ldc, 0, 0}, bf16);
  } else {
    const gemm_view A = gemm_strided(a, a_row_stride, a_column_stride), B = gemm_strided(b, b_row_stride, b_column_stride);
    gemm_run(threads, m, n, k, alpha, &A, &B, beta, (gemm_output){c, ldc, 1, 0, 0}, bf16);
  }
#else
  (void)threads, (void)alpha, (void)a, (void)a_row_stride, (void)a_column_stride, (void)b, (void)b_row_stride;
  (void)b_column_stride, (void)bf16;
  abort(); /* callers check distill_sgemm_supported() */
#endif
}
