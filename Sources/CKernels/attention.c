#include "gemm.h"

/* Attention without its score matrix (no gradients), as flash attention computes it: for each
 * sample, head and group of query blocks (32 queries a block), the keys run in blocks of
 * ATTENTION_KEYS; for each query block, the key block's scores are computed transposed, S^T
 * (keys x 32 queries, 16 KiB, in L1), exponentiated in place down the columns against the
 * running column maxima, and multiplied by V^T into the block's sums O^T, which are rescaled
 * first when a maximum grew (the online softmax); at the end each column is divided by its
 * total and stored transposed into the output.
 *
 * Both products are gemm.c's 8 x 32 micro-tile with the 32 queries along the vectors: the first
 * reads 8 keys' rows as broadcasts straight from k, the second 8 channels of a value row
 * straight from v, so neither K nor V is packed, and the exponentials are already in the layout
 * the second product's B operand needs. Only the queries are packed (transposed, scaled).
 *
 * Why the groups and key blocks (docs/benchmarks.md): with one query block a chunk and all keys
 * at once, a head of Stable Diffusion 1.5's 64 x 64 level (4096 keys, 40 channels) read its
 * keys and values (about 1.5 MiB of lines) and wrote 512 KiB of scores per 32 queries, more
 * than L2 holds, and ran at 68 GFLOP/s on one thread; key blocks of 128 and 16 query blocks a
 * chunk (each key block's rows serve 512 queries while in L2) run it at 118. */

#if GEMM_X86

#include "vexp.h"

#define ATTENTION_QUERIES 32 /* queries a block: the micro-tile's two vectors */
#define ATTENTION_KEYS 128 /* keys a block: its scores take 16 KiB, in L1 */
#define ATTENTION_GROUP 16 /* the most blocks of queries a chunk */

/* e^x for x <= 0 (scores less their column's maximum): vexp.h's exp16, and 0 below
 * -87.33654, where e^x leaves the normal floats; a NaN kept. */
GEMM_TARGET static inline __attribute__((always_inline)) __m512 exp_nonpositive(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.33654f);
  const __m512 y = exp16(_mm512_max_ps(lo, x)); /* max_ps gives x when x is a NaN */
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y, _mm512_setzero_ps());
}

typedef struct {
  long heads, lq, lk, d, groups, group_queries;
  const float *q, *k, *v;
  long q_stride, k_stride, v_stride, out_stride;
  float *out;
  float scale;
} attention_job;

static _Thread_local float *attention_scratch;
static _Thread_local size_t attention_scratch_bytes;

/* S^T = K Q^T for keys 0..<keys (rows of k): scores[j][i], 8 keys at a time; returns the column
 * maxima (over these keys) in max[0..<2]. */
