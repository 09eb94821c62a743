#include "CKernels.h"

#include <stdint.h>
#include <math.h>
#include <string.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

/* Not under ThreadSanitizer: it instruments the ifunc resolvers that target_clones generates,
 * which run during relocation, before its runtime is initialised, and crash the process
 * (scripts/tsan.sh). A TSan build uses the default target only. */
#if defined(__x86_64__) && defined(__linux__) && !__has_feature(thread_sanitizer)
#define DISTILL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DISTILL_CLONES
#endif

/* Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2; degree-5 polynomial for e^r (Cephes expf
 * coefficients); 2^n from exponent bits. Branch-free so that loops over it vectorise. */
static inline __attribute__((always_inline)) float fast_exp(float x) {
  float c = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);
  const float shifter = 12582912.0f; /* 1.5 * 2^23: rounds to nearest */
  float shifted = c * 1.44269504f + shifter;
  float n = shifted - shifter;
  float r = (c - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float er = p * (r * r) + r + 1.0f;
  int32_t bits_shifted, bits_shifter;
  memcpy(&bits_shifted, &shifted, 4);
  memcpy(&bits_shifter, &shifter, 4);
  /* 2^n as two factors: n reaches 128 near the top of the range, past float's exponent. */
  int32_t ni = bits_shifted - bits_shifter;
  int32_t half = ni >> 1;
  int32_t e1 = (int32_t)((uint32_t)(half + 127) << 23);
  int32_t e2 = (int32_t)((uint32_t)(ni - half + 127) << 23);
  float scale1, scale2;
  memcpy(&scale1, &e1, 4);
  memcpy(&scale2, &e2, 4);
  float y = (er * scale1) * scale2;
  y = x > 88.72283f ? __builtin_inff() : y;
  y = x < -87.33654f ? 0.0f : y;
  return x != x ? x : y;
}

DISTILL_CLONES void distill_exp(const float *x, float *y, long n) {
  for (long i = 0; i < n; i++) y[i] = fast_exp(x[i]);
}

DISTILL_CLONES void distill_sigmoid(const float *x, float *y, long n) {
  for (long i = 0; i < n; i++) y[i] = 1.0f / (1.0f + fast_exp(-x[i]));
}

/* erf by Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7; PyTorch's vectorised CPU
 * erf is the same formula): 1 - t (a1 + t (a2 + ...)) e^(-x^2), t = 1 / (1 + p |x|), sign of x.
 * NaN propagates through t. */
