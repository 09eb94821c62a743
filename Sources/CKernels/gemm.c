#include "CKernels.h"

#include <stdlib.h>
#include <string.h>

/* Single-precision matrix product with AVX-512, for CPUs that have it.
 *
 * Why not OpenBLAS alone: the machines this project is measured on are Zen 5 (512-bit FMA
 * units) and ship with OPENBLAS_CORETYPE=Haswell, which pins OpenBLAS to its AVX2 kernels
 * (about 110 GFLOP/s per core here, against 150-210 for the loop below on the products of the
 * w1 MLPs and the w2 convolutions). Products here are also small (a few MFLOP), where
 * OpenBLAS's thread hand-off (sched_yield spinning) costs as much as the arithmetic; the
 * caller threads this function itself (Ops+Linalg.swift).
 *
 * The structure is the usual one (Goto, BLIS): B is packed in panels of KC x NR, A in strips
 * of MR x KC, and a register-blocked micro-kernel computes an MR x NR tile of C from one strip
 * and one panel with 16 accumulators. Operands are read through general strides, so transposed
 * operands cost only their packing. */

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GEMM_X86 1
#include <immintrin.h>
#endif

#define MR 8     /* rows of a micro-tile */
#define NR 32    /* columns of a micro-tile: two 16-float vectors */
#define KC 256   /* depth of a packed block: a B panel of KC x NR is 32 KiB, in L1 */
#define MC 128   /* rows of a packed A block: 128 KiB, in L2 */
#define NC 1024  /* columns of a packed B block: 1 MiB */

int distill_sgemm_supported(void) {
#if GEMM_X86
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#else
  return 0;
#endif
}

#if GEMM_X86

#define GEMM_TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))

typedef struct {
  const float *p;
  long rs, cs; /* element (i, j) is p[i * rs + j * cs] */
} strided;

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

/* Packs rows k0..<k0+kc and columns j0..<j0+nc of B into panels of NR columns: panel p holds
 * dst[p * kc * NR + k * NR + j], zero beyond the last column. */
GEMM_TARGET static void pack_b(strided B, long k0, long kc, long j0, long nc, float *restrict dst) {
  for (long jr = 0; jr < nc; jr += NR) {
    const long nr = nc - jr < NR ? nc - jr : NR;
    float *d = dst + jr * kc;
    const float *s = B.p + k0 * B.rs + (j0 + jr) * B.cs;
    if (B.cs == 1) {
      const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
      const __mmask16 m1 = nr >= 32 ? 0xFFFF : (nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1));
      for (long k = 0; k < kc; k++) {
        _mm512_store_ps(d + k * NR, _mm512_maskz_loadu_ps(m0, s + k * B.rs));
        _mm512_store_ps(d + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + k * B.rs + 16));
      }
      continue;
    }
    long k = 0;
    if (B.rs == 1 && nr == NR) {
      /* Column j of the panel is contiguous in k: transpose 8 x 8 blocks. */
      for (; k + 8 <= kc; k += 8)
        for (long jb = 0; jb < NR; jb += 8) transpose8(s + k + jb * B.cs, B.cs, d + k * NR + jb, NR);
    }
    for (; k < kc; k++) {
      long j = 0;
      for (; j < nr; j++) d[k * NR + j] = s[k * B.rs + j * B.cs];
      for (; j < NR; j++) d[k * NR + j] = 0;
    }
  }
}

/* Packs rows i0..<i0+mc and columns k0..<k0+kc of A into strips of MR rows: strip q holds
 * dst[q * kc * MR + k * MR + i], zero beyond the last row. */
