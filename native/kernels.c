/*
 * kernels.c: the tensor maths of the peerless module (see kernels.h).
 *
 * Every result is defined operation by operation in float32 (SGD, sums, means, median,
 * trimmed mean: bit for bit what src/tensor/reference.ts computes with Math.fround; Adam
 * within float rounding of it, as its hyper-parameters are rounded to float), built with
 * -ffp-contract=off so no multiply-add is fused: the same inputs give the same bytes
 * on every peer and in the reference. Loops are written so gcc -O3 vectorises them
 * with plain SSE2.
 */
#include "kernels.h"

#include <emmintrin.h>
#include <math.h>
#include <string.h>

/* Elements per block for blocked loops: 8 KB of float accumulators stays in L1. */
#define PL_BLOCK 2048

/* Exponent 0xff (NaN or Inf) is the only one for which adding 1 to the exponent field
 * carries into the sign bit: branch-free, so it vectorises. */
#define PL_NONFINITE_BITS(w) (((w) & 0x7f800000u) + 0x00800000u)

size_t pl_first_nonfinite(const pl_f32 *x, size_t n) {
    const pl_u32 *w = (const pl_u32 *)x;
    /* Fast pass over four interleaved quarters: more cache misses in flight, ~1.5x the
     * single-stream read bandwidth of one core. */
    size_t q = n / 4;
    uint32_t acc = 0;
    for (size_t i = 0; i < q; i++)
        acc |= PL_NONFINITE_BITS(w[i]) | PL_NONFINITE_BITS(w[i + q]) |
               PL_NONFINITE_BITS(w[i + 2 * q]) | PL_NONFINITE_BITS(w[i + 3 * q]);
    for (size_t i = 4 * q; i < n; i++) acc |= PL_NONFINITE_BITS(w[i]);
    if (!(acc & 0x80000000u)) return n;
    for (size_t i = 0; i < n; i++) /* rare: find the first one */
        if ((w[i] & 0x7f800000u) == 0x7f800000u) return i;
    return n;
}

/* A destination tensor of at least this many bytes does not stay in the caches between
 * rounds (and four servers share them): its copies go around them. */
#define PL_STREAM_MIN_TENSOR ((size_t)16 << 20)
/* Below this many bytes a copy is too short for the alignment work to pay. */
#define PL_STREAM_MIN_COPY ((size_t)64 << 10)

void pl_copy_into(pl_f32 *dst, const pl_f32 *src, size_t n, size_t dst_elements) {
    size_t bytes = n * 4;
    char *d = (char *)dst;
    const char *s = (const char *)src;
    if (dst_elements * 4 < PL_STREAM_MIN_TENSOR || bytes < PL_STREAM_MIN_COPY) {
        memcpy(d, s, bytes);
        return;
    }
    size_t head = (16 - ((uintptr_t)d & 15)) & 15; /* streaming stores need 16-byte alignment */
    memcpy(d, s, head);
    d += head;
    s += head;
    bytes -= head;
    size_t body = bytes & ~(size_t)63;
    for (size_t i = 0; i < body; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
        __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    memcpy(d + body, s + body, bytes - body);
    _mm_sfence(); /* the streamed bytes are visible before the command replies */
}

void pl_add(pl_f32 *dst, const pl_f32 *src, size_t n) {
    size_t h = n / 2; /* two halves at once: more memory parallelism */
    for (size_t i = 0; i < h; i++) {
        dst[i] = dst[i] + src[i];
        dst[i + h] = dst[i + h] + src[i + h];
    }
    if (n & 1) dst[n - 1] = dst[n - 1] + src[n - 1];
}

/* 2^27, 2^47 and 2^-74 as exact doubles (see kernels.h). */
#define PL_FIX_HI_SCALE 134217728.0
#define PL_FIX_LO_SCALE 140737488355328.0
#define PL_FIX_UNIT 0x1p-74

size_t pl_fix_first_too_large(const pl_f32 *x, size_t n) {
    int any = 0;
    for (size_t i = 0; i < n; i++) any |= fabsf(x[i]) >= PL_FIX_LIMIT;
    if (!any) return n;
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) >= PL_FIX_LIMIT) return i;
    return n;
}

