#ifndef DISTILL_CKERNELS_H
#define DISTILL_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Elementwise kernels built on a vectorisable exp, compiled for AVX-512, AVX2 and baseline
 * x86-64 and chosen at load time for the running CPU (target_clones). Swift code is compiled
 * for baseline x86-64, so these transcendental loops would otherwise run 4 lanes wide. */

/* y[i] = e^x[i] (relative error < 2.5e-7; subnormal results flush to 0). */
void distill_exp(const float *x, float *y, long n);
/* y[i] = 1 / (1 + e^-x[i]) */
void distill_sigmoid(const float *x, float *y, long n);
/* y[i] = x[i] / (1 + e^-x[i]) */
void distill_silu(const float *x, float *y, long n);
/* out[i] = g[i] * s (1 + x (1 - s)), s = sigmoid(x[i]): the SiLU gradient */
void distill_silu_backward(const float *g, const float *x, float *out, long n);
/* y = GELU(x), exact form x (1 + erf(x / sqrt 2)) / 2, erf within 1.5e-7 (kernels.c); out =
 * g * GELU'(x). */
void distill_gelu(const float *x, float *y, long n);
void distill_gelu_backward(const float *g, const float *x, float *out, long n);
/* GEGLU over `rows` rows of 2h values: y[r, i] = x[r, i] * GELU(x[r, h + i]) (rows of h), and
 * out (rows of 2h) its gradient for g (rows of h). */
void distill_geglu(const float *x, float *y, long rows, long h);
void distill_geglu_backward(const float *g, const float *x, float *out, long rows, long h);

/* s[i] = sin x[i], c[i] = cos x[i], within 2 ulp of glibc for |x| < 8192 (timestep
 * embeddings: t * frequency with t below a few thousand). */
void distill_sincos(const float *x, float *s, float *c, long n);

/* Softmax, log-softmax and the softmax gradient (out = y (g - <g, y>)) over each of `rows`
 * contiguous rows of `n`, stabilised by the row maximum. */
void distill_softmax_rows(const float *x, float *y, long rows, long n);
void distill_log_softmax_rows(const float *x, float *y, long rows, long n);
void distill_softmax_backward_rows(const float *g, const float *y, float *out, long rows, long n);

/* One 2-D convolution: input [n, c, h, w], kernel kh x kw, stride (sh, sw), padding (ph, pw),
 * output ho x wo. */
typedef struct {
  long n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo;
} distill_conv_geometry;

/* im2col over the input planes first..<last (plane = sample * c + channel): writes their
 * patches into col, [c*kh*kw, n*ho*wo] row-major, zeros over the padding. col2im is its
 * adjoint: it overwrites those planes of x with the sums of the patch entries read from them. */
void distill_im2col(const float *x, float *col, distill_conv_geometry g, long first, long last);
void distill_col2im(const float *col, float *x, distill_conv_geometry g, long first, long last);
/* Max pooling without padding of planes first..<last of x ([planes, h, w]) into y ([planes, ho, wo]),
 * with each output's index within its plane (the first maximum in row-major order; NaN wins). */
void distill_max_pool2d(const float *x, float *y, int32_t *index, long h, long w, long kernel, long stride, long ho,
                        long wo, long first, long last);

/* The Float factors of one Adam step (see Adam.swift). */
typedef struct {
  float shrink, decay, weight, complement, b2, c2, bc2_sqrt, eps, neg_step_size;
} distill_adam_constants;
/* Updates parameters p, first moments m and second moments v in place from gradients g, as
 * Adam.swift documents: decoupled (AdamW) scales p by shrink first, l2 adds decay * p to the
 * gradient, lerp_low picks torch.lerp's formula for a weight below 0.5. */
void distill_adam_update(float *p, const float *g, float *m, float *v, long n, distill_adam_constants k,
                         int decoupled, int l2, int lerp_low);

/* The bf16 argument of the products and convolutions below: float32 operands, or operands
 * rounded to bfloat16 with float32 accumulation and result (gemm_bf16.c), multiplied either by
 * vdpbf16ps on pairs of bfloat16 (DISTILL_BF16_DOT) or by float32 FMA on the rounded values
 * (DISTILL_BF16_ROUNDED: a product of two bfloat16 values is exact in float32, so the two differ
 * only in the order of the sums). Either only when distill_bf16_supported() returns non-zero. */
enum { DISTILL_FP32 = 0, DISTILL_BF16_DOT = 1, DISTILL_BF16_ROUNDED = 2 };
/* The faster of the two bfloat16 kernels on this CPU, measured once (a few microseconds of
 * vdpbf16ps against float32 FMA): on CPUs that run vdpbf16ps at half the multiply-adds of FMA
 * per cycle, DISTILL_BF16_ROUNDED. */
int distill_bf16_fastest_kernel(void);

/* Single-precision matrix product for CPUs with AVX-512 (see gemm.c), or with bf16 != 0 a
 * mixed-precision one (see above):
 * C = alpha * A B + beta * C for an m x k A and a k x n B, where element (i, j) of A is
 * a[i * a_row_stride + j * a_column_stride] (likewise B), so either operand may be read
 * transposed; C is row-major with row stride ldc and is not read when beta is 0. Runs on up
 * to `threads` threads (distill_parallel_run). Only call it when distill_sgemm_supported()
 * returns non-zero. */