GEMM_TARGET static void pack_a(strided A, long i0, long mc, long k0, long kc, float *restrict dst) {
  for (long ir = 0; ir < mc; ir += MR) {
    const long mr = mc - ir < MR ? mc - ir : MR;
    float *d = dst + ir * kc;
    const float *s = A.p + (i0 + ir) * A.rs + k0 * A.cs;
    if (A.rs == 1) {
      const __mmask8 mask = mr >= 8 ? 0xFF : (__mmask8)((1u << mr) - 1);
      for (long k = 0; k < kc; k++) _mm256_store_ps(d + k * MR, _mm256_maskz_loadu_ps(mask, s + k * A.cs));
      continue;
    }
    long k = 0;
    if (A.cs == 1 && mr == MR) {
      for (; k + 8 <= kc; k += 8) transpose8(s + k, A.rs, d + k * MR, MR);
    }
    for (; k < kc; k++) {
      long i = 0;
      for (; i < mr; i++) d[k * MR + i] = s[i * A.rs + k * A.cs];
      for (; i < MR; i++) d[k * MR + i] = 0;
    }
  }
}

/* C[0..<mr, 0..<nr] = alpha * (a strip x b panel) + beta * C, C's element (i, j) at
 * c[i * c_rs + j * c_cs]; C is not read when beta is 0. */
GEMM_TARGET static void micro_kernel(
    long kc, const float *restrict a, const float *restrict b, float *c, long c_rs, long c_cs, float alpha, float beta,
    long mr, long nr) {
  __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
  for (int i = 0; i < MR; i++) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  for (long k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b + k * NR), b1 = _mm512_load_ps(b + k * NR + 16);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[k * MR + i]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
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
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : (nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1));
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

/* Packing buffers, one pair per thread, kept for the thread's life (the callers are the
 * calling thread and Dispatch's worker threads). */
static _Thread_local float *packed_a;
static _Thread_local float *packed_b;

GEMM_TARGET static void gemm_avx512(
    long m, long n, long k, float alpha, strided A, strided B, float beta, float *c, long c_rs, long c_cs) {
  if (!packed_a) {
    packed_a = aligned_alloc(64, (size_t)MC * KC * sizeof(float));
    packed_b = aligned_alloc(64, (size_t)NC * KC * sizeof(float));
    if (!packed_a || !packed_b) abort();
  }
  for (long jc = 0; jc < n; jc += NC) {
    const long nc = n - jc < NC ? n - jc : NC;
    for (long pc = 0; pc < k; pc += KC) {
      const long kc = k - pc < KC ? k - pc : KC;
      const float block_beta = pc == 0 ? beta : 1.0f;
      pack_b(B, pc, kc, jc, nc, packed_b);
      for (long ic = 0; ic < m; ic += MC) {
        const long mc = m - ic < MC ? m - ic : MC;
        pack_a(A, ic, mc, pc, kc, packed_a);
        for (long jr = 0; jr < nc; jr += NR) {
          const long nr = nc - jr < NR ? nc - jr : NR;
          for (long ir = 0; ir < mc; ir += MR) {
            const long mr = mc - ir < MR ? mc - ir : MR;
            micro_kernel(
                kc, packed_a + ir * kc, packed_b + jr * kc, c + (ic + ir) * c_rs + (jc + jr) * c_cs, c_rs, c_cs,
                alpha, block_beta, mr, nr);
          }
        }
      }
    }
  }
}

#endif

void distill_sgemm(
    long m, long n, long k, float alpha, const float *a, long a_row_stride, long a_column_stride, const float *b,
    long b_row_stride, long b_column_stride, float beta, float *c, long ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (long i = 0; i < m; i++)
      for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
    return;
  }
#if GEMM_X86
  const strided A = {a, a_row_stride, a_column_stride}, B = {b, b_row_stride, b_column_stride};
  if (n < NR / 2 && m >= 4 * n) {
    /* A few columns (an MLP's 2-D output) would fill a fraction of each 32-column tile:
     * compute C^T = B^T A^T instead, whose tiles are full, and store it transposed. */
    const strided At = {a, a_column_stride, a_row_stride}, Bt = {b, b_column_stride, b_row_stride};
    gemm_avx512(n, m, k, alpha, Bt, At, beta, c, 1, ldc);
  } else {
    gemm_avx512(m, n, k, alpha, A, B, beta, c, ldc, 1);
  }
#else
  abort(); /* callers check distill_sgemm_supported() */
#endif
}