void pl_fix_add(pl_i64 *hi, pl_i64 *lo, const pl_f32 *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        /* t has at most 24 significant bits: t - h and the scaling are exact. */
        double t = (double)x[i] * PL_FIX_HI_SCALE;
        int64_t h = (int64_t)t; /* truncates, as trunc(t) would, without its libm call */
        hi[i] += h;
        lo[i] += (int64_t)((t - (double)h) * PL_FIX_LO_SCALE);
    }
}

void pl_fix_set(pl_i64 *hi, pl_i64 *lo, const pl_f32 *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double t = (double)x[i] * PL_FIX_HI_SCALE;
        int64_t h = (int64_t)t; /* truncates, as trunc(t) would, without its libm call */
        hi[i] = h;
        lo[i] = (int64_t)((t - (double)h) * PL_FIX_LO_SCALE);
    }
}

void pl_fix_sub(pl_i64 *hi, pl_i64 *lo, const pl_f32 *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double t = (double)x[i] * PL_FIX_HI_SCALE;
        int64_t h = (int64_t)t; /* truncates, as trunc(t) would, without its libm call */
        hi[i] -= h;
        lo[i] -= (int64_t)((t - (double)h) * PL_FIX_LO_SCALE);
    }
}

void pl_fix_mean(pl_f32 *out, const pl_i64 *hi, const pl_i64 *lo, size_t n, long long count) {
    double c = (double)count;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(((double)hi[i] * PL_FIX_LO_SCALE + (double)lo[i]) * PL_FIX_UNIT / c);
}

void pl_div(pl_f32 *dst, const pl_f32 *src, size_t n, float d) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i] / d;
}

void pl_scale(pl_f32 *x, size_t n, float f) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] * f;
}

/* One SGD loop per combination of the flags, so each is a straight vectorisable loop. */
static inline void sgd_loop(pl_f32 *p, const pl_f32 *g, pl_f32 *v, size_t n, float lr, float mom,
                            float damp, float wd, const int use_wd, const int first,
                            const int nesterov) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (use_wd) gi = gi + wd * p[i];
        float vi = first ? gi : mom * v[i] + damp * gi;
        v[i] = vi;
        float step = nesterov ? gi + mom * vi : vi;
        p[i] = p[i] - lr * step;
    }
}

void pl_sgd(pl_f32 *p, const pl_f32 *g, pl_f32 *v, size_t n, const pl_sgd_opts *o) {
    const float lr = (float)o->lr, mom = (float)o->momentum, wd = (float)o->wd;
    const float damp = (float)(1.0 - o->dampening);
    const int use_wd = wd != 0.0f;
    switch ((use_wd << 2) | (o->first << 1) | (o->nesterov != 0)) {
    case 0: sgd_loop(p, g, v, n, lr, mom, damp, wd, 0, 0, 0); break;
    case 1: sgd_loop(p, g, v, n, lr, mom, damp, wd, 0, 0, 1); break;
    case 2: sgd_loop(p, g, v, n, lr, mom, damp, wd, 0, 1, 0); break;
    case 3: sgd_loop(p, g, v, n, lr, mom, damp, wd, 0, 1, 1); break;
    case 4: sgd_loop(p, g, v, n, lr, mom, damp, wd, 1, 0, 0); break;
    case 5: sgd_loop(p, g, v, n, lr, mom, damp, wd, 1, 0, 1); break;
    case 6: sgd_loop(p, g, v, n, lr, mom, damp, wd, 1, 1, 0); break;
    default: sgd_loop(p, g, v, n, lr, mom, damp, wd, 1, 1, 1); break;
    }
}

/* Adam as PyTorch computes it, in float32 (bias corrections in double):
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *   p -= step_size * m / (sqrt(v)/sqrt(bc2) + eps),  step_size = lr/bc1
 * mode 1 adds wd*p to the gradient (Adam), mode 2 decays p by lr*wd first (AdamW). */