int distill_sgemm_supported(void);
/* Non-zero when the CPU also has AVX512-BF16 (vdpbf16ps). */
int distill_bf16_supported(void);
void distill_sgemm(long threads, long m, long n, long k, float alpha, const float *a, long a_row_stride, long a_column_stride,
                   const float *b, long b_row_stride, long b_column_stride, float beta, float *c, long ldc, int bf16);

/* dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols, in 8 x 8 blocks. */
void distill_transpose(const float *src, long src_stride, float *dst, long dst_stride, long rows, long cols);

/* Convolutions of a batch on the AVX-512 kernel (same condition as distill_sgemm), direct or
 * as implicit products (conv.c): out [n, o, ho, wo] = conv(x [n, c, h, w], weight [o, c, kh, kw]),
 * without bias. With `flipped`, weight is [c, o, kh, kw] and is read as
 * W'[oc, ci, ky, kx] = weight[ci, oc, kh-1-ky, kw-1-kx]: with x an output gradient and g the
 * adjoint geometry, the input gradient of a stride-1 convolution by that weight, without a
 * flipped copy of it. weight_grad [o, c, kh, kw] is the gradient of the weight from the output
 * gradient grad [n, o, ho, wo]. */
void distill_conv2d_forward(long threads, const float *x, const float *weight, int flipped, long o, float *out,
                            distill_conv_geometry g, int bf16);
void distill_conv2d_weight_gradient(long threads, const float *x, const float *grad, long o, float *weight_grad,
                                    distill_conv_geometry g, int bf16);

/* Weights held in bfloat16 (a frozen network's, see Tensor.bfloat16Rounded): halves[i] =
 * x[i] rounded to bfloat16 as vcvtneps2bf16 rounds (to nearest even, a NaN kept a NaN, a
 * subnormal to zero), and x[i] = halves[i] widened (exact). Any CPU. */
void distill_bf16_round(const float *x, uint16_t *halves, long n);
void distill_bf16_widen(const uint16_t *halves, float *x, long n);
/* c = a weight^T + beta c for a row-major m x k `a` and an n x k `weight` held in bfloat16 (a
 * linear layer's), c row-major m x n: the weight widened as it is packed, with bf16 =
 * DISTILL_BF16_DOT or DISTILL_BF16_ROUNDED; only when distill_bf16_supported() and k > 0. */
void distill_sgemm_bf16_weight(long threads, long m, long n, long k, const float *a, const uint16_t *weight, float beta,
                                float *c, int bf16);
/* Whether distill_conv2d_forward runs the convolution of geometry g direct (conv.c) rather
 * than as an implicit product. */
int distill_conv2d_runs_direct(distill_conv_geometry g);
/* distill_conv2d_forward with bf16 = DISTILL_BF16_DOT or DISTILL_BF16_ROUNDED for a weight held
 * in bfloat16: `dot` reads its halves as they are, `rounded` widens them a block of output
 * channels at a time as it packs them; only where distill_conv2d_runs_direct(g) and
 * distill_bf16_supported(). Elsewhere the caller widens the weight (distill_bf16_widen) and
 * calls distill_conv2d_forward. */
void distill_conv2d_forward_bf16_weight(long threads, const float *x, const uint16_t *weight, int flipped, long o,
                                        float *out, distill_conv_geometry g, int bf16);

/* Attention without gradients, never writing its scores (attention.c): for every sample b < n,
 * head h < heads and query i < lq, out[b, i, h*d ..< (h+1)*d] = sum over keys j < lk of
 * softmax_j(scale * q[b, i, h-th d] . k[b, j, h-th d]) v[b, j, h-th d], where row i of sample b
 * of q starts at q + (b * lq + i) * q_stride (k and v likewise with lk rows, out with lq), and
 * head h's channels are d at h * d. Zero where lk is 0. Only when distill_sgemm_supported(). */
void distill_attention_forward(long threads, long n, long heads, long lq, long lk, long d, float scale, const float *q,
                               long q_stride, const float *k, long k_stride, const float *v, long v_stride, float *out,
                               long out_stride);

/* Runs function(context, i) for every i in 0..<chunks on up to `threads` threads (the caller
 * and a pool of workers started on first use, see threads.c) and returns when all are done.
 * Chunks must write disjoint memory. A call made inside a chunk, or while another thread's
 * call is running, runs its chunks inline on the calling thread. */
typedef void (*distill_chunk_function)(void *context, long chunk);
void distill_parallel_run(long threads, long chunks, distill_chunk_function function, void *context);

/* Buffers for tensor storage: 64-byte aligned, from a cache of freed buffers of the same
 * size when one is there (see pool.c). Free with the size they were allocated with.
 * distill_buffer_alloc returns NULL when out of memory. */
void *distill_buffer_alloc(size_t bytes);
void distill_buffer_free(void *buffer, size_t bytes);
/* The most bytes of tensor buffers held at once so far, and the bytes cached now. */
size_t distill_buffer_peak_live(void);
size_t distill_buffer_cached(void);

#endif