static inline __attribute__((always_inline)) float fast_erf(float x) {
  const float a = fabsf(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float r = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  return copysignf(1.0f - r * fast_exp(-a * a), x);
}

/* GELU, exact form: x Phi(x) = x (1 + erf(x / sqrt 2)) / 2; its gradient Phi(x) + x phi(x). */
DISTILL_CLONES void distill_gelu(const float *x, float *y, long n) {
  for (long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + fast_erf(x[i] * 0.70710678118654752f));
}

DISTILL_CLONES void distill_gelu_backward(const float *g, const float *x, float *out, long n) {
  for (long i = 0; i < n; i++) {
    const float cdf = 0.5f * (1.0f + fast_erf(x[i] * 0.70710678118654752f));
    const float pdf = fast_exp(-0.5f * x[i] * x[i]) * 0.39894228040143268f;
    out[i] = g[i] * (cdf + x[i] * pdf);
  }
}

/* GEGLU over rows of 2h: y[r, i] = x[r, i] GELU(x[r, h + i]); its gradient out[r, i] =
 * g[r, i] GELU(x[r, h + i]), out[r, h + i] = g[r, i] x[r, i] GELU'(x[r, h + i]). */
DISTILL_CLONES void distill_geglu(const float *x, float *y, long rows, long h) {
  for (long r = 0; r < rows; r++) {
    const float *a = x + r * 2 * h, *b = a + h;
    float *o = y + r * h;
    for (long i = 0; i < h; i++) o[i] = a[i] * (0.5f * b[i] * (1.0f + fast_erf(b[i] * 0.70710678118654752f)));
  }
}

DISTILL_CLONES void distill_geglu_backward(const float *g, const float *x, float *out, long rows, long h) {
  for (long r = 0; r < rows; r++) {
    const float *a = x + r * 2 * h, *b = a + h, *gr = g + r * h;
    float *oa = out + r * 2 * h, *ob = oa + h;
    for (long i = 0; i < h; i++) {
      const float cdf = 0.5f * (1.0f + fast_erf(b[i] * 0.70710678118654752f));
      const float pdf = fast_exp(-0.5f * b[i] * b[i]) * 0.39894228040143268f;
      oa[i] = gr[i] * b[i] * cdf;
      ob[i] = gr[i] * a[i] * (cdf + b[i] * pdf);
    }
  }
}

DISTILL_CLONES static void silu_portable(const float *x, float *y, long n) {
  for (long i = 0; i < n; i++) y[i] = x[i] / (1.0f + fast_exp(-x[i]));
}

DISTILL_CLONES static void silu_backward_portable(const float *g, const float *x, float *out, long n) {
  for (long i = 0; i < n; i++) {
    float s = 1.0f / (1.0f + fast_exp(-x[i]));
    out[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

/* SiLU with AVX-512 instructions that plain C does not reach: 2^n by vscalefps (vexp.h) and the
 * reciprocal by vrcp14ps and one Newton step, instead of integer exponent arithmetic and a
 * division (w1 spent 13% of its step in SiLU). sigmoid(x) = 1 / (1 + e^-x) with -x capped at
 * 87, where e^-x is still finite, so that the Newton step never meets infinity; below that the
 * sigmoid is taken as 0. NaN propagates through x. */
#if defined(__x86_64__) && !__has_feature(thread_sanitizer)
#include "vexp.h"
#define SILU_AVX512 1

__attribute__((target("avx512f"))) static inline __m512 sigmoid16(__m512 x) {
  /* -x within [-87.3, 87]: e^-x stays a normal float (no denormal assists). */
  const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(-87.3f)),
                                 _mm512_set1_ps(87.0f));
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(t));
  const __m512 s = _mm512_rcp14_ps(d);
  /* Below -87 the sigmoid is under 2^-125: 0, so that x * sigmoid(x) is 0 (NaN at -inf, as
   * x / (1 + e^-x) gives). */
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  return _mm512_maskz_mul_ps((__mmask16)~tiny, s, _mm512_fnmadd_ps(d, s, _mm512_set1_ps(2.0f)));
}

__attribute__((target("avx512f"))) static void silu_avx512(const float *x, float *y, long n) {
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, sigmoid16(v)));
  }
}

__attribute__((target("avx512f"))) static void silu_backward_avx512(const float *g, const float *x, float *out, long n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i), s = sigmoid16(v);
    const __m512 slope = _mm512_fmadd_ps(v, _mm512_sub_ps(one, s), one); /* 1 + x (1 - s) */
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + i), s), slope));
  }
}

static int has_avx512(void) {
  static int known = -1;
  if (known < 0) known = __builtin_cpu_supports("avx512f") ? 1 : 0;
  return known;
}
#endif

void distill_silu(const float *x, float *y, long n) {
#if SILU_AVX512
  if (has_avx512()) {
    silu_avx512(x, y, n);
    return;
  }
#endif
  silu_portable(x, y, n);
}

void distill_silu_backward(const float *g, const float *x, float *out, long n) {
#if SILU_AVX512
  if (has_avx512()) {
    silu_backward_avx512(g, x, out, n);
    return;
  }
#endif
  silu_backward_portable(g, x, out, n);
}

/* Row reductions keep 16 partial results so that they vectorise without reassociating a
 * single chain (which the compiler may not do for floats). */
#define ROW_LANES 16