static inline void adam_loop(pl_f32 *p, const pl_f32 *g, pl_f32 *m, pl_f32 *v, size_t n,
                             const pl_adam_opts *o, const int mode) {
    const float b1 = (float)o->beta1, b2 = (float)o->beta2;
    const float omb1 = (float)(1.0 - o->beta1), omb2 = (float)(1.0 - o->beta2);
    const float eps = (float)o->eps, wd = (float)o->wd, lrwd = (float)(o->lr * o->wd);
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2 = 1.0 - pow(o->beta2, (double)o->step);
    const float step_size = (float)(o->lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i], pi = p[i];
        if (mode == 1) gi = gi + wd * pi;
        if (mode == 2) pi = pi - lrwd * pi;
        float mi = b1 * m[i] + omb1 * gi;
        float vi = b2 * v[i] + omb2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / sqrt_bc2 + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

void pl_adam(pl_f32 *p, const pl_f32 *g, pl_f32 *m, pl_f32 *v, size_t n, const pl_adam_opts *o) {
    if (o->wd == 0.0) adam_loop(p, g, m, v, n, o, 0);
    else if (!o->decoupled) adam_loop(p, g, m, v, n, o, 1);
    else adam_loop(p, g, m, v, n, o, 2);
}

/* One pass of the mean over up to PL_MEAN_GROUP inputs: s = (acc[i] +) x[0][i] + ... +
 * x[K-1][i], in double, left to right, then kept in acc or divided by c and rounded once into
 * dst. Inlined with K and the flags constant, each is a straight loop gcc vectorises: every
 * input read once, no accumulator stored and reloaded per input. Dividing by a power of two
 * is multiplying by its exact reciprocal (the same double: a sum of floats divided by at most
 * 2^16 stays far from double's subnormals), and saves the division, the loop's costliest op. */
#define PL_MEAN_GROUP 8
static inline __attribute__((always_inline)) void mean_pass(pl_f32 *dst, double *acc, const pl_f32 *const *in,
                                                            const size_t K, size_t n, const int from_acc,
                                                            const int to_dst, const int pow2, double c) {
    const pl_f32 *x[PL_MEAN_GROUP]; /* local: a store to dst cannot alias these pointers */
    for (size_t j = 0; j < K; j++) x[j] = in[j];
    const double inv = 1.0 / c;
    for (size_t i = 0; i < n; i++) {
        double s = from_acc ? acc[i] + (double)x[0][i] : (double)x[0][i];
        for (size_t j = 1; j < K; j++) s += (double)x[j][i];
        if (to_dst) dst[i] = (float)(pow2 ? s * inv : s / c);
        else acc[i] = s;
    }
}

#define PL_MEAN_K(F, T, P)                                                                      \
    switch (k) {                                                                                \
    case 1: mean_pass(dst, acc, in, 1, n, F, T, P, c); break;                                  \
    case 2: mean_pass(dst, acc, in, 2, n, F, T, P, c); break;                                  \
    case 3: mean_pass(dst, acc, in, 3, n, F, T, P, c); break;                                  \
    case 4: mean_pass(dst, acc, in, 4, n, F, T, P, c); break;                                  \
    case 5: mean_pass(dst, acc, in, 5, n, F, T, P, c); break;                                  \
    case 6: mean_pass(dst, acc, in, 6, n, F, T, P, c); break;                                  \
    case 7: mean_pass(dst, acc, in, 7, n, F, T, P, c); break;                                  \
    default: mean_pass(dst, acc, in, 8, n, F, T, P, c); break;                                 \
    }

/* mean_pass with k (1..PL_MEAN_GROUP) and the flags as constants. */
static void mean_group(pl_f32 *dst, double *acc, const pl_f32 *const *in, size_t k, size_t n,
                       int from_acc, int to_dst, int pow2, double c) {
    if (!to_dst) {
        if (from_acc) PL_MEAN_K(1, 0, 0) else PL_MEAN_K(0, 0, 0)
    } else if (pow2) {
        if (from_acc) PL_MEAN_K(1, 1, 1) else PL_MEAN_K(0, 1, 1)
    } else {
        if (from_acc) PL_MEAN_K(1, 1, 0) else PL_MEAN_K(0, 1, 0)
    }
}

/* The mean in the inputs' (canonical) order, summed in double and rounded once: the inputs are
 * all there, so their order is fixed by name and the bytes do not depend on arrival. Up to
 * PL_MEAN_GROUP inputs in one streaming pass; more in blocks that stay in L1, a group of
 * inputs at a time (the same left-to-right sums). */
void pl_mean(pl_f32 *dst, const pl_f32 *const *in, size_t k, size_t n) {
    const double c = (double)k;
    const int pow2 = (k & (k - 1)) == 0;
    if (k <= PL_MEAN_GROUP) {
        mean_group(dst, NULL, in, k, n, 0, 1, pow2, c);
        return;
    }
    double acc[PL_BLOCK];
    const pl_f32 *at[PL_MEAN_GROUP];
    for (size_t base = 0; base < n; base += PL_BLOCK) {
        size_t len = n - base < PL_BLOCK ? n - base : PL_BLOCK;
        for (size_t j = 0; j < k; j += PL_MEAN_GROUP) {
            size_t m = k - j < PL_MEAN_GROUP ? k - j : PL_MEAN_GROUP;
            for (size_t t = 0; t < m; t++) at[t] = in[j + t] + base;
            mean_group(dst + base, acc, at, m, len, j > 0, j + m == k, pow2, c);
        }
    }
}

/* Sort keys: a finite float's bits mapped so that signed int32 order is the order of
 * JavaScript's Float32Array sort (-0 before +0). The map is its own inverse. */
static inline int32_t sort_key(uint32_t bits) {
    return (int32_t)(bits ^ ((uint32_t)((int32_t)bits >> 31) & 0x7fffffffu));
}
static inline float from_key(int32_t key) {
    uint32_t bits = (uint32_t)sort_key((uint32_t)key);
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

/* Loads PL_SORT_BLOCK coordinates of every input as rows of sort keys and sorts each
 * column: odd-even transposition sort, k rounds of compare-exchange between neighbouring
 * rows, each a branch-free loop over the block that vectorises. */
static void sorted_block(const pl_f32 *const *in, size_t k, size_t base, size_t len,
                         int32_t *rows) {
    for (size_t j = 0; j < k; j++) {
        const pl_u32 *src = (const pl_u32 *)(in[j] + base);
        int32_t *row = rows + j * PL_SORT_BLOCK;
        for (size_t i = 0; i < len; i++) row[i] = sort_key(src[i]);
    }
    for (size_t r = 0; r < k; r++)
        for (size_t j = r & 1; j + 1 < k; j += 2) {
            int32_t *a = rows + j * PL_SORT_BLOCK, *b = a + PL_SORT_BLOCK;
            for (size_t i = 0; i < len; i++) {
                int32_t x = a[i], y = b[i];
                a[i] = x < y ? x : y;
                b[i] = x < y ? y : x;
            }
        }
}

void pl_median(pl_f32 *dst, const pl_f32 *const *in, size_t k, size_t n, int32_t *scratch) {
    const int32_t *lo = scratch + (k - 1) / 2 * PL_SORT_BLOCK, *hi = scratch + k / 2 * PL_SORT_BLOCK;
    for (size_t base = 0; base < n; base += PL_SORT_BLOCK) {
        size_t len = n - base < PL_SORT_BLOCK ? n - base : PL_SORT_BLOCK;
        sorted_block(in, k, base, len, scratch);
        pl_f32 *d = dst + base;
        if (k & 1)
            for (size_t i = 0; i < len; i++) d[i] = from_key(lo[i]);
        else
            for (size_t i = 0; i < len; i++) d[i] = (from_key(lo[i]) + from_key(hi[i])) / 2.0f;
    }
}

void pl_trimmed(pl_f32 *dst, const pl_f32 *const *in, size_t k, size_t n, size_t trim,
                int32_t *scratch) {
    const float kept = (float)(k - 2 * trim);
    float acc[PL_SORT_BLOCK];
    for (size_t base = 0; base < n; base += PL_SORT_BLOCK) {
        size_t len = n - base < PL_SORT_BLOCK ? n - base : PL_SORT_BLOCK;
        sorted_block(in, k, base, len, scratch);
        for (size_t i = 0; i < len; i++) acc[i] = 0.0f;
        for (size_t j = trim; j < k - trim; j++) {
            const int32_t *row = scratch + j * PL_SORT_BLOCK;
            for (size_t i = 0; i < len; i++) acc[i] = acc[i] + from_key(row[i]);
        }
        pl_f32 *d = dst + base;
        for (size_t i = 0; i < len; i++) d[i] = acc[i] / kept;
    }
}

/* Squared Euclidean distance in double, four partial sums. */
static double sqdist(const pl_f32 *x, const pl_f32 *y, size_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        double t0 = (double)x[i] - (double)y[i], t1 = (double)x[i + 1] - (double)y[i + 1];
        double t2 = (double)x[i + 2] - (double)y[i + 2], t3 = (double)x[i + 3] - (double)y[i + 3];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    for (; i < n; i++) {
        double t = (double)x[i] - (double)y[i];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

static void sort_doubles(double *a, size_t n) {
    for (size_t j = 1; j < n; j++) {
        double x = a[j];
        size_t t = j;
        while (t > 0 && a[t - 1] > x) {
            a[t] = a[t - 1];
            t--;
        }
        a[t] = x;
    }
}

void pl_krum_select(const pl_f32 *const *in, size_t k, size_t n, size_t f, size_t m,
                    size_t *chosen, double *work) {
    double *d = work, *score = work + k * k;
    for (size_t a = 0; a < k; a++) {
        d[a * k + a] = 0;
        for (size_t b = a + 1; b < k; b++) d[a * k + b] = d[b * k + a] = sqdist(in[a], in[b], n);
    }
    /* score[a] = sum of the k-f-2 smallest distances from a to the others */
    for (size_t a = 0; a < k; a++) {
        double *row = d + a * k; /* reuse the row as scratch: it is not needed afterwards */
        size_t c = 0;
        for (size_t b = 0; b < k; b++)
            if (b != a) row[c++] = row[b];
        sort_doubles(row, c);
        double s = 0;
        for (size_t j = 0; j < k - f - 2; j++) s += row[j];
        score[a] = s;
    }
    /* the m lowest scores, ties broken by index; then in index (canonical) order */
    for (size_t j = 0; j < m; j++) {
        size_t best = k;
        for (size_t a = 0; a < k; a++) {
            if (score[a] < 0) continue; /* already chosen */
            if (best == k || score[a] < score[best]) best = a;
        }
        chosen[j] = best;
        score[best] = -1;
    }
    for (size_t j = 1; j < m; j++) {
        size_t x = chosen[j], t = j;
        while (t > 0 && chosen[t - 1] > x) {
            chosen[t] = chosen[t - 1];
            t--;
        }
        chosen[t] = x;
    }
}

/* One block of the checksum: PL_CHECKSUM_LANES FNV-1a chains over interleaved words (word i
 * goes to lane i % PL_CHECKSUM_LANES), each started from the basis, then folded into h in lane
 * order, low then high half. One FNV-1a chain over every word waited ~4 cycles per word on
 * its multiply (35 ms for a ResNet-18 vector, at every peer every round); independent lanes
 * keep the multiplier busy. */
static uint64_t checksum_block(uint64_t h, const pl_u32 *w, size_t n) {
    uint64_t lane[PL_CHECKSUM_LANES];
    for (size_t l = 0; l < PL_CHECKSUM_LANES; l++) lane[l] = PL_CHECKSUM_BASIS;
    size_t full = n - n % PL_CHECKSUM_LANES;
    for (size_t i = 0; i < full; i += PL_CHECKSUM_LANES)
        for (size_t l = 0; l < PL_CHECKSUM_LANES; l++) lane[l] = (lane[l] ^ w[i + l]) * PL_FNV_PRIME;
    for (size_t l = 0; full + l < n; l++) lane[l] = (lane[l] ^ w[full + l]) * PL_FNV_PRIME;
    for (size_t l = 0; l < PL_CHECKSUM_LANES; l++) {
        h = (h ^ (lane[l] & 0xffffffffu)) * PL_FNV_PRIME;
        h = (h ^ (lane[l] >> 32)) * PL_FNV_PRIME;
    }
    return h;
}

uint64_t pl_checksum_from(uint64_t h, const pl_u32 *w, size_t n) {
    for (size_t at = 0; at < n; at += PL_CHECKSUM_BLOCK)
        h = checksum_block(h, w + at, n - at < PL_CHECKSUM_BLOCK ? n - at : PL_CHECKSUM_BLOCK);
    return h;
}

uint64_t pl_checksum(const pl_u32 *w, size_t n) {
    return pl_checksum_from(PL_CHECKSUM_BASIS, w, n);
}
