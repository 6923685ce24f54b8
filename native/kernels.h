/*
 * kernels.h: the tensor maths of the peerless module, free of any Redis type.
 *
 * Tensors are float32 little-endian arrays living inside Redis strings. A string's
 * payload is not 4-byte aligned, so every pointer here is to `pl_f32`, a float type
 * with alignment 1: gcc then emits unaligned vector loads/stores (movups) instead of
 * assuming alignment, and the loops still vectorise at -O3.
 */
#ifndef PEERLESS_KERNELS_H
#define PEERLESS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef float pl_f32 __attribute__((aligned(1), may_alias));
typedef uint32_t pl_u32 __attribute__((aligned(1), may_alias));
typedef int64_t pl_i64 __attribute__((aligned(1), may_alias));

/* Index of the first NaN or +-Inf among n floats, or n when all are finite. */
size_t pl_first_nonfinite(const pl_f32 *x, size_t n);

/* dst[i] = src[i] into a tensor of `dst_elements`. Into one far larger than the caches (a
 * vector filled chunk by chunk), with non-temporal stores: ordinary ones read every
 * destination line before writing it (read for ownership) and evict the server's working
 * set. 1 MiB chunks into a 42.6 MB tensor copy in about two thirds of memcpy's time here.
 * dst and src must not overlap. */
void pl_copy_into(pl_f32 *dst, const pl_f32 *src, size_t n, size_t dst_elements);

/* dst[i] += src[i] */
void pl_add(pl_f32 *dst, const pl_f32 *src, size_t n);
/* dst[i] = src[i] / d (dst may be src) */
void pl_div(pl_f32 *dst, const pl_f32 *src, size_t n, float d);
/* x[i] *= f */
void pl_scale(pl_f32 *x, size_t n, float f);

/*
 * Exact, order-free sums. A gradient's element x (|x| < 2^20) is split without rounding into
 * two integers, x = (hi * 2^47 + lo) * 2^-74 (truncated below 2^-74), |hi|, |lo| < 2^47, and
 * each is added into its own int64 plane. Integer addition is associative, so the sum does not
 * depend on the order or grouping of arrivals; 2^16 contributions cannot overflow a plane.
 * The mean is rounded once from the exact sum: (hi * 2^47 + lo) * 2^-74 / count in double,
 * then to float32. src/tensor/exact-sum.ts computes the same bytes in JavaScript.
 */
#define PL_FIX_LIMIT 1048576.0f /* 2^20: larger magnitudes cannot be summed exactly */
#define PL_FIX_MAX_COUNT 65536  /* contributions per sum that can never overflow */

/* Index of the first element with |x| >= PL_FIX_LIMIT, or n. */
size_t pl_fix_first_too_large(const pl_f32 *x, size_t n);
/* hi[i], lo[i] += the split of x[i] */
void pl_fix_add(pl_i64 *hi, pl_i64 *lo, const pl_f32 *x, size_t n);
/* hi[i], lo[i] = the split of x[i]: the first add into a block not yet zeroed */
void pl_fix_set(pl_i64 *hi, pl_i64 *lo, const pl_f32 *x, size_t n);
/* hi[i], lo[i] -= the split of x[i]: withdraws exactly what pl_fix_add added */
void pl_fix_sub(pl_i64 *hi, pl_i64 *lo, const pl_f32 *x, size_t n);
/* out[i] = the exact sum hi[i], lo[i] divided by count, rounded once (see above) */
void pl_fix_mean(pl_f32 *out, const pl_i64 *hi, const pl_i64 *lo, size_t n, long long count);

typedef struct {
    float lr, momentum, dampening, wd;
    int nesterov;
    int first; /* the velocity did not exist: v = g' */
} pl_sgd_opts;

/* PyTorch SGD in place, every operation rounded to float32 (see src/tensor/reference.ts). */
void pl_sgd(pl_f32 *p, const pl_f32 *g, pl_f32 *v, size_t n, const pl_sgd_opts *o);

typedef struct {
    double lr, beta1, beta2, eps, wd;
    int decoupled;
    long long step; /* the new step count, >= 1 */
} pl_adam_opts;

/* Adam / AdamW with bias correction, in place, float32 (bias corrections in double). */
void pl_adam(pl_f32 *p, const pl_f32 *g, pl_f32 *m, pl_f32 *v, size_t n, const pl_adam_opts *o);

/* Coordinate-wise aggregation of k equally long inputs (already in canonical order) into
 * dst. dst may be one of the inputs: each block of dst is written only after every input's
 * block was read. MEDIAN/TRIMMED sort each coordinate's k values (in the order of
 * JavaScript's Float32Array sort) in blocks: `scratch` must hold k * PL_SORT_BLOCK int32. */
#define PL_SORT_BLOCK 512
/* MEAN sums the inputs in the order given (canonical: by name) in double, then divides and
 * rounds once to float32: every peer that aggregates the same inputs gets the same bytes. */
void pl_mean(pl_f32 *dst, const pl_f32 *const *in, size_t k, size_t n);
void pl_median(pl_f32 *dst, const pl_f32 *const *in, size_t k, size_t n, int32_t *scratch);
void pl_trimmed(pl_f32 *dst, const pl_f32 *const *in, size_t k, size_t n, size_t trim,
                int32_t *scratch);

/* Multi-Krum: chooses the `m` inputs with the lowest scores (sum of squared distances to
 * their k-f-2 nearest others; ties by index) and writes their indices, ascending, to
 * `chosen`. `work` must hold k*k + k doubles. */
void pl_krum_select(const pl_f32 *const *in, size_t k, size_t n, size_t f, size_t m,
                    size_t *chosen, double *work);

/* The tensor's 64-bit checksum: its 32-bit little-endian words in blocks of
 * PL_CHECKSUM_BLOCK, each hashed as PL_CHECKSUM_LANES interleaved FNV-1a chains folded into
 * one running FNV-1a state (src/tensor/reference.ts computes the same). */
#define PL_CHECKSUM_BASIS 0xcbf29ce484222325ull
#define PL_FNV_PRIME 0x100000001b3ull
#define PL_CHECKSUM_BLOCK 4096
#define PL_CHECKSUM_LANES 8
uint64_t pl_checksum(const pl_u32 *w, size_t n);
/* Continued from state h over n more words: pieces cut at multiples of PL_CHECKSUM_BLOCK from
 * the start chain to the whole's checksum. */
uint64_t pl_checksum_from(uint64_t h, const pl_u32 *w, size_t n);

#endif