static inline __attribute__((always_inline)) float row_max(const float *x, long n) {
  float lanes[ROW_LANES];
  for (int l = 0; l < ROW_LANES; l++) lanes[l] = -__builtin_inff();
  long i = 0;
  for (; i + ROW_LANES <= n; i += ROW_LANES)
    for (int l = 0; l < ROW_LANES; l++) lanes[l] = x[i + l] > lanes[l] ? x[i + l] : lanes[l];
  float m = -__builtin_inff();
  for (int l = 0; l < ROW_LANES; l++) m = lanes[l] > m ? lanes[l] : m;
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

/* y = e^(x - m) over a row; returns the sum of y. */
static inline __attribute__((always_inline)) float row_exp_sum(const float *x, float *y, long n, float m) {
  float lanes[ROW_LANES] = {0};
  long i = 0;
  for (; i + ROW_LANES <= n; i += ROW_LANES)
    for (int l = 0; l < ROW_LANES; l++) {
      float e = fast_exp(x[i + l] - m);
      y[i + l] = e;
      lanes[l] += e;
    }
  float total = 0;
  for (int l = 0; l < ROW_LANES; l++) total += lanes[l];
  for (; i < n; i++) {
    y[i] = fast_exp(x[i] - m);
    total += y[i];
  }
  return total;
}

static inline __attribute__((always_inline)) float row_dot(const float *a, const float *b, long n) {
  float lanes[ROW_LANES] = {0};
  long i = 0;
  for (; i + ROW_LANES <= n; i += ROW_LANES)
    for (int l = 0; l < ROW_LANES; l++) lanes[l] += a[i + l] * b[i + l];
  float total = 0;
  for (int l = 0; l < ROW_LANES; l++) total += lanes[l];
  for (; i < n; i++) total += a[i] * b[i];
  return total;
}

DISTILL_CLONES void distill_softmax_rows(const float *x, float *y, long rows, long n) {
  for (long r = 0; r < rows; r++) {
    const float *s = x + r * n;
    float *o = y + r * n;
    float scale = 1.0f / row_exp_sum(s, o, n, row_max(s, n));
    for (long i = 0; i < n; i++) o[i] *= scale;
  }
}

DISTILL_CLONES void distill_log_softmax_rows(const float *x, float *y, long rows, long n) {
  for (long r = 0; r < rows; r++) {
    const float *s = x + r * n;
    float *o = y + r * n;
    float m = row_max(s, n);
    float lse = logf(row_exp_sum(s, o, n, m));
    for (long i = 0; i < n; i++) o[i] = (s[i] - m) - lse;
  }
}

DISTILL_CLONES void distill_softmax_backward_rows(const float *g, const float *y, float *out, long rows, long n) {
  for (long r = 0; r < rows; r++) {
    const float *gr = g + r * n;
    const float *yr = y + r * n;
    float *o = out + r * n;
    float dot = row_dot(gr, yr, n);
    for (long i = 0; i < n; i++) o[i] = yr[i] * (gr[i] - dot);
  }
}

/* The output columns lo..<hi whose input column ox * sw - pw + kx lies inside 0..<w. */
static inline __attribute__((always_inline)) void valid_columns(const distill_conv_geometry *g, long kx, long *lo, long *hi) {
  long first = g->pw - kx;       /* ox * sw >= first */
  long last = g->w - 1 + g->pw - kx; /* ox * sw <= last */
  if (last < 0) {
    *lo = *hi = 0;
    return;
  }
  long l = first <= 0 ? 0 : (first + g->sw - 1) / g->sw;
  long h = last / g->sw + 1;
  if (l > g->wo) l = g->wo;
  if (h > g->wo) h = g->wo;
  *lo = l;
  *hi = h < l ? l : h;
}

DISTILL_CLONES void distill_im2col(const float *restrict x, float *restrict col, distill_conv_geometry geometry, long first, long last) {
  const distill_conv_geometry *g = &geometry;
  const long ld = g->n * g->ho * g->wo, pixels = g->ho * g->wo;
  for (long item = first; item < last; item++) {
    const long s = item / g->c, ci = item % g->c;
    const float *plane = x + item * g->h * g->w;
    for (long ky = 0; ky < g->kh; ky++) {
      for (long kx = 0; kx < g->kw; kx++) {
        float *row = col + ((ci * g->kh + ky) * g->kw + kx) * ld + s * pixels;
        long lo, hi;
        valid_columns(g, kx, &lo, &hi);
        for (long oy = 0; oy < g->ho; oy++) {
          float *dst = row + oy * g->wo;
          const long iy = oy * g->sh - g->ph + ky;
          if (iy < 0 || iy >= g->h) {
            for (long ox = 0; ox < g->wo; ox++) dst[ox] = 0;
            continue;
          }
          const float *src = plane + iy * g->w - g->pw + kx;
          for (long ox = 0; ox < lo; ox++) dst[ox] = 0;
          if (g->sw == 1) {
            for (long ox = lo; ox < hi; ox++) dst[ox] = src[ox];
          } else {
            for (long ox = lo; ox < hi; ox++) dst[ox] = src[ox * g->sw];
          }
          for (long ox = hi; ox < g->wo; ox++) dst[ox] = 0;
        }
      }
    }
  }
}

DISTILL_CLONES void distill_col2im(const float *restrict col, float *restrict x, distill_conv_geometry geometry, long first, long last) {
  const distill_conv_geometry *g = &geometry;
  const long ld = g->n * g->ho * g->wo, pixels = g->ho * g->wo;
  for (long item = first; item < last; item++) {
    const long s = item / g->c, ci = item % g->c;
    float *plane = x + item * g->h * g->w;
    for (long i = 0; i < g->h * g->w; i++) plane[i] = 0;
    for (long ky = 0; ky < g->kh; ky++) {
      for (long kx = 0; kx < g->kw; kx++) {
        const float *row = col + ((ci * g->kh + ky) * g->kw + kx) * ld + s * pixels;
        long lo, hi;
        valid_columns(g, kx, &lo, &hi);
        for (long oy = 0; oy < g->ho; oy++) {
          const long iy = oy * g->sh - g->ph + ky;
          if (iy < 0 || iy >= g->h) continue;
          const float *src = row + oy * g->wo;
          float *dst = plane + iy * g->w - g->pw + kx;
          if (g->sw == 1) {
            for (long ox = lo; ox < hi; ox++) dst[ox] += src[ox];
          } else {
            for (long ox = lo; ox < hi; ox++) dst[ox * g->sw] += src[ox];
          }
        }
      }
    }
  }
}

/* sin and cos of one float (Cephes sinf/cosf): x = j pi/4 + r with pi/4 split in three so that
 * j * DP1 is exact for |x| below about 8192, then minimax polynomials on |r| <= pi/4 and the
 * octant picks sin or cos and the sign. Within 2 ulp of glibc for |x| < 8192; branch-free. */
static inline __attribute__((always_inline)) void fast_sincos(float x, float *s, float *c) {
  const float DP1 = 0.78515625f, DP2 = 2.4187564849853515625e-4f, DP3 = 3.77489497744594108e-8f;
  float ax = x < 0 ? -x : x;
  int32_t j = (int32_t)(ax * 1.27323954473516f); /* 4 / pi */
  j += j & 1;                                      /* round up to even: r in [-pi/4, pi/4] */
  float y = (float)j;
  float r = ((ax - y * DP1) - y * DP2) - y * DP3;
  float z = r * r;
  float ps = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
  float pc = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
  int32_t octant = j & 7; /* 0, 2, 4 or 6 */
  int swap = octant == 2 || octant == 6;
  float sv = swap ? pc : ps;
  float cv = swap ? ps : pc;
  int sin_negative = (octant >= 4) != (x < 0);
  int cos_negative = octant == 2 || octant == 4;
  *s = sin_negative ? -sv : sv;
  *c = cos_negative ? -cv : cv;
}

DISTILL_CLONES void distill_sincos(const float *x, float *s, float *c, long n) {
  for (long i = 0; i < n; i++) fast_sincos(x[i], &s[i], &c[i]);
}

/* One Adam/AdamW step over n elements, operation for operation as Adam.swift documents (and
 * torch.optim's single-tensor Adam computes): no contraction into fused multiply-adds, so
 * results are the same on every instruction set. The flags are loop-invariant; the compiler
 * unswitches the loop on them. */
#pragma clang fp contract(off)
DISTILL_CLONES void distill_adam_update(float *restrict p, const float *restrict g, float *restrict m,
                                        float *restrict v, long n, distill_adam_constants k, int decoupled,
                                        int l2, int lerp_low) {
  for (long i = 0; i < n; i++) {
    float pi = p[i];
    if (decoupled) pi = pi * k.shrink;
    float gi = g[i];
    if (l2) gi = gi + k.decay * pi;
    const float m_old = m[i];
    /* torch.lerp: self + w (end - self) when |w| < 0.5, else end - (end - self)(1 - w). */
    const float mi = lerp_low ? m_old + k.weight * (gi - m_old) : gi - (gi - m_old) * k.complement;
    const float vi = v[i] * k.b2 + k.c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = __builtin_elementwise_sqrt(vi) / k.bc2_sqrt + k.eps; /* no errno: vectorises */
    p[i] = pi + k.neg_step_size * mi / denom;
  }
}

/* The larger of a and b; NaN if either is NaN. */
static inline float pool_max(float a, float b) { return (a > b) | (a != a) ? a : b; }

/* Max pooling of planes first..<last (no padding): each output takes the largest element of
 * its window, the first in row-major order on ties, NaN wins (PyTorch's CPU kernel), and
 * records its index within the plane. A window's maximum is taken as a tree and its index
 * found by independent comparisons with it: a running maximum with its index is a chain of
 * dependent compares and selects, latency-bound at about 6 cycles an element (AlexNet's
 * pools in LPIPS took 8% of a step that way). */
DISTILL_CLONES void distill_max_pool2d(const float *x, float *y, int32_t *index, long h, long w, long kernel,
                                       long stride, long ho, long wo, long first, long last) {
  enum { WINDOW_MAX = 64 };
  for (long p = first; p < last; p++) {
    const float *src = x + p * h * w;
    float *dst = y + p * ho * wo;
    int32_t *idx = index + p * ho * wo;
    for (long oy = 0; oy < ho; oy++) {
      const long y0 = oy * stride, y1 = y0 + kernel < h ? y0 + kernel : h;
      for (long ox = 0; ox < wo; ox++) {
        const long x0 = ox * stride, x1 = x0 + kernel < w ? x0 + kernel : w;
        const long cols = x1 - x0, count = (y1 - y0) * cols;
        float best;
        if (count == 9 && cols == 3) {
          /* 3x3 windows (AlexNet's pools), unrolled. */
          const float *r = src + y0 * w + x0;
          const float a[9] = {r[0], r[1], r[2], r[w], r[w + 1], r[w + 2], r[2 * w], r[2 * w + 1], r[2 * w + 2]};
          best = pool_max(pool_max(pool_max(a[0], a[1]), pool_max(a[2], a[3])),
                          pool_max(pool_max(a[4], a[5]), pool_max(a[6], a[7])));
          best = pool_max(best, a[8]);
          long at = 8;
#pragma clang loop unroll(full)
          for (long i = 7; i >= 0; i--) at = (a[i] == best) | (a[i] != a[i]) ? i : at;
          idx[oy * wo + ox] = (int32_t)((y0 + at / 3) * w + x0 + at % 3);
        } else if (count <= WINDOW_MAX) {
          float v[WINDOW_MAX];
          for (long r = 0; r < y1 - y0; r++)
            for (long c = 0; c < cols; c++) v[r * cols + c] = src[(y0 + r) * w + x0 + c];
          float t[WINDOW_MAX];
          for (long i = 0; i < count; i++) t[i] = v[i];
          for (long n = count; n > 1;) {
            const long half = (n + 1) / 2;
            for (long i = 0; i + half < n; i++) t[i] = pool_max(t[i], t[i + half]);
            n = half;
          }
          best = t[0];
          long at = count - 1;
          for (long i = count - 1; i >= 0; i--) at = (v[i] == best) | (v[i] != v[i]) ? i : at;
          idx[oy * wo + ox] = (int32_t)((y0 + at / cols) * w + x0 + at % cols);
        } else {
          best = src[y0 * w + x0];
          int32_t at = (int32_t)(y0 * w + x0);
          for (long yy = y0; yy < y1; yy++)
            for (long xx = x0; xx < x1; xx++) {
              const float v = src[yy * w + xx];
              const int take = (v > best) | (v != v);
              best = take ? v : best;
              at = take ? (int32_t)(yy * w + xx) : at;
            }
          idx[oy * wo + ox] = at;
        }
        dst[oy * wo + ox] = best;
      }
    }
  }
}