GEMM_TARGET static inline void attention_scores(const float *k, long k_stride, long keys, const float *queries, long d,
                                                float *scores, __m512 max[2]) {
  __m512 max0 = _mm512_set1_ps(-__builtin_inff()), max1 = max0;
  for (long j0 = 0; j0 < keys; j0 += MR) {
    const long rows = keys - j0 < MR ? keys - j0 : MR;
    const float *key[MR];
    for (long r = 0; r < MR; r++) key[r] = k + (j0 + (r < rows ? r : rows - 1)) * k_stride;
    __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    for (long c = 0; c < d; c++) {
      const __m512 b0 = _mm512_load_ps(queries + c * ATTENTION_QUERIES),
                   b1 = _mm512_load_ps(queries + c * ATTENTION_QUERIES + 16);
#pragma clang loop unroll(full)
      for (int r = 0; r < MR; r++) {
        const __m512 a = _mm512_set1_ps(key[r][c]);
        acc0[r] = _mm512_fmadd_ps(a, b0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(a, b1, acc1[r]);
      }
    }
    for (long r = 0; r < rows; r++) {
      _mm512_store_ps(scores + (j0 + r) * ATTENTION_QUERIES, acc0[r]);
      _mm512_store_ps(scores + (j0 + r) * ATTENTION_QUERIES + 16, acc1[r]);
      max0 = _mm512_max_ps(max0, acc0[r]);
      max1 = _mm512_max_ps(max1, acc1[r]);
    }
  }
  max[0] = max0;
  max[1] = max1;
}

/* sums[g] (O^T, [c][i]) = sums[g] * rescale + V^T P^T over keys 0..<keys (rows of v), 8
 * channels at a time. */
GEMM_TARGET static inline void attention_values(const float *v, long v_stride, long keys, const float *p, long d,
                                                float *sums, const __m512 rescale[2]) {
  for (long c0 = 0; c0 < d; c0 += MR) {
    const long channels = d - c0 < MR ? d - c0 : MR;
    long lane[MR];
    for (long r = 0; r < MR; r++) lane[r] = c0 + (r < channels ? r : channels - 1);
    __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      acc0[r] = _mm512_mul_ps(_mm512_load_ps(sums + (c0 + r) * ATTENTION_QUERIES), rescale[0]);
      acc1[r] = _mm512_mul_ps(_mm512_load_ps(sums + (c0 + r) * ATTENTION_QUERIES + 16), rescale[1]);
    }
    for (long j = 0; j < keys; j++) {
      const float *value = v + j * v_stride;
      const __m512 b0 = _mm512_load_ps(p + j * ATTENTION_QUERIES), b1 = _mm512_load_ps(p + j * ATTENTION_QUERIES + 16);
#pragma clang loop unroll(full)
      for (int r = 0; r < MR; r++) {
        const __m512 a = _mm512_set1_ps(value[lane[r]]);
        acc0[r] = _mm512_fmadd_ps(a, b0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(a, b1, acc1[r]);
      }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      _mm512_store_ps(sums + (c0 + r) * ATTENTION_QUERIES, acc0[r]);
      _mm512_store_ps(sums + (c0 + r) * ATTENTION_QUERIES + 16, acc1[r]);
    }
  }
}

GEMM_TARGET static void attention_chunk(void *context, long chunk) {
  const attention_job *job = context;
  const long d = job->d, lk = job->lk, group = chunk % job->groups, head = chunk / job->groups % job->heads,
             sample = chunk / job->groups / job->heads;
  const long first = group * job->group_queries;
  const long queries_left = job->lq - first;
  const long blocks =
      ((queries_left < job->group_queries ? queries_left : job->group_queries) + ATTENTION_QUERIES - 1) / ATTENTION_QUERIES;
  const float *q = job->q + (sample * job->lq + first) * job->q_stride + head * d;
  const float *k = job->k + sample * lk * job->k_stride + head * d;
  const float *v = job->v + sample * lk * job->v_stride + head * d;
  float *out = job->out + (sample * job->lq + first) * job->out_stride + head * d;
  /* Per block: its queries [c][i] and its sums O^T [c][i] (channels rounded up to MR); then one
   * key block's scores. */
  const long channels = (d + MR - 1) / MR * MR;
  float *queries = grow_scratch((void **)&attention_scratch, &attention_scratch_bytes,
                                (size_t)((d + channels) * blocks + ATTENTION_KEYS) * ATTENTION_QUERIES * sizeof(float));
  float *sums = queries + d * blocks * ATTENTION_QUERIES;
  float *scores = sums + channels * blocks * ATTENTION_QUERIES;
  memset(sums, 0, (size_t)channels * blocks * ATTENTION_QUERIES * sizeof(float));

  /* The queries, transposed and scaled; zero past the last. */
  for (long b = 0; b < blocks; b++)
    for (long c = 0; c < d; c++)
      for (long i = 0; i < ATTENTION_QUERIES; i++) {
        const long row = b * ATTENTION_QUERIES + i;
        queries[(b * d + c) * ATTENTION_QUERIES + i] = row < queries_left ? job->scale * q[row * job->q_stride + c] : 0;
      }

  /* Online softmax over blocks of keys: each block's exponentials are taken against the
   * running column maxima, and the sums so far rescaled when a maximum grows. */
  __m512 maxima[ATTENTION_GROUP][2], totals[ATTENTION_GROUP][2];
  for (long b = 0; b < blocks; b++)
    for (int h = 0; h < 2; h++) maxima[b][h] = _mm512_set1_ps(-__builtin_inff()), totals[b][h] = _mm512_setzero_ps();
  for (long j0 = 0; j0 < lk; j0 += ATTENTION_KEYS) {
    const long keys = lk - j0 < ATTENTION_KEYS ? lk - j0 : ATTENTION_KEYS;
    for (long b = 0; b < blocks; b++) {
      __m512 block_max[2], rescale[2], shift[2];
      attention_scores(k + j0 * job->k_stride, job->k_stride, keys, queries + b * d * ATTENTION_QUERIES, d, scores,
                       block_max);
      for (int h = 0; h < 2; h++) {
        const __m512 grown = _mm512_max_ps(maxima[b][h], block_max[h]);
        rescale[h] = exp_nonpositive(_mm512_sub_ps(maxima[b][h], grown));
        maxima[b][h] = shift[h] = grown;
      }
      __m512 total0 = _mm512_setzero_ps(), total1 = total0;
      for (long j = 0; j < keys; j++) {
        float *s = scores + j * ATTENTION_QUERIES;
        const __m512 e0 = exp_nonpositive(_mm512_sub_ps(_mm512_load_ps(s), shift[0]));
        const __m512 e1 = exp_nonpositive(_mm512_sub_ps(_mm512_load_ps(s + 16), shift[1]));
        _mm512_store_ps(s, e0);
        _mm512_store_ps(s + 16, e1);
        total0 = _mm512_add_ps(total0, e0);
        total1 = _mm512_add_ps(total1, e1);
      }
      totals[b][0] = _mm512_fmadd_ps(totals[b][0], rescale[0], total0);
      totals[b][1] = _mm512_fmadd_ps(totals[b][1], rescale[1], total1);
      attention_values(v + j0 * job->v_stride, job->v_stride, keys, scores, d, sums + b * channels * ATTENTION_QUERIES,
                       rescale);
    }
  }

  /* Each column divided by its total, stored transposed. */
  for (long b = 0; b < blocks; b++) {
    const __m512 inverse0 = _mm512_div_ps(_mm512_set1_ps(1), totals[b][0]),
                 inverse1 = _mm512_div_ps(_mm512_set1_ps(1), totals[b][1]);
    float *block_sums = sums + b * channels * ATTENTION_QUERIES;
    for (long c = 0; c < d; c++) {
      _mm512_store_ps(block_sums + c * ATTENTION_QUERIES, _mm512_mul_ps(_mm512_load_ps(block_sums + c * ATTENTION_QUERIES), inverse0));
      _mm512_store_ps(block_sums + c * ATTENTION_QUERIES + 16,
                      _mm512_mul_ps(_mm512_load_ps(block_sums + c * ATTENTION_QUERIES + 16), inverse1));
    }
    const long rows = queries_left - b * ATTENTION_QUERIES < ATTENTION_QUERIES ? queries_left - b * ATTENTION_QUERIES
                                                                               : ATTENTION_QUERIES;
    distill_transpose(block_sums, ATTENTION_QUERIES, out + b * ATTENTION_QUERIES * job->out_stride, job->out_stride, d,
                      rows);
  }
}

void distill_attention_forward(long threads, long n, long heads, long lq, long lk, long d, float scale, const float *q,
                               long q_stride, const float *k, long k_stride, const float *v, long v_stride, float *out,
                               long out_stride) {
  if (n <= 0 || heads <= 0 || lq <= 0 || d <= 0) return;
  if (lk <= 0) {
    for (long i = 0; i < n * lq; i++) memset(out + i * out_stride, 0, (size_t)(heads * d) * sizeof(float));
    return;
  }
  /* Blocks of queries a chunk: ATTENTION_GROUP, fewer where that would leave under 4 chunks a
   * thread. */
  const long blocks = (lq + ATTENTION_QUERIES - 1) / ATTENTION_QUERIES;
  long group = ATTENTION_GROUP;
  while (group > 1 && n * heads * ((blocks + group - 1) / group) < 4 * threads) group /= 2;
  attention_job job = {.heads = heads, .lq = lq, .lk = lk, .d = d, .groups = (blocks + group - 1) / group,
                       .group_queries = group * ATTENTION_QUERIES,
                       .q = q, .k = k, .v = v, .q_stride = q_stride, .k_stride = k_stride, .v_stride = v_stride,
                       .out_stride = out_stride, .out = out, .scale = scale};
  distill_parallel_run(threads, n * heads * job.groups, attention_chunk, &job);
}

#else

void distill_attention_forward(long threads, long n, long heads, long lq, long lk, long d, float scale, const float *q,
                               long q_stride, const float *k, long k_stride, const float *v, long v_stride, float *out,
                               long out_stride) {
  (void)threads, (void)n, (void)heads, (void)lq, (void)lk, (void)d, (void)scale, (void)q, (void)q_stride, (void)k,
      (void)k_stride, (void)v, (void)v_stride, (void)out, (void)out_stride;
  abort();
}

#endif
