/*
 * peerless.c: the peerless Redis module. Tensor maths inside Redis for peer-to-peer
 * training: accumulate gradients once per contribution, average, aggregate across peers
 * in a canonical order, and take optimizer steps, all in place on plain Redis strings.
 *
 * The command contract is native/COMMANDS.md. Every command follows the same shape:
 *   1. check the arity and parse every number (nothing is touched yet);
 *   2. open the keys and check their types and lengths, scan incoming tensors for
 *      NaN/Inf (still nothing is changed);
 *   3. mutate in place through StringDMA, replicate verbatim, reply.
 * Every path replies exactly once; errors are one line starting "ERR peerless: ".
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "kernels.h"
#include "redismodule_min.h"

#define PL_API_POINTER(ret, name, params) ret(*RedisModule_##name) params = NULL;
PL_REDIS_API(PL_API_POINTER)
PL_REDIS_API_7(PL_API_POINTER)
#undef PL_API_POINTER

/* Contributions per accumulation: as many as an exact sum holds without overflow (kernels.h). */
#define PL_MAX_EXPECTED ((long long)PL_FIX_MAX_COUNT)
/* Inputs of one PL.AGGREGATE. */
#define PL_MAX_INPUTS 1024
/* Adam step counts stay exact in a double. */
#define PL_MAX_STEP (1LL << 53)
#define PL_FLT_MAX 3.4028234663852886e38

static const char *AVERAGED_CHANNEL = "peerless:averaged";

/* ------------------------------------------------------------------------------------------
 * Replies and messages
 * ---------------------------------------------------------------------------------------- */

/* Replies "ERR peerless: <message>" and returns REDISMODULE_OK, so `return fail(...)`. */
int fail(RedisModuleCtx *ctx, const char *fmt, ...) {
    char msg[512];
    int head = snprintf(msg, sizeof msg, "ERR peerless: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + head, sizeof msg - (size_t)head, fmt, ap);
    va_end(ap);
    for (char *c = msg; *c; c++)
        if (*c == '\r' || *c == '\n') *c = ' '; /* one line, always */
    RedisModule_ReplyWithError(ctx, msg);
    return REDISMODULE_OK;
}

/* A printable, bounded rendering of a key name or argument for error messages. */
shown show(const RedisModuleString *str) {
    shown out;
    size_t len, j = 0;
    const char *p = RedisModule_StringPtrLen(str, &len);
    for (size_t i = 0; i < len && j < 60; i++) {
        unsigned char c = (unsigned char)p[i];
        out.s[j++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
    }
    if (len > 60) memcpy(out.s + j, "...", 4);
    else out.s[j] = '\0';
    return out;
}

static const char *type_name(int type) {
    switch (type) {
    case REDISMODULE_KEYTYPE_LIST: return "a list";
    case REDISMODULE_KEYTYPE_HASH: return "a hash";
    case REDISMODULE_KEYTYPE_SET: return "a set";
    case REDISMODULE_KEYTYPE_ZSET: return "a sorted set";
    case REDISMODULE_KEYTYPE_MODULE: return "a module value";
    case REDISMODULE_KEYTYPE_STREAM: return "a stream";
    default: return "a non-string value";
    }
}

/* ------------------------------------------------------------------------------------------
 * Arguments
 * ---------------------------------------------------------------------------------------- */

/* Case-insensitive comparison of an argument with an upper-case ASCII word. */
int is_word(const RedisModuleString *arg, const char *word) {
    size_t len;
    const char *p = RedisModule_StringPtrLen(arg, &len);
    if (len != strlen(word)) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (c != word[i]) return 0;
    }
    return 1;
}

/* An integer in [min, max]; replies the error and returns 0 otherwise. */
int parse_int(RedisModuleCtx *ctx, RedisModuleString *arg, const char *what, long long min,
              long long max, long long *out) {
    long long v;
    if (RedisModule_StringToLongLong(arg, &v) != REDISMODULE_OK) {
        fail(ctx, "%s must be an integer, got \"%s\"", what, show(arg).s);
        return 0;
    }
    if (v < min || v > max) {
        fail(ctx, "%s must be between %lld and %lld, got %lld", what, min, max, v);
        return 0;
    }
    *out = v;
    return 1;
}

/* A finite number in [min, max] (or (min, max] when min_open); else error, returns 0. */
static int parse_real(RedisModuleCtx *ctx, RedisModuleString *arg, const char *what, double min,
                      int min_open, double max, int max_open, double *out) {
    double v;
    if (RedisModule_StringToDouble(arg, &v) != REDISMODULE_OK || !isfinite(v)) {
        fail(ctx, "%s must be a finite number, got \"%s\"", what, show(arg).s);
        return 0;
    }
    if (v < min || (min_open && v == min) || v > max || (max_open && v == max)) {
        fail(ctx, "%s must be in %s%g, %g%s, got %g", what, min_open ? "(" : "[", min, max,
             max_open ? ")" : "]", v);
        return 0;
    }
    *out = v;
    return 1;
}

/* An incoming tensor: a non-empty blob, a multiple of 4 bytes, only finite values. */
static int parse_blob(RedisModuleCtx *ctx, RedisModuleString *arg, const char *what,
                      const pl_f32 **data, size_t *n) {
    size_t bytes;
    const char *p = RedisModule_StringPtrLen(arg, &bytes);
    if (bytes == 0 || bytes % 4 != 0) {
        fail(ctx, "%s has %zu bytes, not a non-empty multiple of 4 (float32)", what, bytes);
        return 0;
    }
    if (bytes / 4 > (size_t)PL_MAX_ELEMENTS) {
        fail(ctx, "%s has %zu elements, more than %lld", what, bytes / 4, PL_MAX_ELEMENTS);
        return 0;
    }
    size_t bad = pl_first_nonfinite((const pl_f32 *)p, bytes / 4);
    if (bad < bytes / 4) {
        float x = ((const pl_f32 *)p)[bad];
        fail(ctx, "%s has a non-finite value (%s) at element %zu", what,
             isnan(x) ? "NaN" : (x > 0 ? "Inf" : "-Inf"), bad);
        return 0;
    }
    *data = (const pl_f32 *)p;
    *n = bytes / 4;
    return 1;
}

/* Byte-wise comparison of two names: memcmp on the common prefix, then the length. */
static int name_cmp(const RedisModuleString *a, const RedisModuleString *b) {
    size_t la, lb;
    const char *pa = RedisModule_StringPtrLen(a, &la), *pb = RedisModule_StringPtrLen(b, &lb);
    int c = memcmp(pa, pb, la < lb ? la : lb);
    if (c != 0) return c;
    return la < lb ? -1 : (la > lb ? 1 : 0);
}

/* Replies an error unless the `count` key names are pairwise distinct. */
static int distinct_keys(RedisModuleCtx *ctx, RedisModuleString **keys, int count) {
    for (int i = 0; i < count; i++)
        for (int j = i + 1; j < count; j++)
            if (name_cmp(keys[i], keys[j]) == 0) {
                fail(ctx, "key \"%s\" is given twice; the keys must be distinct", show(keys[i]).s);
                return 0;
            }
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Keys holding tensors
 * ---------------------------------------------------------------------------------------- */

void close_key(RedisModuleKey **key) {
    if (*key) RedisModule_CloseKey(*key);
    *key = NULL;
}

/* Opens `name` and checks it holds a tensor (a string, non-empty, a multiple of 4 bytes);
 * a missing key is allowed only when `may_be_missing`. Replies the error and returns 0
 * (with the key closed) otherwise. */
int open_tensor(RedisModuleCtx *ctx, RedisModuleString *name, int mode, const char *role,
                int may_be_missing, tensor_key *t) {
    t->key = RedisModule_OpenKey(ctx, name, mode);
    t->n = 0;
    int type = RedisModule_KeyType(t->key);
    if (type == REDISMODULE_KEYTYPE_EMPTY) {
        if (may_be_missing) return 1;
        close_key(&t->key);
        fail(ctx, "%s \"%s\" does not exist", role, show(name).s);
        return 0;
    }
    if (type != REDISMODULE_KEYTYPE_STRING) {
        close_key(&t->key);
        fail(ctx, "wrong type: %s \"%s\" holds %s, not a float32 tensor", role, show(name).s,
             type_name(type));
        return 0;
    }
    size_t bytes = RedisModule_ValueLength(t->key);
    if (bytes == 0 || bytes % 4 != 0) {
        close_key(&t->key);
        fail(ctx, "%s \"%s\" holds %zu bytes, not a float32 tensor", role, show(name).s, bytes);
        return 0;
    }
    t->n = bytes / 4;
    return 1;
}

/* Opens a key that will be overwritten: it must be missing or a string. */
static int open_target(RedisModuleCtx *ctx, RedisModuleString *name, const char *role,
                       RedisModuleKey **key) {
    *key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    int type = RedisModule_KeyType(*key);
    if (type == REDISMODULE_KEYTYPE_EMPTY || type == REDISMODULE_KEYTYPE_STRING) return 1;
    close_key(key);
    fail(ctx, "wrong type: %s \"%s\" holds %s, not a float32 tensor", role, show(name).s,
         type_name(type));
    return 0;
}

/* The payload of a string key for reading or writing (after any resize). */
static pl_f32 *dma(RedisModuleKey *key, int mode) {
    size_t len;
    return (pl_f32 *)RedisModule_StringDMA(key, &len, mode);
}

/* Makes `key` (missing or a string, opened for writing) an n-element tensor and returns its
 * payload. With `zero`, every element is 0, otherwise the old content is kept where the
 * lengths overlap. An existing string is resized in place, not replaced: rewriting memory
 * that is already mapped is much cheaper than faulting in 45 fresh megabytes. Returns NULL
 * only if Redis refuses the size, which the callers' limits rule out. */
static pl_f32 *resize(RedisModuleKey *key, size_t n, int zero) {
    if (RedisModule_StringTruncate(key, n * 4) != REDISMODULE_OK) return NULL;
    pl_f32 *p = dma(key, REDISMODULE_WRITE);
    if (p && zero) memset((void *)p, 0, n * 4);
    return p;
}

/* ------------------------------------------------------------------------------------------
 * PL.SET key blob
 *
 * Stores a tensor. The blob is the argument's own string object, shared with the key
 * rather than copied (Redis's SET does the same); a later in-place write unshares it.
 * ---------------------------------------------------------------------------------------- */
static int cmd_set(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    const pl_f32 *data;
    size_t n;
    if (!parse_blob(ctx, argv[2], "tensor", &data, &n)) return REDISMODULE_OK;
    RedisModuleKey *key;
    if (!open_target(ctx, argv[1], "key", &key)) return REDISMODULE_OK;
    RedisModule_StringSet(key, argv[2]);
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ------------------------------------------------------------------------------------------
 * PL.SETRANGE key offset blob
 *
 * Writes a slice into an existing tensor at element `offset`: the all-gather of a sharded
 * exchange puts each owner's averaged shard in place. The slice must fit.
 * ---------------------------------------------------------------------------------------- */
static int cmd_setrange(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 4) return RedisModule_WrongArity(ctx);
    long long offset;
    const pl_f32 *data;
    size_t n;
    if (!parse_int(ctx, argv[2], "offset", 0, PL_MAX_ELEMENTS, &offset)) return REDISMODULE_OK;
    if (!parse_blob(ctx, argv[3], "slice", &data, &n)) return REDISMODULE_OK;
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, "tensor", 0, &t))
        return REDISMODULE_OK;
    if ((size_t)offset + n > t.n) {
        close_key(&t.key);
        return fail(ctx, "slice [%lld, %lld) does not fit tensor \"%s\" of %zu elements", offset,
                    offset + (long long)n, show(argv[1]).s, t.n);
    }
    pl_f32 *p = dma(t.key, REDISMODULE_WRITE);
    pl_copy_into(p + offset, data, n, t.n);
    close_key(&t.key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ------------------------------------------------------------------------------------------
 * PL.COPYRANGE dst doffset src soffset count
 *
 * Copies `count` elements of tensor `src` from element `soffset` into the existing tensor
 * `dst` at element `doffset`, inside the database: a peer's own slice, the batch-norm
 * statistics into the parameters, a local fallback. The bytes never leave Redis. `dst` and
 * `src` may be the same key (memmove).
 * ---------------------------------------------------------------------------------------- */
static int cmd_copyrange(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 6) return RedisModule_WrongArity(ctx);
    long long doff, soff, count;
    if (!parse_int(ctx, argv[2], "doffset", 0, PL_MAX_ELEMENTS, &doff)) return REDISMODULE_OK;
    if (!parse_int(ctx, argv[4], "soffset", 0, PL_MAX_ELEMENTS, &soff)) return REDISMODULE_OK;
    if (!parse_int(ctx, argv[5], "count", 0, PL_MAX_ELEMENTS, &count)) return REDISMODULE_OK;
    int same = name_cmp(argv[1], argv[3]) == 0;
    tensor_key src = {NULL, 0}, dst = {NULL, 0};
    if (!open_tensor(ctx, argv[3], REDISMODULE_READ | (same ? REDISMODULE_WRITE : 0), "source", 0, &src))
        return REDISMODULE_OK;
    if ((size_t)(soff + count) > src.n) {
        close_key(&src.key);
        return fail(ctx, "range [%lld, %lld) does not fit source \"%s\" of %zu elements", soff, soff + count,
                    show(argv[3]).s, src.n);
    }
    if (same) {
        dst = src;
    } else if (!open_tensor(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, "destination", 0, &dst)) {
        close_key(&src.key);
        return REDISMODULE_OK;
    }
    if ((size_t)(doff + count) > dst.n) {
        if (!same) close_key(&dst.key);
        close_key(&src.key);
        return fail(ctx, "range [%lld, %lld) does not fit destination \"%s\" of %zu elements", doff,
                    doff + count, show(argv[1]).s, dst.n);
    }
    const pl_f32 *sp0 = dma(src.key, REDISMODULE_READ);
    size_t bad = pl_first_nonfinite(sp0 + soff, (size_t)count);
    if (bad < (size_t)count) {
        if (!same) close_key(&dst.key);
        close_key(&src.key);
        return fail(ctx, "source \"%s\" has a non-finite value at element %lld", show(argv[3]).s,
                    soff + (long long)bad);
    }
    pl_f32 *d = dma(dst.key, REDISMODULE_WRITE);
    const pl_f32 *sp = same ? d : dma(src.key, REDISMODULE_READ);
    if (same && doff < soff + count && soff < doff + count)
        memmove((void *)(d + doff), (const void *)(sp + soff), (size_t)count * 4);
    else
        pl_copy_into(d + doff, sp + soff, (size_t)count, dst.n);
    if (!same) close_key(&dst.key);
    close_key(&src.key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ------------------------------------------------------------------------------------------
 * PL.ZEROS key n
 *
 * Stores a tensor of n zeros (a fresh sum, a velocity, a shard buffer).
 * ---------------------------------------------------------------------------------------- */
static int cmd_zeros(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    long long n;
    if (!parse_int(ctx, argv[2], "n", 1, PL_MAX_ELEMENTS, &n)) return REDISMODULE_OK;
    RedisModuleKey *key;
    if (!open_target(ctx, argv[1], "key", &key)) return REDISMODULE_OK;
    pl_f32 *p = resize(key, (size_t)n, 1);
    RedisModule_CloseKey(key);
    if (!p) return fail(ctx, "cannot allocate %lld elements", n);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ------------------------------------------------------------------------------------------
 * PL.LEN key
 *
 * Number of elements of a tensor: how a reader sizes its buffer before ranged reads.
 * ---------------------------------------------------------------------------------------- */
static int cmd_len(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ, "tensor", 0, &t)) return REDISMODULE_OK;
    close_key(&t.key);
    return RedisModule_ReplyWithLongLong(ctx, (long long)t.n);
}

/* ------------------------------------------------------------------------------------------
 * PL.GETRANGE key offset count
 *
 * `count` elements from element `offset`, as raw bytes. Large tensors are read in ~4 MB
 * ranges so that no single reply stalls the server for long.
 * ---------------------------------------------------------------------------------------- */
static int cmd_getrange(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 4) return RedisModule_WrongArity(ctx);
    long long offset, count;
    if (!parse_int(ctx, argv[2], "offset", 0, PL_MAX_ELEMENTS, &offset)) return REDISMODULE_OK;
    if (!parse_int(ctx, argv[3], "count", 0, PL_MAX_ELEMENTS, &count)) return REDISMODULE_OK;
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ, "tensor", 0, &t)) return REDISMODULE_OK;
    if ((size_t)(offset + count) > t.n) {
        close_key(&t.key);
        return fail(ctx, "range [%lld, %lld) is outside tensor \"%s\" of %zu elements", offset,
                    offset + count, show(argv[1]).s, t.n);
    }
    const pl_f32 *p = dma(t.key, REDISMODULE_READ);
    RedisModule_ReplyWithStringBuffer(ctx, (const char *)(p + offset), (size_t)count * 4);
    close_key(&t.key);
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------------------------------------
 * PL.ACCUM sum avg id expected blob [OFFSET o TOTAL n]
 *
 * Adds a gradient into the running sum, at most once per contribution id, so a retried
 * serverless function can never count twice. The sum is exact and order-free (kernels.h):
 * two int64 planes of `total` elements each (16 bytes an element), so the average's bytes do
 * not depend on the order in which gradients arrive, nor on retries. A value the exact sum
 * cannot hold (|x| >= 2^20) is refused like NaN. The ids live in the hash "<sum>:ids"; its
 * field "" (ids must be non-empty) holds `expected`, so the count is the hash length - 1.
 * The first contribution (no ids hash yet) starts a fresh sum; the one that brings the
 * count to `expected` writes avg = sum / expected (rounded once) and publishes the name of `avg` on
 * peerless:averaged, which the round's state machine waits for.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    const pl_f32 *data;
    size_t n;                 /* elements in the blob */
    long long expected;       /* contributions to wait for */
    long long offset, total;  /* the blob is [offset, offset+n) of a `total`-element sum */
    long long round;          /* ROUND r, or -1 */
} accum_args;

static int parse_accum(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, accum_args *a) {
    if (!parse_int(ctx, argv[4], "expected", 1, PL_MAX_EXPECTED, &a->expected)) return 0;
    size_t idlen;
    RedisModule_StringPtrLen(argv[3], &idlen);
    if (idlen == 0) return fail(ctx, "contribution id must not be empty"), 0;
    if (!distinct_keys(ctx, argv + 1, 2)) return 0;
    a->offset = -1;
    a->total = -1;
    a->round = -1;
    for (int i = 6; i < argc; i += 2) {
        if (is_word(argv[i], "OFFSET") && a->offset < 0) {
            if (!parse_int(ctx, argv[i + 1], "OFFSET", 0, PL_MAX_ELEMENTS - 1, &a->offset)) return 0;
        } else if (is_word(argv[i], "TOTAL") && a->total < 0) {
            if (!parse_int(ctx, argv[i + 1], "TOTAL", 1, PL_MAX_ELEMENTS, &a->total)) return 0;
        } else if (is_word(argv[i], "ROUND") && a->round < 0) {
            if (!parse_int(ctx, argv[i + 1], "ROUND", 0, PL_MAX_STEP, &a->round)) return 0;
        } else {
            return fail(ctx, "unexpected argument \"%s\" (expected OFFSET o TOTAL n, ROUND r)",
                        show(argv[i]).s), 0;
        }
    }
    if ((a->offset < 0) != (a->total < 0)) return fail(ctx, "OFFSET and TOTAL go together"), 0;
    if (!parse_blob(ctx, argv[5], "gradient", &a->data, &a->n)) return 0;
    size_t big = pl_fix_first_too_large(a->data, a->n);
    if (big < a->n)
        return fail(ctx, "gradient has a value too large to sum exactly (%g at element %zu; the limit "
                    "is %g in magnitude)", (double)a->data[big], big, (double)PL_FIX_LIMIT), 0;
    if (a->offset < 0) {
        a->offset = 0;
        a->total = (long long)a->n;
    } else if (a->offset + (long long)a->n > a->total) {
        return fail(ctx, "gradient slice [%lld, %lld) does not fit TOTAL %lld", a->offset,
                    a->offset + (long long)a->n, a->total), 0;
    }
    /* The exact sum takes 16 bytes an element, within Redis's 512 MiB string. */
    if (a->total > PL_MAX_ELEMENTS / 4)
        return fail(ctx, "a sum of %lld elements is more than an exact sum holds (%lld)", a->total,
                    PL_MAX_ELEMENTS / 4), 0;
    return 1;
}

/* Reads the accumulation state from the ids hash: expected (0 when fresh) and count. An
 * accumulation closed early by PL.CLOSE keeps "-count" in its "" field: then `closed` is 1 and
 * `expected` is the count it was closed at. */
static int read_accum_state(RedisModuleCtx *ctx, RedisModuleKey *ids, RedisModuleString *ids_name,
                            long long *expected, long long *count, int *closed) {
    *expected = 0;
    *count = 0;
    *closed = 0;
    if (RedisModule_KeyType(ids) == REDISMODULE_KEYTYPE_EMPTY) return 1;
    RedisModuleString *meta = RedisModule_CreateString(ctx, "", 0), *val = NULL;
    RedisModule_HashGet(ids, REDISMODULE_HASH_NONE, meta, &val, NULL);
    RedisModule_FreeString(ctx, meta);
    long long e = 0;
    int ok = val && RedisModule_StringToLongLong(val, &e) == REDISMODULE_OK && e != 0 &&
             e >= -PL_MAX_EXPECTED && e <= PL_MAX_EXPECTED;
    if (val) RedisModule_FreeString(ctx, val);
    if (!ok) {
        fail(ctx, "\"%s\" is not an accumulation's id set (no expected count)", show(ids_name).s);
        return 0;
    }
    *closed = e < 0;
    *expected = e < 0 ? -e : e;
    *count = (long long)RedisModule_ValueLength(ids) - 1;
    return 1;
}

static int reply_accum(RedisModuleCtx *ctx, long long count, long long expected) {
    RedisModule_ReplyWithArray(ctx, 3);
    RedisModule_ReplyWithLongLong(ctx, count);
    RedisModule_ReplyWithLongLong(ctx, expected);
    return RedisModule_ReplyWithLongLong(ctx, count >= expected ? 1 : 0);
}

/* Records the contribution id (and, on the first one, `expected`) in the ids hash. Its value
 * is the attempt's RESULT when it sent one (PL.PUSH), else "1". */
static void record_id(RedisModuleCtx *ctx, RedisModuleKey *ids, RedisModuleString *id,
                      long long expected, int fresh, RedisModuleString *result) {
    RedisModuleString *one = result ? RedisModule_CreateStringFromString(ctx, result) : RedisModule_CreateString(ctx, "1", 1);
    if (fresh) {
        RedisModuleString *meta = RedisModule_CreateString(ctx, "", 0);
        RedisModuleString *exp = RedisModule_CreateStringFromLongLong(ctx, expected);
        RedisModule_HashSet(ids, REDISMODULE_HASH_NONE, meta, exp, id, one, NULL);
        RedisModule_FreeString(ctx, meta);
        RedisModule_FreeString(ctx, exp);
    } else {
        RedisModule_HashSet(ids, REDISMODULE_HASH_NONE, id, one, NULL);
    }
    RedisModule_FreeString(ctx, one);
}

/* The two planes of an exact sum of `total` elements held in `key` (16 bytes an element). */
static void sum_planes(RedisModuleKey *key, size_t total, pl_i64 **hi, pl_i64 **lo) {
    size_t len;
    pl_i64 *p = (pl_i64 *)RedisModule_StringDMA(key, &len, REDISMODULE_WRITE);
    *hi = p;
    *lo = p + total;
}

/* Opens a running exact sum: a string of 16 bytes per element. Returns its element count
 * through `total`, or replies the error and returns 0. */
static int open_sum(RedisModuleCtx *ctx, RedisModuleString *name, tensor_key *st, size_t *total) {
    if (!open_tensor(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE, "sum", 0, st)) return 0;
    if (st->n % 4 != 0) {
        fail(ctx, "sum \"%s\" holds %zu bytes, not an exact sum (16 bytes an element)", show(name).s,
             st->n * 4);
        close_key(&st->key);
        return 0;
    }
    *total = st->n / 4;
    return 1;
}

/* "<sum>:ids", built byte by byte: key names may hold any bytes. */
static RedisModuleString *suffixed(RedisModuleCtx *ctx, RedisModuleString *key, const char *suffix) {
    size_t len, slen = strlen(suffix);
    const char *name = RedisModule_StringPtrLen(key, &len);
    char stackbuf[256];
    char *buf = len + slen <= sizeof stackbuf ? stackbuf : RedisModule_Alloc(len + slen);
    memcpy(buf, name, len);
    memcpy(buf + len, suffix, slen);
    RedisModuleString *out = RedisModule_CreateString(ctx, buf, len + slen);
    if (buf != stackbuf) RedisModule_Free(buf);
    return out;
}

static RedisModuleString *ids_key_name(RedisModuleCtx *ctx, RedisModuleString *sum) {
    return suffixed(ctx, sum, ":ids");
}

/* Whether `name` is one of the keys an accumulation keeps beside its sum: "<sum>:ids",
 * ":round", ":blocks", ":gone", ":slot:N" and ":slot:N:got". */
static int sum_helper_name(RedisModuleString *sum, RedisModuleString *name) {
    size_t sl, nl;
    const char *s = RedisModule_StringPtrLen(sum, &sl), *n = RedisModule_StringPtrLen(name, &nl);
    if (nl <= sl + 1 || memcmp(n, s, sl) != 0 || n[sl] != ':') return 0;
    const char *t = n + sl + 1;
    size_t tl = nl - sl - 1;
    static const char *const fixed[] = {"ids", "round", "blocks", "gone"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (tl == strlen(fixed[i]) && memcmp(t, fixed[i], tl) == 0) return 1;
    if (tl < 6 || memcmp(t, "slot:", 5) != 0) return 0;
    size_t i = 5;
    while (i < tl && t[i] >= '0' && t[i] <= '9') i++;
    return i > 5 && (i == tl || (tl - i == 4 && memcmp(t + i, ":got", 4) == 0));
}

/* Whether `user` may read and write "<key><suffix>", a key `key` (a sum or avg) keeps beside
 * it; replies the error when not. */
static int grants(RedisModuleCtx *ctx, RedisModuleUser *user, RedisModuleString *key, const char *role,
                  const char *suffix) {
    RedisModuleString *name = suffixed(ctx, key, suffix);
    int ok = RedisModule_ACLCheckKeyPermissions(user, name, REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE) ==
             REDISMODULE_OK;
    if (!ok)
        fail(ctx, "no permission: this user's ACL does not grant key \"%s\", which %s \"%s\" keeps beside it",
             show(name).s, role, show(key).s);
    RedisModule_FreeString(ctx, name);
    return ok;
}

/*
 * The names of an accumulation (PL.ACCUM, PL.PUSH, PL.CLOSE), checked before anything is
 * opened. The keys kept beside a sum are its own: an avg named like one of them was written
 * through one handle while the accumulation deleted or rewrote it through another (a freed
 * value written, and the server crashed), so such an avg is refused, and so is a sum named
 * like the avg's round marker. And the caller's ACL must reach those keys (read and write):
 * the module opens them by name, so a user without them could otherwise write there through it.
 * "<sum>:slot:0" stands for every slot: patterns grant a sum's keys as a whole.
 */
static int accumulation_names_ok(RedisModuleCtx *ctx, RedisModuleString *sum, RedisModuleString *avg) {
    if (sum_helper_name(sum, avg))
        return fail(ctx, "avg \"%s\" is one of the keys sum \"%s\" keeps beside it: refused", show(avg).s,
                    show(sum).s), 0;
    RedisModuleString *avg_round = suffixed(ctx, avg, ":round");
    int clash = name_cmp(avg_round, sum) == 0;
    RedisModule_FreeString(ctx, avg_round);
    if (clash)
        return fail(ctx, "sum \"%s\" is the round marker of avg \"%s\": refused", show(sum).s, show(avg).s), 0;
    if (!RedisModule_GetClientId || !RedisModule_GetClientUserNameById || !RedisModule_GetModuleUserFromUserName ||
        !RedisModule_ACLCheckKeyPermissions || !RedisModule_FreeModuleUser)
        return 1; /* before Redis 7.0.3: no per-key ACL check for modules */
    /* By client id, not GetCurrentUserName: that one reads the user of clients that have none
     * (a master's stream on a replica, the AOF) and crashed the replica. No user: a superuser. */
    RedisModuleString *uname = RedisModule_GetClientUserNameById(ctx, RedisModule_GetClientId(ctx));
    if (!uname) return 1;
    RedisModuleUser *user = RedisModule_GetModuleUserFromUserName(uname);
    RedisModule_FreeString(ctx, uname);
    if (!user) return fail(ctx, "the calling user is unknown: refused"), 0;
    static const char *const mine[] = {":ids", ":round", ":blocks", ":gone", ":slot:0", ":slot:0:got"};
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof mine / sizeof mine[0]; i++) ok = grants(ctx, user, sum, "sum", mine[i]);
    if (ok) ok = grants(ctx, user, avg, "avg", ":round");
    RedisModule_FreeModuleUser(user);
    return ok;
}

/* Opens `name` to start a fresh exact sum in it: missing, or a running sum of an earlier
 * accumulation, which always has its block map "<name>:blocks" beside it. Any other string
 * (a parameter tensor, say) is refused, so a wrong key name never overwrites a tensor. */
static int open_fresh_sum(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleKey **key) {
    if (!open_target(ctx, name, "sum", key)) return 0;
    if (RedisModule_KeyType(*key) == REDISMODULE_KEYTYPE_EMPTY) return 1;
    RedisModuleString *map = suffixed(ctx, name, ":blocks");
    RedisModuleKey *m = RedisModule_OpenKey(ctx, map, REDISMODULE_READ);
    int is_sum = RedisModule_KeyType(m) == REDISMODULE_KEYTYPE_STRING;
    RedisModule_CloseKey(m);
    if (!is_sum) {
        close_key(key);
        fail(ctx, "\"%s\" holds a tensor that is not a running sum (no \"%s\" beside it): refused, its bytes kept",
             show(name).s, show(map).s);
    }
    RedisModule_FreeString(ctx, map);
    return is_sum;
}

/*
 * Which blocks of a running sum hold the current accumulation: "<sum>:blocks", one byte per
 * block of PL_SUM_BLOCK elements. A fresh sum is not zeroed at once (memset of a ResNet-18
 * sum's 180 MB would stall every other client for tens of ms): the first add into a block
 * writes it outright (or zeroes it first when it covers only part), and blocks nothing touched
 * are zeroed when the mean is taken. A sum without a valid map is taken as whole.
 */
#define PL_SUM_BLOCK 65536

typedef struct {
    RedisModuleKey *key;
    unsigned char *live;
    size_t blocks, total;
} block_map;

static void open_blocks(RedisModuleCtx *ctx, RedisModuleString *sum, size_t total, int fresh,
                        block_map *m) {
    RedisModuleString *name = suffixed(ctx, sum, ":blocks");
    m->key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModule_FreeString(ctx, name);
    m->total = total;
    m->blocks = (total + PL_SUM_BLOCK - 1) / PL_SUM_BLOCK;
    int valid = RedisModule_KeyType(m->key) == REDISMODULE_KEYTYPE_STRING &&
                RedisModule_ValueLength(m->key) == m->blocks;
    if (fresh || !valid) {
        if (RedisModule_KeyType(m->key) != REDISMODULE_KEYTYPE_EMPTY &&
            RedisModule_KeyType(m->key) != REDISMODULE_KEYTYPE_STRING)
            RedisModule_DeleteKey(m->key);
        RedisModule_StringTruncate(m->key, 0);
        RedisModule_StringTruncate(m->key, m->blocks);
    }
    size_t len;
    m->live = (unsigned char *)RedisModule_StringDMA(m->key, &len, REDISMODULE_WRITE);
    if (!fresh && !valid) memset(m->live, 1, m->blocks);
}

/* The element just past block b. */
static size_t block_end(const block_map *m, size_t b) {
    size_t be = (b + 1) * PL_SUM_BLOCK;
    return be < m->total ? be : m->total;
}

/* Block b of both planes set to zero: it now holds the current accumulation. */
static void zero_block(block_map *m, pl_i64 *hi, pl_i64 *lo, size_t b) {
    size_t bs = b * PL_SUM_BLOCK, be = block_end(m, b);
    memset((void *)(hi + bs), 0, (be - bs) * 8);
    memset((void *)(lo + bs), 0, (be - bs) * 8);
    m->live[b] = 1;
}

/* hi, lo += the split of x, the n elements from element `off`, block by block. */
static void sum_add(block_map *m, pl_i64 *hi, pl_i64 *lo, size_t off, const pl_f32 *x, size_t n) {
    size_t end = off + n;
    for (size_t b = off / PL_SUM_BLOCK; b * PL_SUM_BLOCK < end; b++) {
        size_t bs = b * PL_SUM_BLOCK, be = block_end(m, b);
        size_t s = off > bs ? off : bs, e = end < be ? end : be;
        if (!m->live[b] && s == bs && e == be) { /* the whole block: written outright */
            pl_fix_set(hi + s, lo + s, x + (s - off), e - s);
            m->live[b] = 1;
            continue;
        }
        if (!m->live[b]) zero_block(m, hi, lo, b);
        pl_fix_add(hi + s, lo + s, x + (s - off), e - s);
    }
}

/* Zeroes the blocks nothing was added into: then the whole sum is the accumulation's. */
static void settle_blocks(block_map *m, pl_i64 *hi, pl_i64 *lo) {
    for (size_t b = 0; b < m->blocks; b++)
        if (!m->live[b]) zero_block(m, hi, lo, b);
}

/* Adds the blob into the exact sum (a fresh one is started, see block_map). */
static void add_into_sum(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleKey *sum,
                         const accum_args *a, int fresh, block_map *m) {
    if (fresh) resize(sum, (size_t)a->total * 4, 0);
    open_blocks(ctx, name, (size_t)a->total, fresh, m);
    pl_i64 *hi, *lo;
    sum_planes(sum, (size_t)a->total, &hi, &lo);
    sum_add(m, hi, lo, (size_t)a->offset, a->data, a->n);
}

/*
 * Rounds. With ROUND r, a sum's keys are reused round after round (no fresh memory): the
 * round it holds is kept in "<sum>:round", a contribution for a later round starts the sum
 * afresh in place, one for an earlier round is refused (a late function of a finished
 * round), and the average's round is written to "<avg>:round" when it is complete.
 * Returns the stored round (-1 when none), or -2 after replying an error.
 */
/* The round `name` holds: 1 with *r set (-1 when the key is missing), 0 when it holds anything
 * but a round number. */
static int read_round(RedisModuleCtx *ctx, RedisModuleString *name, long long *r) {
    RedisModuleKey *k = RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
    int type = RedisModule_KeyType(k), ok = type == REDISMODULE_KEYTYPE_EMPTY;
    *r = -1;
    if (type == REDISMODULE_KEYTYPE_STRING) {
        size_t len;
        const char *p = RedisModule_StringDMA(k, &len, REDISMODULE_READ);
        RedisModuleString *v = RedisModule_CreateString(ctx, p, len);
        ok = RedisModule_StringToLongLong(v, r) == REDISMODULE_OK && *r >= 0;
        RedisModule_FreeString(ctx, v);
    }
    RedisModule_CloseKey(k);
    return ok;
}

static long long stored_round(RedisModuleCtx *ctx, RedisModuleString *name) {
    long long r;
    if (read_round(ctx, name, &r)) return r;
    fail(ctx, "\"%s\" does not hold a round number", show(name).s);
    return -2;
}

static void write_round(RedisModuleCtx *ctx, RedisModuleString *name, long long round) {
    RedisModuleKey *k = RedisModule_OpenKey(ctx, name, REDISMODULE_WRITE);
    RedisModuleString *v = RedisModule_CreateStringFromLongLong(ctx, round);
    RedisModule_StringSet(k, v);
    RedisModule_FreeString(ctx, v);
    RedisModule_CloseKey(k);
}

/*
 * What the accumulations did since the server started (PL.STATS): the proof, for a fault
 * test, that every contribution counted once and whole, and how often a repeat, a withdrawn
 * attempt or a late one was caught. Touched only on the server's thread.
 */
static struct {
    long long counted;   /* contributions counted (PL.ACCUM, or PL.PUSH's last chunk of an attempt) */
    long long completed; /* accumulations that reached their expected count */
    long long repeats;   /* a counted contribution, or a staged chunk, sent again: acknowledged, dropped */
    long long withdrawn; /* attempts taken back out of a sum (another attempt of theirs counted) */
    long long late;      /* refused as too late: after PL.CLOSE, an earlier round's, a replaced attempt's */
} stats;

/* The accumulation in `sum` as a command of round `round` (-1: no ROUND) finds it. A round
 * earlier than the sum's is refused (`what` and `id` name the late contribution); a later one
 * reads as fresh (*new_round: the caller drops the old round's ids when it mutates, so a
 * command refused later changes nothing). The id set is opened for writing into *ids (the
 * caller closes it) and read. Returns 0 after replying an error. */
static int open_accumulation(RedisModuleCtx *ctx, RedisModuleString *sum, RedisModuleString *ids_name,
                             RedisModuleString *round_name, long long round, const char *what,
                             RedisModuleString *id, RedisModuleKey **ids, int *new_round,
                             long long *expected, long long *count, int *closed) {
    *new_round = 0;
    if (round >= 0) {
        long long held = stored_round(ctx, round_name);
        if (held == -2) return 0;
        if (round < held) {
            stats.late++;
            fail(ctx, "%s \"%s\" is for round %lld, but \"%s\" is summing round %lld: too late, refused",
                 what, show(id).s, round, show(sum).s, held);
            return 0;
        }
        *new_round = round > held;
    }
    *ids = RedisModule_OpenKey(ctx, ids_name, REDISMODULE_READ | REDISMODULE_WRITE);
    if (*new_round) {
        *expected = *count = 0;
        *closed = 0;
        return 1;
    }
    int type = RedisModule_KeyType(*ids);
    if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_HASH) {
        fail(ctx, "wrong type: \"%s\" holds %s, not an id set", show(ids_name).s, type_name(type));
        return 0;
    }
    return read_accum_state(ctx, *ids, ids_name, expected, count, closed);
}

/* ------------------------------------------------------------------------------------------
 * Staging slots: a contribution sent in chunks (PL.PUSH) counts once and whole.
 *
 * Each chunk is added into the exact sum as it arrives (no big add when the last one lands)
 * and also copied into the attempt's staging slot, so an attempt that never completes (its
 * function died, or another attempt of the same contribution completed first) can be
 * withdrawn exactly: integer sums make subtraction exact. Slot i of sum S is the tensor
 * "S:slot:i" (allocated once at full size, reused round after round) and its record
 * "S:slot:i:got" (which attempt holds it and which chunks arrived; missing = free).
 * ---------------------------------------------------------------------------------------- */

#define PL_MAX_SLOTS 256
#define PL_MAX_NAME 1024 /* bytes of a contribution or attempt id */
#define PL_MAX_RESULT 4096 /* bytes of a PL.PUSH RESULT */
#define SLOT_MAGIC 0x54534c50u /* "PLST" */

typedef struct {
    uint32_t magic, chunks, received, chunk, idlen, attlen;
} slot_head;

typedef struct {
    RedisModuleKey *key; /* the record, open for writing */
    slot_head head;
    char *id, *att;
    unsigned char *flags; /* one byte per chunk: 1 when it arrived */
} slot_record;

static RedisModuleString *slot_name(RedisModuleCtx *ctx, RedisModuleString *sum, int i, int record) {
    char suffix[32];
    snprintf(suffix, sizeof suffix, record ? ":slot:%d:got" : ":slot:%d", i);
    return suffixed(ctx, sum, suffix);
}

/* Whether slot i's tensor exists: slots are made in index order, so the first missing one
 * ends the pool. */
static int slot_exists(RedisModuleCtx *ctx, RedisModuleString *sum, int i) {
    RedisModuleString *name = slot_name(ctx, sum, i, 0);
    RedisModuleKey *k = RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
    int exists = RedisModule_KeyType(k) == REDISMODULE_KEYTYPE_STRING;
    RedisModule_CloseKey(k);
    RedisModule_FreeString(ctx, name);
    return exists;
}

/* Opens slot i's record. Returns 1 when it holds an attempt (r filled, key left open),
 * 0 when the slot is free (nothing left open). A record that is not one (foreign bytes), or
 * whose chunks do not cut a `total`-element sum (0: not checked; the record is only dropped),
 * is treated as free: it is overwritten when the slot is next taken. Withdrawing by a record
 * of another length wrote past the sum. */
static int open_slot(RedisModuleCtx *ctx, RedisModuleString *sum, int i, slot_record *r, size_t total) {
    RedisModuleString *name = slot_name(ctx, sum, i, 1);
    r->key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModule_FreeString(ctx, name);
    size_t len = 0;
    char *p = NULL;
    if (RedisModule_KeyType(r->key) == REDISMODULE_KEYTYPE_STRING)
        p = RedisModule_StringDMA(r->key, &len, REDISMODULE_READ | REDISMODULE_WRITE);
    if (p && len >= sizeof r->head) {
        memcpy(&r->head, p, sizeof r->head);
        const slot_head *h = &r->head;
        int cuts = total == 0 || (h->chunk > 0 && h->chunks == (total + h->chunk - 1) / h->chunk);
        if (h->magic == SLOT_MAGIC && h->chunks > 0 && cuts &&
            len == sizeof *h + (size_t)h->idlen + h->attlen + h->chunks) {
            r->id = p + sizeof *h;
            r->att = r->id + h->idlen;
            r->flags = (unsigned char *)r->att + h->attlen;
            return 1;
        }
    }
    close_key(&r->key);
    return 0;
}

static int same_bytes(const char *p, size_t len, RedisModuleString *s) {
    size_t slen;
    const char *q = RedisModule_StringPtrLen(s, &slen);
    return len == slen && memcmp(p, q, len) == 0;
}

/* Subtracts an attempt's arrived chunks from the sum and frees its slot. */
static void withdraw_slot(RedisModuleCtx *ctx, RedisModuleString *sum, int i, slot_record *r,
                          pl_i64 *hi, pl_i64 *lo, size_t total) {
    RedisModuleString *name = slot_name(ctx, sum, i, 0);
    RedisModuleKey *data = RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
    RedisModule_FreeString(ctx, name);
    size_t bytes = 0;
    const pl_f32 *staged = NULL;
    if (RedisModule_KeyType(data) == REDISMODULE_KEYTYPE_STRING)
        staged = (const pl_f32 *)RedisModule_StringDMA(data, &bytes, REDISMODULE_READ);
    /* Only a slot of this sum's length was written by this sum's chunks. */
    if (staged && bytes == total * 4 && hi) {
        stats.withdrawn++;
        for (uint32_t c = 0; c < r->head.chunks; c++) {
            size_t off = (size_t)c * r->head.chunk;
            if (off >= total) break; /* open_slot checked the cut: never, but never past the sum */
            if (!r->flags[c]) continue;
            size_t n = off + r->head.chunk <= total ? r->head.chunk : total - off;
            pl_fix_sub(hi + off, lo + off, staged + off, n);
        }
    }
    RedisModule_CloseKey(data);
    RedisModule_DeleteKey(r->key);
    close_key(&r->key);
}

/* Withdraws every attempt in progress (of contribution `id` only, when given). With `hi`
 * NULL the sum is being started afresh: the records are only dropped. */
static void withdraw_attempts(RedisModuleCtx *ctx, RedisModuleString *sum, RedisModuleString *id,
                              pl_i64 *hi, pl_i64 *lo, size_t total) {
    for (int i = 0; i < PL_MAX_SLOTS && slot_exists(ctx, sum, i); i++) {
        slot_record r;
        if (!open_slot(ctx, sum, i, &r, hi ? total : 0)) continue;
        if (id && !same_bytes(r.id, r.head.idlen, id)) {
            close_key(&r.key);
            continue;
        }
        withdraw_slot(ctx, sum, i, &r, hi, lo, total);
    }
}

/* Writes avg = sum / count (rounded once), its round marker, and publishes its name on
 * peerless:averaged: what the round's state machine waits for. */
/* The average's round into "<avg>:round" (when it has one), and its name published: the
 * peer's round goes on. */
static void announce_average(RedisModuleCtx *ctx, RedisModuleString *avg_name, long long round, int publish) {
    if (round >= 0) {
        RedisModuleString *avg_round = suffixed(ctx, avg_name, ":round");
        write_round(ctx, avg_round, round);
        RedisModule_FreeString(ctx, avg_round);
    }
    if (!publish) return;
    RedisModuleString *channel = RedisModule_CreateString(ctx, AVERAGED_CHANNEL, strlen(AVERAGED_CHANNEL));
    RedisModule_PublishMessage(ctx, channel, avg_name);
    RedisModule_FreeString(ctx, channel);
}

/*
 * A long average is written in pieces. The mean of a ResNet-18 sum reads 180 MB of planes:
 * one command doing it held the server 25-35 ms. So beyond FINISH_PIECE elements the command
 * that completes the sum only sizes the average, and a module timer writes FINISH_PIECE
 * elements per tick on the server's own thread, serving the other clients between ticks;
 * the round and the name are announced with the last piece. While an average is being
 * written, a command on its sum (PL.ACCUM, PL.PUSH, PL.CLOSE) first finishes it, so the sum
 * never changes under it. A sum or average changed behind the module's back (deleted,
 * resized, another round) drops the job unannounced: the peer then sees no average.
 *
 * Only a live server's own clients wait: a command replayed from the AOF, or sent by a
 * master, writes its average at once, since the commands after it (a copy of the average,
 * the update) come in the same stream and timers do not fire while Redis loads. And a
 * snapshot (BGSAVE, an AOF rewrite, a replica's sync, SAVE) finishes every job first, in the
 * process that writes it, so that no file holds half an average and no announcement.
 */
#define FINISH_PIECE ((size_t)1 << 20) /* elements, a multiple of PL_SUM_BLOCK */

typedef struct finish_job {
    RedisModuleString *sum, *avg; /* owned (created without a context) */
    size_t total, next;
    long long count, round;
    int db;                   /* the database of its keys: names alone are per database */
    int done;                 /* finished on demand: the pending tick only frees it */
    struct finish_job *later; /* the list of jobs in progress */
} finish_job;

static finish_job *finishing;

static void unlink_job(finish_job *j) {
    for (finish_job **at = &finishing; *at; at = &(*at)->later)
        if (*at == j) {
            *at = j->later;
            return;
        }
}

static void free_job(finish_job *j) {
    RedisModule_FreeString(NULL, j->sum);
    RedisModule_FreeString(NULL, j->avg);
    RedisModule_Free(j);
}

/* The round "<sum>:round" holds, -1 when none or not a round (no reply: timers have no client). */
static long long held_round(RedisModuleCtx *ctx, RedisModuleString *sum) {
    RedisModuleString *name = suffixed(ctx, sum, ":round");
    long long r;
    if (!read_round(ctx, name, &r)) r = -1;
    RedisModule_FreeString(ctx, name);
    return r;
}

/* Writes the job's next piece; returns 1 while pieces are left, 0 once it is announced or
 * dropped. */
static int finish_piece(RedisModuleCtx *ctx, finish_job *j, int publish) {
    int was = RedisModule_GetSelectedDb(ctx);
    if (was != j->db) RedisModule_SelectDb(ctx, j->db);
    RedisModuleKey *sum = RedisModule_OpenKey(ctx, j->sum, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModuleKey *avg = RedisModule_OpenKey(ctx, j->avg, REDISMODULE_READ | REDISMODULE_WRITE);
    int intact = RedisModule_KeyType(sum) == REDISMODULE_KEYTYPE_STRING &&
                 RedisModule_ValueLength(sum) == j->total * 16 &&
                 RedisModule_KeyType(avg) == REDISMODULE_KEYTYPE_STRING &&
                 RedisModule_ValueLength(avg) == j->total * 4 &&
                 (j->round < 0 || held_round(ctx, j->sum) == j->round);
    int more = 0;
    if (intact) {
        block_map m;
        open_blocks(ctx, j->sum, j->total, 0, &m);
        pl_i64 *hi, *lo;
        sum_planes(sum, j->total, &hi, &lo);
        size_t end = j->next + FINISH_PIECE < j->total ? j->next + FINISH_PIECE : j->total;
        for (size_t b = j->next / PL_SUM_BLOCK; b * PL_SUM_BLOCK < end; b++)
            if (!m.live[b]) zero_block(&m, hi, lo, b);
        pl_fix_mean(dma(avg, REDISMODULE_WRITE) + j->next, hi + j->next, lo + j->next, end - j->next, j->count);
        close_key(&m.key);
        j->next = end;
        more = end < j->total;
    }
    RedisModule_CloseKey(sum);
    RedisModule_CloseKey(avg);
    if (intact && !more) announce_average(ctx, j->avg, j->round, publish);
    if (was != j->db) RedisModule_SelectDb(ctx, was);
    return more;
}

static void finish_tick(RedisModuleCtx *ctx, void *data) {
    finish_job *j = data;
    if (!j->done && finish_piece(ctx, j, 1)) {
        RedisModule_CreateTimer(ctx, 0, finish_tick, j);
        return;
    }
    if (!j->done) unlink_job(j);
    free_job(j);
}

/* Finishes, now, an average still being written from `sum` of the caller's database (before
 * a command changes it). */
static void finish_now(RedisModuleCtx *ctx, RedisModuleString *sum) {
    int db = RedisModule_GetSelectedDb(ctx);
    for (finish_job *j = finishing; j; j = j->later) {
        if (j->db != db || name_cmp(j->sum, sum) != 0) continue;
        while (finish_piece(ctx, j, 1)) {}
        unlink_job(j);
        j->done = 1; /* its pending tick frees it */
        return;
    }
}

/* A snapshot is about to be written: every average still in pieces is finished first. In a
 * forked child (the subevents without SYNC) this writes the child's copy only, and nothing
 * is published: the server itself still finishes and announces its jobs tick by tick. */
static void finish_before_snapshot(RedisModuleCtx *ctx, RedisModuleEvent e, uint64_t sub, void *data) {
    (void)e, (void)data;
    int forked = sub == REDISMODULE_SUBEVENT_PERSISTENCE_RDB_START || sub == REDISMODULE_SUBEVENT_PERSISTENCE_AOF_START;
    if (!forked && sub != REDISMODULE_SUBEVENT_PERSISTENCE_SYNC_RDB_START &&
        sub != REDISMODULE_SUBEVENT_PERSISTENCE_SYNC_AOF_START)
        return;
    while (finishing) {
        finish_job *j = finishing;
        while (finish_piece(ctx, j, !forked)) {}
        unlink_job(j);
        j->done = 1; /* its pending tick frees it (a child exits without ticking) */
    }
}

/* The accumulation is complete: avg = sum / count, rounded once, and announced; a long one
 * in pieces (see finish_job). `m`, `hi`, `lo` are the open sum's. */
static void write_average(RedisModuleCtx *ctx, RedisModuleKey *avg, RedisModuleString *avg_name,
                          RedisModuleString *sum_name, block_map *m, pl_i64 *hi, pl_i64 *lo,
                          size_t total, long long count, long long round) {
    pl_f32 *out = resize(avg, total, 0);
    int replayed = RedisModule_GetContextFlags(ctx) & (REDISMODULE_CTX_FLAGS_LOADING | REDISMODULE_CTX_FLAGS_REPLICATED);
    finish_job *j = total > FINISH_PIECE && !replayed ? RedisModule_Alloc(sizeof *j) : NULL;
    if (!j) {
        settle_blocks(m, hi, lo);
        pl_fix_mean(out, hi, lo, total, count);
        announce_average(ctx, avg_name, round, 1);
        return;
    }
    *j = (finish_job){RedisModule_CreateStringFromString(NULL, sum_name),
                      RedisModule_CreateStringFromString(NULL, avg_name), total, 0, count, round,
                      RedisModule_GetSelectedDb(ctx), 0, finishing};
    finishing = j;
    RedisModule_CreateTimer(ctx, 0, finish_tick, j);
}

static int cmd_accum(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 6 && argc != 8 && argc != 10 && argc != 12) return RedisModule_WrongArity(ctx);
    finish_now(ctx, argv[1]); /* an average still being written goes first */
    accum_args a;
    if (!parse_accum(ctx, argv, argc, &a)) return REDISMODULE_OK;

    if (!accumulation_names_ok(ctx, argv[1], argv[2])) return REDISMODULE_OK;
    RedisModuleString *ids_name = ids_key_name(ctx, argv[1]);
    RedisModuleString *round_name = suffixed(ctx, argv[1], ":round");
    RedisModuleKey *ids = NULL, *sum = NULL, *avg = NULL;
    block_map blocks = {NULL, NULL, 0, 0};
    tensor_key st = {NULL, 0};
    long long expected, count;
    int fresh, completes, closed, new_round;
    if (!open_accumulation(ctx, argv[1], ids_name, round_name, a.round, "contribution", argv[3], &ids,
                           &new_round, &expected, &count, &closed))
        goto done;
    fresh = expected == 0;
    if (closed) {
        int seen = 0;
        RedisModule_HashGet(ids, REDISMODULE_HASH_EXISTS, argv[3], &seen, NULL);
        if (seen) {
            stats.repeats++;
            reply_accum(ctx, count, expected);
        } else {
            stats.late++;
            fail(ctx, "accumulation \"%s\" was closed at %lld contributions; contribution \"%s\" "
                 "came too late and is refused", show(argv[1]).s, count, show(argv[3]).s);
        }
        goto done;
    }
    if (!fresh && expected != a.expected) {
        fail(ctx, "expected %lld contributions, but \"%s\" was started with %lld", a.expected,
             show(argv[1]).s, expected);
        goto done;
    }
    if (!fresh) {
        int seen = 0;
        RedisModule_HashGet(ids, REDISMODULE_HASH_EXISTS, argv[3], &seen, NULL);
        if (seen) { /* a retry: nothing changes */
            stats.repeats++;
            reply_accum(ctx, count, expected);
            goto done;
        }
        if (count >= expected) {
            fail(ctx, "accumulation \"%s\" is complete (%lld of %lld); contribution \"%s\" refused",
                 show(argv[1]).s, count, expected, show(argv[3]).s);
            goto done;
        }
    }

    /* The sum: a fresh accumulation overwrites any string there; a running one needs it. */
    if (fresh) {
        if (!open_fresh_sum(ctx, argv[1], &sum)) goto done;
    } else {
        size_t total;
        if (!open_sum(ctx, argv[1], &st, &total)) goto done;
        sum = st.key;
        if (total != (size_t)a.total) {
            fail(ctx, "gradient has %lld elements, expected %zu (the length of \"%s\")", a.total,
                 total, show(argv[1]).s);
            goto done;
        }
    }
    completes = count + 1 == a.expected;
    if (completes && !open_target(ctx, argv[2], "avg", &avg)) goto done;

    /* Everything checked: mutate. A later round starts afresh: the old round's ids go. */
    if (new_round) RedisModule_DeleteKey(ids);
    if (fresh) withdraw_attempts(ctx, argv[1], NULL, NULL, NULL, 0);
    add_into_sum(ctx, argv[1], sum, &a, fresh, &blocks);
    record_id(ctx, ids, argv[3], a.expected, fresh, NULL);
    if (new_round) write_round(ctx, round_name, a.round);
    count++;
    stats.counted++;
    stats.completed += completes;
    {
        pl_i64 *hi, *lo;
        sum_planes(sum, (size_t)a.total, &hi, &lo);
        /* Chunked attempts of this contribution (PL.PUSH) no longer count; at completion none do. */
        withdraw_attempts(ctx, argv[1], completes ? NULL : argv[3], hi, lo, (size_t)a.total);
        if (completes) write_average(ctx, avg, argv[2], argv[1], &blocks, hi, lo, (size_t)a.total, a.expected, a.round);
    }
    RedisModule_ReplicateVerbatim(ctx);
    reply_accum(ctx, count, a.expected);

done:
    close_key(&blocks.key);
    close_key(&ids);
    close_key(&sum);
    close_key(&avg);
    RedisModule_FreeString(ctx, ids_name);
    RedisModule_FreeString(ctx, round_name);
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------------------------------------
 * PL.PUSH sum avg id attempt expected total chunk offset blob [ROUND r] [SLOTS k] [RESULT blob]
 *
 * One chunk of a contribution sent in pieces: elements [offset, offset + len) of a
 * `total`-element gradient cut into chunks of `chunk` elements (offset is a multiple of
 * `chunk`, len = min(chunk, total - offset)). `attempt` names one sending of the
 * contribution (a function's invocation): its chunks are added as they arrive and staged in
 * a slot (see "Staging slots"); when all its chunks are in, the contribution `id` counts,
 * once, and every other attempt of it is withdrawn. A later attempt of a counted contribution
 * is acknowledged and dropped; the same chunk of an attempt sent again is acknowledged when
 * its bytes are the same and refused when they differ. At most `k` attempts (default
 * expected + 2, at most 256) may be in progress at once. RESULT (sent with every chunk: any
 * chunk may be the one that completes) is what the sender computed, at most 4 KiB; it becomes
 * the id's value in the id set, so a caller whose answer was lost can read it back from the
 * database once the contribution counts. Rounds, completion, closing and the reply are those
 * of PL.ACCUM.
 * ---------------------------------------------------------------------------------------- */
typedef struct {
    long long expected, total, chunk, offset, round, slots;
    RedisModuleString *result; /* RESULT: what the sender computed, kept with the id (or NULL) */
    const pl_f32 *data;
    size_t n;
    uint32_t chunks, index; /* chunks in the gradient, and this one's */
} push_args;

static int parse_push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, push_args *a) {
    size_t idlen, attlen;
    RedisModule_StringPtrLen(argv[3], &idlen);
    RedisModule_StringPtrLen(argv[4], &attlen);
    if (idlen == 0 || attlen == 0) return fail(ctx, "contribution and attempt ids must not be empty"), 0;
    if (idlen > PL_MAX_NAME || attlen > PL_MAX_NAME)
        return fail(ctx, "contribution and attempt ids hold at most %d bytes", PL_MAX_NAME), 0;
    if (!distinct_keys(ctx, argv + 1, 2)) return 0;
    if (!parse_int(ctx, argv[5], "expected", 1, PL_MAX_EXPECTED, &a->expected)) return 0;
    if (!parse_int(ctx, argv[6], "total", 1, PL_MAX_ELEMENTS / 4, &a->total)) return 0;
    if (!parse_int(ctx, argv[7], "chunk", 1, PL_MAX_ELEMENTS, &a->chunk)) return 0;
    if (!parse_int(ctx, argv[8], "offset", 0, a->total - 1, &a->offset)) return 0;
    a->round = -1;
    a->slots = -1;
    a->result = NULL;
    for (int i = 10; i < argc; i += 2) {
        if (is_word(argv[i], "ROUND") && a->round < 0) {
            if (!parse_int(ctx, argv[i + 1], "ROUND", 0, PL_MAX_STEP, &a->round)) return 0;
        } else if (is_word(argv[i], "SLOTS") && a->slots < 0) {
            if (!parse_int(ctx, argv[i + 1], "SLOTS", 1, PL_MAX_SLOTS, &a->slots)) return 0;
        } else if (is_word(argv[i], "RESULT") && !a->result) {
            size_t len;
            RedisModule_StringPtrLen(argv[i + 1], &len);
            if (len == 0 || len > PL_MAX_RESULT)
                return fail(ctx, "RESULT holds %zu bytes, not 1 to %d", len, PL_MAX_RESULT), 0;
            a->result = argv[i + 1];
        } else {
            return fail(ctx, "unexpected argument \"%s\" (expected ROUND r, SLOTS k, RESULT blob)",
                        show(argv[i]).s), 0;
        }
    }
    if (a->slots < 0) a->slots = a->expected + 2 < PL_MAX_SLOTS ? a->expected + 2 : PL_MAX_SLOTS;
    if (a->offset % a->chunk != 0)
        return fail(ctx, "offset %lld is not at a chunk boundary (chunks of %lld elements)", a->offset,
                    a->chunk), 0;
    long long chunks = (a->total + a->chunk - 1) / a->chunk;
    if (chunks > 1 << 20) return fail(ctx, "%lld chunks are too many (at most 2^20)", chunks), 0;
    a->chunks = (uint32_t)chunks;
    a->index = (uint32_t)(a->offset / a->chunk);
    if (!parse_blob(ctx, argv[9], "chunk", &a->data, &a->n)) return 0;
    long long want = a->total - a->offset < a->chunk ? a->total - a->offset : a->chunk;
    if ((long long)a->n != want)
        return fail(ctx, "chunk at offset %lld has %zu elements, expected %lld", a->offset, a->n, want), 0;
    size_t big = pl_fix_first_too_large(a->data, a->n);
    if (big < a->n)
        return fail(ctx, "chunk has a value too large to sum exactly (%g at element %lld; the limit is %g "
                    "in magnitude)", (double)a->data[big], a->offset + (long long)big,
                    (double)PL_FIX_LIMIT), 0;
    return 1;
}

/* Takes slot i for an attempt: its tensor at full size (allocated only the first time, or
 * when the length changed) and a fresh record. Returns the slot's payload. */
static pl_f32 *take_slot(RedisModuleCtx *ctx, RedisModuleString *sum, int i, const push_args *a,
                         RedisModuleString *id, RedisModuleString *att, slot_record *r) {
    RedisModuleString *name = slot_name(ctx, sum, i, 0);
    RedisModuleKey *data = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModule_FreeString(ctx, name);
    size_t bytes = (size_t)a->total * 4;
    if (RedisModule_KeyType(data) != REDISMODULE_KEYTYPE_STRING || RedisModule_ValueLength(data) != bytes)
        RedisModule_StringTruncate(data, bytes);
    pl_f32 *staged = dma(data, REDISMODULE_WRITE);
    RedisModule_CloseKey(data); /* the payload stays valid: nothing else touches the key here */

    size_t idlen, attlen;
    const char *idp = RedisModule_StringPtrLen(id, &idlen), *attp = RedisModule_StringPtrLen(att, &attlen);
    name = slot_name(ctx, sum, i, 1);
    r->key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModule_FreeString(ctx, name);
    r->head = (slot_head){SLOT_MAGIC, a->chunks, 0, (uint32_t)a->chunk, (uint32_t)idlen, (uint32_t)attlen};
    size_t len = sizeof r->head + idlen + attlen + a->chunks;
    RedisModule_StringTruncate(r->key, 0);
    RedisModule_StringTruncate(r->key, len); /* zeroed: no chunk arrived */
    size_t got;
    char *p = RedisModule_StringDMA(r->key, &got, REDISMODULE_WRITE);
    memcpy(p, &r->head, sizeof r->head);
    memcpy(p + sizeof r->head, idp, idlen);
    memcpy(p + sizeof r->head + idlen, attp, attlen);
    r->id = p + sizeof r->head;
    r->att = r->id + idlen;
    r->flags = (unsigned char *)r->att + attlen;
    return staged;
}

/* Whether slot i's keys may be taken: missing, or strings (a user's hash there is refused). */
static int slot_usable(RedisModuleCtx *ctx, RedisModuleString *sum, int i) {
    int ok = 1;
    for (int record = 0; record < 2 && ok; record++) {
        RedisModuleString *name = slot_name(ctx, sum, i, record);
        RedisModuleKey *k = RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
        int type = RedisModule_KeyType(k);
        if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_STRING) {
            fail(ctx, "wrong type: \"%s\" holds %s, not a staging slot", show(name).s, type_name(type));
            ok = 0;
        }
        RedisModule_CloseKey(k);
        RedisModule_FreeString(ctx, name);
    }
    return ok;
}

/* Slot i's staged tensor, when it has `total` elements. */
static pl_f32 *slot_data(RedisModuleCtx *ctx, RedisModuleString *sum, int i, size_t total) {
    RedisModuleString *name = slot_name(ctx, sum, i, 0);
    RedisModuleKey *data = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModule_FreeString(ctx, name);
    pl_f32 *p = NULL;
    if (RedisModule_KeyType(data) == REDISMODULE_KEYTYPE_STRING && RedisModule_ValueLength(data) == total * 4)
        p = dma(data, REDISMODULE_WRITE);
    RedisModule_CloseKey(data);
    return p;
}

static int cmd_push(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 10 || argc > 16 || argc % 2 != 0) return RedisModule_WrongArity(ctx);
    finish_now(ctx, argv[1]); /* an average still being written goes first */
    push_args a;
    if (!parse_push(ctx, argv, argc, &a) || !accumulation_names_ok(ctx, argv[1], argv[2])) return REDISMODULE_OK;
    RedisModuleString *sum_name = argv[1], *avg_name = argv[2], *id = argv[3], *att = argv[4];

    RedisModuleString *ids_name = ids_key_name(ctx, sum_name);
    RedisModuleString *round_name = suffixed(ctx, sum_name, ":round");
    RedisModuleString *gone_name = suffixed(ctx, sum_name, ":gone");
    RedisModuleKey *ids = NULL, *sum = NULL, *avg = NULL, *gone = NULL;
    tensor_key st = {NULL, 0};
    slot_record rec = {NULL};
    block_map blocks = {NULL, NULL, 0, 0};
    int new_round = 0;
    long long expected, count;
    int closed;
    if (!open_accumulation(ctx, sum_name, ids_name, round_name, a.round, "chunk of", id, &ids, &new_round,
                           &expected, &count, &closed))
        goto done;
    int fresh = expected == 0, seen = 0;
    if (!fresh) RedisModule_HashGet(ids, REDISMODULE_HASH_EXISTS, id, &seen, NULL);
    if (seen) { /* counted already: a later attempt or a resent chunk is acknowledged, and dropped */
        stats.repeats++;
        reply_accum(ctx, count, closed ? count : expected);
        goto done;
    }
    if (closed) {
        stats.late++;
        fail(ctx, "accumulation \"%s\" was closed at %lld contributions; contribution \"%s\" came too "
             "late and is refused", show(sum_name).s, count, show(id).s);
        goto done;
    }
    if (!fresh) {
        gone = RedisModule_OpenKey(ctx, gone_name, REDISMODULE_READ | REDISMODULE_WRITE);
        int replaced = 0;
        if (RedisModule_KeyType(gone) == REDISMODULE_KEYTYPE_HASH)
            RedisModule_HashGet(gone, REDISMODULE_HASH_EXISTS, att, &replaced, NULL);
        if (replaced) {
            stats.late++;
            fail(ctx, "attempt \"%s\" of \"%s\" was replaced by a later attempt: refused", show(att).s,
                 show(id).s);
            goto done;
        }
    }
    if (!fresh && expected != a.expected) {
        fail(ctx, "expected %lld contributions, but \"%s\" was started with %lld", a.expected,
             show(sum_name).s, expected);
        goto done;
    }
    if (!fresh && count >= expected) {
        fail(ctx, "accumulation \"%s\" is complete (%lld of %lld); contribution \"%s\" refused",
             show(sum_name).s, count, expected, show(id).s);
        goto done;
    }
    if (fresh) {
        if (!open_fresh_sum(ctx, sum_name, &sum)) goto done;
    } else {
        size_t total;
        if (!open_sum(ctx, sum_name, &st, &total)) goto done;
        sum = st.key;
        st.key = NULL;
        if (total != (size_t)a.total) {
            fail(ctx, "contribution \"%s\" has %lld elements, but \"%s\" sums %zu", show(id).s, a.total,
                 show(sum_name).s, total);
            goto done;
        }
    }

    /* The attempt's slot: found, or a free one to take (a fresh sum frees them all). */
    int slot = -1, free_slot = -1, pool = 0, same_id = -1;
    if (!fresh && a.chunks > 1) {
        for (; pool < PL_MAX_SLOTS && slot_exists(ctx, sum_name, pool); pool++) {
            slot_record r;
            if (!open_slot(ctx, sum_name, pool, &r, (size_t)a.total)) {
                if (free_slot < 0) free_slot = pool;
                continue;
            }
            int mine = same_bytes(r.id, r.head.idlen, id);
            if (slot < 0 && mine && same_bytes(r.att, r.head.attlen, att)) {
                slot = pool;
                rec = r;
            } else {
                if (mine && same_id < 0) same_id = pool;
                close_key(&r.key);
            }
        }
    }
    if (slot >= 0) {
        if (rec.head.chunk != (uint32_t)a.chunk || rec.head.chunks != a.chunks) {
            fail(ctx, "attempt \"%s\" of \"%s\" was started with chunks of %u elements, not %lld",
                 show(att).s, show(id).s, rec.head.chunk, a.chunk);
            goto done;
        }
        if (rec.flags[a.index]) { /* the same chunk again: the same bytes, or a refusal */
            pl_f32 *staged = slot_data(ctx, sum_name, slot, (size_t)a.total);
            if (staged && memcmp((const void *)(staged + a.offset), (const void *)a.data, a.n * 4) == 0) {
                stats.repeats++;
                reply_accum(ctx, count, expected);
            } else
                fail(ctx, "chunk at offset %lld of attempt \"%s\" of \"%s\" was sent again with other "
                     "bytes: refused", a.offset, show(att).s, show(id).s);
            goto done;
        }
    } else if (a.chunks > 1 && free_slot < 0) {
        if (fresh) free_slot = 0;
        else if (pool < a.slots) free_slot = pool;
        else if (same_id >= 0) free_slot = same_id; /* a retry replaces its failed attempt */
        else {
            fail(ctx, "no free staging slot for contribution \"%s\" (%d attempts in progress): retry "
                 "later", show(id).s, pool);
            goto done;
        }
    }
    if (slot < 0 && a.chunks > 1 && !slot_usable(ctx, sum_name, free_slot)) goto done;
    long long want = fresh ? a.expected : expected;
    int whole = a.chunks == 1 || (slot >= 0 && rec.head.received + 1 == a.chunks);
    if (slot >= 0 && !whole && !slot_data(ctx, sum_name, slot, (size_t)a.total)) {
        fail(ctx, "staging slot %d of \"%s\" no longer holds %lld elements: refused", slot, show(sum_name).s,
             a.total);
        goto done;
    }
    int completes = whole && count + 1 == want;
    if (completes && !open_target(ctx, avg_name, "avg", &avg)) goto done;

    /* Everything checked: mutate. */
    if (new_round) RedisModule_DeleteKey(ids); /* a later round starts afresh */
    if (fresh) {
        withdraw_attempts(ctx, sum_name, NULL, NULL, NULL, 0);
        RedisModuleKey *g = RedisModule_OpenKey(ctx, gone_name, REDISMODULE_WRITE);
        RedisModule_DeleteKey(g);
        RedisModule_CloseKey(g);
        resize(sum, (size_t)a.total * 4, 0);
        RedisModuleString *meta = RedisModule_CreateString(ctx, "", 0);
        RedisModuleString *exp = RedisModule_CreateStringFromLongLong(ctx, a.expected);
        RedisModule_HashSet(ids, REDISMODULE_HASH_NONE, meta, exp, NULL);
        RedisModule_FreeString(ctx, meta);
        RedisModule_FreeString(ctx, exp);
    }
    if (new_round) write_round(ctx, round_name, a.round);
    open_blocks(ctx, sum_name, (size_t)a.total, fresh, &blocks);
    pl_i64 *hi, *lo;
    sum_planes(sum, (size_t)a.total, &hi, &lo);
    sum_add(&blocks, hi, lo, (size_t)a.offset, a.data, a.n);
    if (!whole) {
        if (slot < 0 && free_slot == same_id) {
            /* The failed attempt goes first, and is refused from now on: were it alive after
             * all, it and its retry would otherwise evict each other in turn. */
            slot_record old;
            if (open_slot(ctx, sum_name, same_id, &old, (size_t)a.total)) {
                RedisModuleString *name = RedisModule_CreateString(ctx, old.att, old.head.attlen);
                RedisModuleString *one = RedisModule_CreateString(ctx, "1", 1);
                RedisModule_HashSet(gone, REDISMODULE_HASH_NONE, name, one, NULL);
                RedisModule_FreeString(ctx, name);
                RedisModule_FreeString(ctx, one);
                withdraw_slot(ctx, sum_name, same_id, &old, hi, lo, (size_t)a.total);
            }
        }
        pl_f32 *staged = slot >= 0 ? slot_data(ctx, sum_name, slot, (size_t)a.total)
                                   : take_slot(ctx, sum_name, free_slot, &a, id, att, &rec);
        pl_copy_into(staged + a.offset, a.data, a.n, (size_t)a.total);
        rec.flags[a.index] = 1;
        rec.head.received++;
        size_t len;
        memcpy(RedisModule_StringDMA(rec.key, &len, REDISMODULE_WRITE), &rec.head, sizeof rec.head);
        reply_accum(ctx, count, want);
    } else {
        /* The attempt is whole: the contribution counts, and no other attempt of it does. */
        if (slot >= 0) {
            RedisModule_DeleteKey(rec.key);
            close_key(&rec.key);
        }
        record_id(ctx, ids, id, want, 0, a.result);
        count++;
        stats.counted++;
        stats.completed += completes;
        withdraw_attempts(ctx, sum_name, completes ? NULL : id, hi, lo, (size_t)a.total);
        if (completes) write_average(ctx, avg, avg_name, sum_name, &blocks, hi, lo, (size_t)a.total, count, a.round);
        reply_accum(ctx, count, want);
    }
    RedisModule_ReplicateVerbatim(ctx);

done:
    close_key(&blocks.key);
    close_key(&rec.key);
    close_key(&ids);
    close_key(&gone);
    close_key(&sum);
    close_key(&st.key);
    close_key(&avg);
    RedisModule_FreeString(ctx, ids_name);
    RedisModule_FreeString(ctx, round_name);
    RedisModule_FreeString(ctx, gone_name);
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------------------------------------
 * PL.CLOSE sum avg
 *
 * Closes an accumulation before every expected contribution arrived: the peer calls it at
 * the round's function deadline, so the round goes on with the gradients that did arrive.
 * Writes avg = sum / count, publishes it like a completing PL.ACCUM, and refuses every later
 * new contribution (a retry of a counted one still answers its state). Closing a complete
 * or closed accumulation changes nothing. Replies [count, expected, 1]; an error when no
 * contribution arrived (there is nothing to average).
 * ---------------------------------------------------------------------------------------- */
static int cmd_close(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3 && argc != 5) return RedisModule_WrongArity(ctx);
    finish_now(ctx, argv[1]); /* an average still being written goes first */
    if (!distinct_keys(ctx, argv + 1, 2) || !accumulation_names_ok(ctx, argv[1], argv[2])) return REDISMODULE_OK;
    long long round = -1;
    if (argc == 5) {
        if (!is_word(argv[3], "ROUND"))
            return fail(ctx, "unexpected argument \"%s\" (expected ROUND r)", show(argv[3]).s);
        if (!parse_int(ctx, argv[4], "ROUND", 0, PL_MAX_STEP, &round)) return REDISMODULE_OK;
        RedisModuleString *round_name = suffixed(ctx, argv[1], ":round");
        long long held = stored_round(ctx, round_name);
        RedisModule_FreeString(ctx, round_name);
        if (held == -2) return REDISMODULE_OK;
        if (held < round)
            return fail(ctx, "no contribution to \"%s\" arrived for round %lld: nothing to average",
                        show(argv[1]).s, round);
        if (held > round)
            return fail(ctx, "\"%s\" is summing round %lld already: round %lld is over", show(argv[1]).s,
                        held, round);
    }
    RedisModuleString *ids_name = ids_key_name(ctx, argv[1]);
    RedisModuleKey *ids = RedisModule_OpenKey(ctx, ids_name, REDISMODULE_READ | REDISMODULE_WRITE);
    RedisModuleKey *avg = NULL;
    block_map blocks = {NULL, NULL, 0, 0};
    tensor_key st = {NULL, 0};
    long long expected, count;
    int closed;
    int type = RedisModule_KeyType(ids);
    if (type == REDISMODULE_KEYTYPE_EMPTY) {
        fail(ctx, "no contribution to \"%s\" arrived: nothing to average", show(argv[1]).s);
        goto done;
    }
    if (type != REDISMODULE_KEYTYPE_HASH) {
        fail(ctx, "wrong type: \"%s\" holds %s, not an id set", show(ids_name).s, type_name(type));
        goto done;
    }
    if (!read_accum_state(ctx, ids, ids_name, &expected, &count, &closed)) goto done;
    if (closed || count >= expected) {
        reply_accum(ctx, count, closed ? count : expected);
        goto done;
    }
    if (count == 0) {
        fail(ctx, "no contribution to \"%s\" is complete: nothing to average", show(argv[1]).s);
        goto done;
    }
    size_t total;
    if (!open_sum(ctx, argv[1], &st, &total)) goto done;
    if (!open_target(ctx, argv[2], "avg", &avg)) goto done;

    /* Everything checked: mutate. Attempts still in progress never count. */
    pl_i64 *hi, *lo;
    sum_planes(st.key, total, &hi, &lo);
    withdraw_attempts(ctx, argv[1], NULL, hi, lo, total);
    open_blocks(ctx, argv[1], total, 0, &blocks);
    write_average(ctx, avg, argv[2], argv[1], &blocks, hi, lo, total, count, round);
    RedisModuleString *meta = RedisModule_CreateString(ctx, "", 0);
    RedisModuleString *mark = RedisModule_CreateStringFromLongLong(ctx, -count);
    RedisModule_HashSet(ids, REDISMODULE_HASH_NONE, meta, mark, NULL);
    RedisModule_FreeString(ctx, meta);
    RedisModule_FreeString(ctx, mark);
    RedisModule_ReplicateVerbatim(ctx);
    RedisModule_ReplyWithArray(ctx, 3);
    RedisModule_ReplyWithLongLong(ctx, count);
    RedisModule_ReplyWithLongLong(ctx, expected);
    RedisModule_ReplyWithLongLong(ctx, 1);

done:
    close_key(&blocks.key);
    close_key(&ids);
    close_key(&st.key);
    close_key(&avg);
    RedisModule_FreeString(ctx, ids_name);
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------------------------------------
 * PL.SGD param grad velocity lr momentum [DAMPENING d] [WD wd] [NESTEROV] [RANGE offset count [FIRST]]
 *
 * One PyTorch-style SGD step in place on the parameters, with the velocity kept beside
 * them (created on the first step). Runs on the averaged gradient, so it never leaves the
 * database.
 *
 * With RANGE, only elements [offset, offset + count) take the step: a caller cuts one big
 * update into commands short enough not to stall the server's other clients (the step is
 * element-wise, so the pieces give the whole step's bytes). The velocity must then exist at
 * full length, and FIRST says this is the first step (v = g'), which a missing velocity
 * says otherwise.
 * ---------------------------------------------------------------------------------------- */

/* An update's RANGE clause: where it starts and how many elements. */
typedef struct {
    int given;
    long long offset, count;
} update_range;

/* Parses "RANGE offset count" at argv[i] (the word already matched); 0 on error. */
static int parse_range_clause(RedisModuleCtx *ctx, RedisModuleString **argv, int i, update_range *r) {
    if (!parse_int(ctx, argv[i + 1], "RANGE offset", 0, PL_MAX_ELEMENTS, &r->offset) ||
        !parse_int(ctx, argv[i + 2], "RANGE count", 1, PL_MAX_ELEMENTS, &r->count))
        return 0;
    r->given = 1;
    return 1;
}

/* Checks a RANGE against the parameters' length; replies the error and returns 0 otherwise. */
static int range_fits(RedisModuleCtx *ctx, const update_range *r, size_t n, RedisModuleString *name) {
    if (!r->given || (size_t)(r->offset + r->count) <= n) return 1;
    fail(ctx, "RANGE [%lld, %lld) is outside the parameters \"%s\" of %zu elements", r->offset,
         r->offset + r->count, show(name).s, n);
    return 0;
}

/* The gradient's elements a step reads: the RANGE (checked against the parameters' n
 * elements) or all; NULL, with the error replied, when it does not fit or holds NaN/Inf. */
static const pl_f32 *step_gradient(RedisModuleCtx *ctx, RedisModuleString **argv, tensor_key *g, size_t n_params,
                                   const update_range *r, size_t *at, size_t *n) {
    if (!range_fits(ctx, r, n_params, argv[1])) return NULL;
    *at = r->given ? (size_t)r->offset : 0;
    *n = r->given ? (size_t)r->count : n_params;
    const pl_f32 *gd = dma(g->key, REDISMODULE_READ) + *at;
    size_t bad = pl_first_nonfinite(gd, *n);
    if (bad < *n) {
        fail(ctx, "gradient \"%s\" has a non-finite value at element %zu", show(argv[2]).s, *at + bad);
        return NULL;
    }
    return gd;
}

static int parse_sgd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, pl_sgd_opts *o,
                     update_range *range) {
    memset(o, 0, sizeof *o);
    memset(range, 0, sizeof *range);
    double lr, mom;
    if (!parse_real(ctx, argv[4], "lr", 0, 0, 10, 0, &lr)) return 0;
    if (!parse_real(ctx, argv[5], "momentum", 0, 0, 0.999, 0, &mom)) return 0;
    o->lr = (float)lr;
    o->momentum = (float)mom;
    int seen_d = 0, seen_wd = 0;
    double d = 0, wd = 0;
    for (int i = 6; i < argc; i++) {
        if (is_word(argv[i], "NESTEROV") && !o->nesterov) {
            o->nesterov = 1;
        } else if (is_word(argv[i], "RANGE") && !range->given && i + 2 < argc) {
            if (!parse_range_clause(ctx, argv, i, range)) return 0;
            i += 2;
        } else if (is_word(argv[i], "FIRST") && !o->first) {
            o->first = 1;
        } else if (is_word(argv[i], "DAMPENING") && !seen_d && i + 1 < argc) {
            if (!parse_real(ctx, argv[++i], "DAMPENING", 0, 0, 1, 0, &d)) return 0;
            seen_d = 1;
        } else if (is_word(argv[i], "WD") && !seen_wd && i + 1 < argc) {
            if (!parse_real(ctx, argv[++i], "WD", 0, 0, 1, 0, &wd)) return 0;
            seen_wd = 1;
        } else {
            return fail(ctx, "unexpected argument \"%s\" (options: DAMPENING d, WD wd, NESTEROV, "
                        "RANGE offset count, FIRST; each once)", show(argv[i]).s), 0;
        }
    }
    if (o->first && !range->given) return fail(ctx, "FIRST goes with RANGE (without it, a missing velocity says so)"), 0;
    if (o->nesterov && (mom <= 0 || d != 0))
        return fail(ctx, "NESTEROV needs a momentum > 0 and no dampening"), 0;
    o->dampening = (float)d;
    o->wd = (float)wd;
    return distinct_keys(ctx, argv + 1, 3);
}

static int cmd_sgd(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 6 || argc > 15) return RedisModule_WrongArity(ctx);
    pl_sgd_opts o;
    update_range r;
    if (!parse_sgd(ctx, argv, argc, &o, &r)) return REDISMODULE_OK;
    tensor_key p = {NULL, 0}, g = {NULL, 0}, v = {NULL, 0};
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, "parameters", 0, &p) ||
        !open_tensor(ctx, argv[2], REDISMODULE_READ, "gradient", 0, &g) ||
        !open_tensor(ctx, argv[3], REDISMODULE_READ | REDISMODULE_WRITE, "velocity", !r.given, &v))
        goto done;
    if (g.n != p.n || (v.n != 0 && v.n != p.n)) {
        fail(ctx, "%s has %zu elements, expected %zu (the parameters)",
             g.n != p.n ? "gradient" : "velocity", g.n != p.n ? g.n : v.n, p.n);
        goto done;
    }
    size_t at, n;
    const pl_f32 *gd = step_gradient(ctx, argv, &g, p.n, &r, &at, &n);
    if (!gd) goto done;
    if (!r.given) o.first = v.n == 0;
    pl_f32 *vd = v.n == 0 ? resize(v.key, p.n, 1) : dma(v.key, REDISMODULE_WRITE);
    pl_sgd(dma(p.key, REDISMODULE_WRITE) + at, gd, vd + at, n, &o);
    RedisModule_ReplicateVerbatim(ctx);
    RedisModule_ReplyWithSimpleString(ctx, "OK");
done:
    close_key(&p.key);
    close_key(&g.key);
    close_key(&v.key);
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------------------------------------
 * PL.ADAM param grad m v step lr [BETA1 b1] [BETA2 b2] [EPS e] [WD wd] [DECOUPLED]
 *                                  [RANGE offset count STEP t]
 *
 * One Adam (or AdamW with DECOUPLED) step in place, with bias correction. The moments are
 * created as zeros on the first step; `step` is an integer string key, missing = 0, and
 * the reply is the new step count.
 *
 * With RANGE (an update cut into pieces, as PL.SGD's), the moments must exist at full
 * length, STEP gives the step count t the piece takes (every piece of one step the same t),
 * and the step key is neither read nor written: the caller sets it once the last piece is in.
 * ---------------------------------------------------------------------------------------- */
static int parse_adam(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, pl_adam_opts *o,
                      update_range *range) {
    memset(o, 0, sizeof *o);
    memset(range, 0, sizeof *range);
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    if (!parse_real(ctx, argv[6], "lr", 0, 0, 1, 0, &o->lr)) return 0;
    int seen[4] = {0, 0, 0, 0};
    static const char *names[4] = {"BETA1", "BETA2", "EPS", "WD"};
    for (int i = 7; i < argc; i++) {
        int w = -1;
        for (int k = 0; k < 4; k++)
            if (is_word(argv[i], names[k])) w = k;
        if (w >= 0 && !seen[w] && i + 1 < argc) {
            seen[w] = 1;
            RedisModuleString *val = argv[++i];
            int ok = w == 0   ? parse_real(ctx, val, "BETA1", 0, 0, 1, 1, &o->beta1)
                     : w == 1 ? parse_real(ctx, val, "BETA2", 0, 0, 1, 1, &o->beta2)
                     : w == 2 ? parse_real(ctx, val, "EPS", 0, 1, 1, 0, &o->eps)
                              : parse_real(ctx, val, "WD", 0, 0, 1, 0, &o->wd);
            if (!ok) return 0;
        } else if (is_word(argv[i], "DECOUPLED") && !o->decoupled) {
            o->decoupled = 1;
        } else if (is_word(argv[i], "RANGE") && !range->given && i + 2 < argc) {
            if (!parse_range_clause(ctx, argv, i, range)) return 0;
            i += 2;
        } else if (is_word(argv[i], "STEP") && o->step == 0 && i + 1 < argc) {
            if (!parse_int(ctx, argv[++i], "STEP", 1, PL_MAX_STEP, &o->step)) return 0;
        } else {
            return fail(ctx, "unexpected argument \"%s\" (options: BETA1, BETA2, EPS, WD with a "
                        "value, DECOUPLED, RANGE offset count with STEP t; each once)", show(argv[i]).s), 0;
        }
    }
    if (range->given != (o->step != 0)) return fail(ctx, "RANGE and STEP go together: a piece of a step says which step it is"), 0;
    return distinct_keys(ctx, argv + 1, 5);
}

/* Reads the step count key: missing = 0, else a string holding an integer >= 0. */
static int read_step(RedisModuleCtx *ctx, RedisModuleKey *key, RedisModuleString *name,
                     long long *step) {
    int type = RedisModule_KeyType(key);
    *step = 0;
    if (type == REDISMODULE_KEYTYPE_EMPTY) return 1;
    if (type != REDISMODULE_KEYTYPE_STRING) {
        fail(ctx, "wrong type: step \"%s\" holds %s, not a step count", show(name).s,
             type_name(type));
        return 0;
    }
    size_t len;
    const char *p = RedisModule_StringDMA(key, &len, REDISMODULE_READ);
    RedisModuleString *s = RedisModule_CreateString(ctx, p, len);
    int ok = RedisModule_StringToLongLong(s, step) == REDISMODULE_OK && *step >= 0 &&
             *step < PL_MAX_STEP;
    if (!ok) fail(ctx, "step \"%s\" holds \"%s\", not a step count", show(name).s, show(s).s);
    RedisModule_FreeString(ctx, s);
    return ok;
}

static int cmd_adam(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 7 || argc > 21) return RedisModule_WrongArity(ctx);
    pl_adam_opts o;
    update_range r;
    if (!parse_adam(ctx, argv, argc, &o, &r)) return REDISMODULE_OK;
    const int rw = REDISMODULE_READ | REDISMODULE_WRITE;
    tensor_key p = {NULL, 0}, g = {NULL, 0}, m = {NULL, 0}, v = {NULL, 0};
    RedisModuleKey *sk = NULL;
    long long step = o.step - 1; /* a piece's given step; the key's otherwise */
    if (!open_tensor(ctx, argv[1], rw, "parameters", 0, &p) ||
        !open_tensor(ctx, argv[2], REDISMODULE_READ, "gradient", 0, &g) ||
        !open_tensor(ctx, argv[3], rw, "first moment", !r.given, &m) ||
        !open_tensor(ctx, argv[4], rw, "second moment", !r.given, &v))
        goto done;
    if (!r.given) {
        sk = RedisModule_OpenKey(ctx, argv[5], rw);
        if (!read_step(ctx, sk, argv[5], &step)) goto done;
    }
    if (g.n != p.n || (m.n && m.n != p.n) || (v.n && v.n != p.n)) {
        const char *what = g.n != p.n ? "gradient" : (m.n && m.n != p.n) ? "first moment"
                                                                          : "second moment";
        size_t n = g.n != p.n ? g.n : (m.n && m.n != p.n) ? m.n : v.n;
        fail(ctx, "%s has %zu elements, expected %zu (the parameters)", what, n, p.n);
        goto done;
    }
    size_t at, n;
    const pl_f32 *gd = step_gradient(ctx, argv, &g, p.n, &r, &at, &n);
    if (!gd) goto done;
    o.step = step + 1;
    pl_f32 *md = m.n ? dma(m.key, REDISMODULE_WRITE) : resize(m.key, p.n, 1);
    pl_f32 *vd = v.n ? dma(v.key, REDISMODULE_WRITE) : resize(v.key, p.n, 1);
    pl_adam(dma(p.key, REDISMODULE_WRITE) + at, gd, md + at, vd + at, n, &o);
    if (!r.given) {
        RedisModuleString *s = RedisModule_CreateStringFromLongLong(ctx, o.step);
        RedisModule_StringSet(sk, s);
        RedisModule_FreeString(ctx, s);
    }
    RedisModule_ReplicateVerbatim(ctx);
    RedisModule_ReplyWithLongLong(ctx, o.step);
done:
    close_key(&p.key);
    close_key(&g.key);
    close_key(&m.key);
    close_key(&v.key);
    close_key(&sk);
    return REDISMODULE_OK;
}

/* ------------------------------------------------------------------------------------------
 * PL.AGGREGATE dst [RANGE offset count] rule n key1 .. keyn [OFFSETS o1 .. on]
 *                                           rule: MEAN | MEDIAN | TRIMMED k | KRUM f m
 *
 * With RANGE, only elements [offset, offset + count) are aggregated, into a dst that already
 * holds the inputs' length: a caller cuts one big aggregation into commands short enough not
 * to stall the server's other clients. The coordinate-wise rules only (KRUM needs whole
 * vectors).
 *
 * With OFFSETS (after RANGE), input j's elements [oj, oj + count) are aggregated into dst's
 * [offset, offset + count): the inputs may differ in length, and dst need only hold the range.
 * A sharded exchange's owner aggregates its slice of its own average (at the slice's offset)
 * with the slices the others sent (at 0) straight into its place in the full-length
 * aggregate: no copy of either, in or out. The inputs are then taken in the order given, not
 * sorted by name: names of different kinds (an average, the others' parts) would sort the
 * owner's own input out of its place, and the mean's bytes would differ from those of
 * exchange "all", which sums the same values in the peers' order. The caller gives that order.
 *
 * Aggregates the peers' tensors into dst. The keys are sorted by name first, so every peer
 * that aggregates the same inputs, whatever order they arrived in, computes the same bytes:
 * the replicas of the model stay bit-identical. Robust rules (MEDIAN, TRIMMED, KRUM) bound
 * the influence of faulty or Byzantine peers.
 * ---------------------------------------------------------------------------------------- */

enum { RULE_MEAN, RULE_MEDIAN, RULE_TRIMMED, RULE_KRUM };

/* Where the rule word is: after a RANGE clause when there is one. */
static int aggregate_rule_at(RedisModuleString **argv, int argc) {
    return argc > 2 && is_word(argv[2], "RANGE") ? 5 : 2;
}

/* Where the input keys start for this rule word (and the rule), or 0 if unknown. */
static int aggregate_keys_start(RedisModuleString **argv, int argc, int *rule) {
    int at = aggregate_rule_at(argv, argc);
    if (argc <= at) return 0;
    if (is_word(argv[at], "MEAN")) return *rule = RULE_MEAN, at + 2;
    if (is_word(argv[at], "MEDIAN")) return *rule = RULE_MEDIAN, at + 2;
    if (is_word(argv[at], "TRIMMED")) return *rule = RULE_TRIMMED, at + 3;
    if (is_word(argv[at], "KRUM")) return *rule = RULE_KRUM, at + 4;
    return 0;
}

/* For cluster routing and ACLs: dst, then the inputs (getkeys-api). */
static int aggregate_getkeys(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    int rule;
    /* With flags where the server knows them: ACLs then need write access to dst only. */
    const int dst = (int)(REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE);
    const int in = (int)(REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS);
    if (argc > 1) {
        if (RedisModule_KeyAtPosWithFlags) RedisModule_KeyAtPosWithFlags(ctx, 1, dst);
        else RedisModule_KeyAtPos(ctx, 1);
    }
    int start = aggregate_keys_start(argv, argc, &rule);
    /* n keys, then maybe OFFSETS and numbers; all that follows when n is not a number yet */
    long long n;
    int end = argc;
    /* start may lie past the arguments (`PL.AGGREGATE d KRUM`: asked before the arity check) */
    if (start > 0 && start <= argc && RedisModule_StringToLongLong(argv[start - 1], &n) == REDISMODULE_OK &&
        n >= 0 && n < argc - start)
        end = start + (int)n;
    if (start > 0)
        for (int i = start; i < end; i++) {
            if (RedisModule_KeyAtPosWithFlags) RedisModule_KeyAtPosWithFlags(ctx, i, in);
            else RedisModule_KeyAtPos(ctx, i);
        }
    return REDISMODULE_OK;
}

typedef struct {
    int rule;
    long long n, trim, f, m;
    RedisModuleString **keys; /* argv slice, sorted in place into canonical order */
    int ranged;
    long long offset, count; /* with RANGE */
    long long *from;         /* with OFFSETS: where each input's range starts (keys' order) */
} aggregate_args;

static int parse_aggregate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc,
                           aggregate_args *a) {
    int at = aggregate_rule_at(argv, argc);
    if (at > 2) {
        if (argc < 8) return RedisModule_WrongArity(ctx), 0;
        a->ranged = 1;
        if (!parse_int(ctx, argv[3], "RANGE offset", 0, PL_MAX_ELEMENTS, &a->offset)) return 0;
        if (!parse_int(ctx, argv[4], "RANGE count", 1, PL_MAX_ELEMENTS, &a->count)) return 0;
    }
    int start = aggregate_keys_start(argv, argc, &a->rule);
    if (start == 0)
        return fail(ctx, "unknown rule \"%s\" (MEAN, MEDIAN, TRIMMED k, KRUM f m)",
                    show(argv[at]).s), 0;
    if (a->ranged && a->rule == RULE_KRUM)
        return fail(ctx, "KRUM needs whole vectors: RANGE is for MEAN, MEDIAN and TRIMMED"), 0;
    if (argc <= start) return RedisModule_WrongArity(ctx), 0;
    if (!parse_int(ctx, argv[start - 1], "n", 1, PL_MAX_INPUTS, &a->n)) return 0;
    int keys_end = argc;
    if (a->n < argc - start && is_word(argv[start + a->n], "OFFSETS")) {
        keys_end = start + (int)a->n;
        if (!a->ranged) return fail(ctx, "OFFSETS needs RANGE (the range in dst the inputs' ranges go to)"), 0;
        if (argc - keys_end - 1 != a->n)
            return fail(ctx, "OFFSETS needs %lld offsets, one per key, got %d", a->n, argc - keys_end - 1), 0;
        a->from = RedisModule_Alloc((size_t)a->n * sizeof *a->from);
        for (long long j = 0; j < a->n; j++)
            if (!parse_int(ctx, argv[keys_end + 1 + j], "an offset of OFFSETS", 0, PL_MAX_ELEMENTS, &a->from[j])) return 0;
    }
    if (a->n != keys_end - start)
        return fail(ctx, "n is %lld but %d keys follow", a->n, keys_end - start), 0;
    if (a->rule == RULE_TRIMMED) {
        if (!parse_int(ctx, argv[at + 1], "TRIMMED k", 0, PL_MAX_INPUTS, &a->trim)) return 0;
        if (2 * a->trim >= a->n)
            return fail(ctx, "TRIMMED %lld needs more than %lld inputs, got %lld", a->trim,
                        2 * a->trim, a->n), 0;
    }
    if (a->rule == RULE_KRUM) {
        if (!parse_int(ctx, argv[at + 1], "KRUM f", 0, PL_MAX_INPUTS, &a->f)) return 0;
        if (!parse_int(ctx, argv[at + 2], "KRUM m", 1, PL_MAX_INPUTS, &a->m)) return 0;
        if (a->n <= 2 * a->f + 2)
            return fail(ctx, "KRUM %lld needs more than %lld inputs, got %lld", a->f,
                        2 * a->f + 2, a->n), 0;
        if (a->m > a->n) return fail(ctx, "KRUM m is %lld but only %lld inputs", a->m, a->n), 0;
    }
    a->keys = argv + start;
    if (a->from) {
        /* the order given (see above): no two alike */
        for (long long j = 1; j < a->n; j++)
            for (long long i = 0; i < j; i++)
                if (name_cmp(a->keys[i], a->keys[j]) == 0)
                    return fail(ctx, "key \"%s\" is given twice", show(a->keys[j]).s), 0;
        return 1;
    }
    /* canonical order: insertion sort by name (n is small), then no duplicates */
    for (long long j = 1; j < a->n; j++) {
        RedisModuleString *x = a->keys[j];
        long long t = j;
        while (t > 0 && name_cmp(a->keys[t - 1], x) > 0) {
            a->keys[t] = a->keys[t - 1];
            t--;
        }
        a->keys[t] = x;
    }
    for (long long j = 1; j < a->n; j++)
        if (name_cmp(a->keys[j - 1], a->keys[j]) == 0)
            return fail(ctx, "key \"%s\" is given twice", show(a->keys[j]).s), 0;
    return 1;
}

/* Checks every input (a finite tensor, all of one length) without changing anything. */
static int check_inputs(RedisModuleCtx *ctx, const aggregate_args *a, size_t *len) {
    for (long long j = 0; j < a->n; j++) {
        tensor_key t;
        if (!open_tensor(ctx, a->keys[j], REDISMODULE_READ, "input", 0, &t)) return 0;
        if (a->from) {
            /* each input its own range: only that range must fit */
            if ((size_t)(a->from[j] + a->count) > t.n) {
                close_key(&t.key);
                return fail(ctx, "input \"%s\": [%lld, %lld) runs past its %zu elements", show(a->keys[j]).s,
                            a->from[j], a->from[j] + a->count, t.n), 0;
            }
        } else if (j > 0 && t.n != *len) {
            close_key(&t.key);
            return fail(ctx, "input \"%s\" has %zu elements, expected %zu", show(a->keys[j]).s,
                        t.n, *len), 0;
        }
        *len = t.n;
        if (!a->from && a->ranged && (size_t)(a->offset + a->count) > t.n) {
            close_key(&t.key);
            return fail(ctx, "RANGE [%lld, %lld) runs past the inputs' %zu elements", a->offset,
                        a->offset + a->count, t.n), 0;
        }
        size_t from = a->from ? (size_t)a->from[j] : a->ranged ? (size_t)a->offset : 0;
        size_t n = a->ranged ? (size_t)a->count : t.n;
        size_t bad = from + pl_first_nonfinite(dma(t.key, REDISMODULE_READ) + from, n);
        close_key(&t.key);
        if (bad < from + n)
            return fail(ctx, "input \"%s\" has a non-finite value at element %zu",
                        show(a->keys[j]).s, bad), 0;
    }
    return 1;
}

static void run_rule(const aggregate_args *a, pl_f32 *out, const pl_f32 **in, size_t len,
                     void *scratch) {
    size_t k = (size_t)a->n;
    const pl_f32 *const *cin = (const pl_f32 *const *)in;
    if (a->rule == RULE_MEAN) {
        pl_mean(out, cin, k, len);
    } else if (a->rule == RULE_MEDIAN) {
        pl_median(out, cin, k, len, scratch);
    } else if (a->rule == RULE_TRIMMED) {
        pl_trimmed(out, cin, k, len, (size_t)a->trim, scratch);
    } else {
        size_t *chosen = scratch;
        double *work = (double *)(chosen + k);
        pl_krum_select(cin, k, len, (size_t)a->f, (size_t)a->m, chosen, work);
        for (long long j = 0; j < a->m; j++) in[j] = in[chosen[j]]; /* chosen is ascending */
        pl_mean(out, cin, (size_t)a->m, len);
    }
}

/* The dst of an aggregation with OFFSETS: an existing tensor holding the range. An input it
 * is must be read at that same range (the kernels read an element before writing it). */
static int check_offsets_dst(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleKey *dst,
                             const aggregate_args *a) {
    size_t bytes = RedisModule_KeyType(dst) == REDISMODULE_KEYTYPE_STRING ? RedisModule_ValueLength(dst) : 0;
    if (bytes % 4 != 0 || bytes / 4 < (size_t)(a->offset + a->count))
        return fail(ctx, "with OFFSETS, dst \"%s\" must already hold RANGE [%lld, %lld)", show(name).s,
                    a->offset, a->offset + a->count), 0;
    for (long long j = 0; j < a->n; j++)
        if (name_cmp(a->keys[j], name) == 0 && a->from[j] != a->offset)
            return fail(ctx, "dst \"%s\" is also an input, read at %lld: with OFFSETS, dst may be an input only at RANGE's offset %lld",
                        show(name).s, a->from[j], a->offset), 0;
    return 1;
}

static int aggregate_checked(RedisModuleCtx *ctx, RedisModuleString **argv, int argc, aggregate_args *ap) {
    size_t len = 0;
    if (!parse_aggregate(ctx, argv, argc, ap) || !check_inputs(ctx, ap, &len))
        return REDISMODULE_OK;
    const aggregate_args a = *ap;
    RedisModuleKey *dst;
    if (!open_target(ctx, argv[1], "dst", &dst)) return REDISMODULE_OK;
    if (a.from && !check_offsets_dst(ctx, argv[1], dst, &a)) {
        RedisModule_CloseKey(dst);
        return REDISMODULE_OK;
    }
    if (!a.from && a.ranged && (RedisModule_KeyType(dst) != REDISMODULE_KEYTYPE_STRING || RedisModule_ValueLength(dst) != len * 4)) {
        RedisModule_CloseKey(dst);
        return fail(ctx, "with RANGE, dst \"%s\" must already hold the inputs' %zu elements", show(argv[1]).s, len),
               REDISMODULE_OK;
    }

    size_t k = (size_t)a.n;
    RedisModuleKey **keys = RedisModule_Alloc(k * sizeof *keys);
    const pl_f32 **in = RedisModule_Alloc(k * sizeof *in);
    size_t krum_bytes = k * sizeof(size_t) + (k * k + k) * sizeof(double);
    size_t sort_bytes = k * PL_SORT_BLOCK * sizeof(int32_t);
    void *scratch = RedisModule_Alloc(krum_bytes > sort_bytes ? krum_bytes : sort_bytes);
    /* dst first: resizing it may replace its string object, and dst may be an input. All
     * kernels write a dst element only after reading every input's same element. */
    pl_f32 *out = a.ranged ? NULL : resize(dst, len, 0);
    size_t from = a.ranged ? (size_t)a.offset : 0, n = a.ranged ? (size_t)a.count : len;
    for (size_t j = 0; j < k; j++) {
        keys[j] = RedisModule_OpenKey(ctx, a.keys[j], REDISMODULE_READ);
        in[j] = dma(keys[j], REDISMODULE_READ) + (a.from ? (size_t)a.from[j] : from);
    }
    out = dma(dst, REDISMODULE_WRITE) + from;
    run_rule(&a, out, in, n, scratch);
    for (size_t j = 0; j < k; j++) RedisModule_CloseKey(keys[j]);
    RedisModule_CloseKey(dst);
    RedisModule_Free(keys);
    RedisModule_Free((void *)in);
    RedisModule_Free(scratch);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* One place frees the OFFSETS array, whichever reply aggregate_checked ends with. */
static int cmd_aggregate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 5) return RedisModule_WrongArity(ctx);
    aggregate_args a = {0, 0, 0, 0, 0, NULL, 0, 0, 0, NULL};
    int ok = aggregate_checked(ctx, argv, argc, &a);
    RedisModule_Free(a.from);
    return ok;
}

/* ------------------------------------------------------------------------------------------
 * PL.SCALE key factor
 *
 * Multiplies a tensor by a finite factor in place (e.g. sum -> mean by 1/n, or a learning
 * rate schedule applied to an update).
 * ---------------------------------------------------------------------------------------- */
static int cmd_scale(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    double factor;
    if (!parse_real(ctx, argv[2], "factor", -PL_FLT_MAX, 0, PL_FLT_MAX, 0, &factor))
        return REDISMODULE_OK;
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE, "tensor", 0, &t))
        return REDISMODULE_OK;
    pl_scale(dma(t.key, REDISMODULE_WRITE), t.n, (float)factor);
    close_key(&t.key);
    RedisModule_ReplicateVerbatim(ctx);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ------------------------------------------------------------------------------------------
 * PL.CHECKSUM key [RANGE offset count [FROM state]]
 *
 * 16 hex digits of a 64-bit checksum of the tensor's 32-bit words (pl_checksum: FNV-1a in
 * lanes; the same function as checksum() in src/tensor/reference.ts): peers compare
 * parameters bit for bit without shipping them. With RANGE, over elements
 * [offset, offset + count) only, continuing from `state` (16 hex digits, the previous piece's
 * answer): pieces in order chain to the whole tensor's checksum, each short enough not to
 * stall the server's other clients. A continued piece starts at a multiple of
 * PL_CHECKSUM_BLOCK elements (the checksum's blocks), which every piece but the last then is.
 * ---------------------------------------------------------------------------------------- */
static int cmd_checksum(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2 && argc != 5 && argc != 7) return RedisModule_WrongArity(ctx);
    long long offset = 0, count = -1;
    uint64_t h = PL_CHECKSUM_BASIS;
    if (argc >= 5) {
        if (!is_word(argv[2], "RANGE")) return fail(ctx, "unexpected argument \"%s\" (RANGE offset count [FROM state])", show(argv[2]).s), REDISMODULE_OK;
        if (!parse_int(ctx, argv[3], "RANGE offset", 0, PL_MAX_ELEMENTS, &offset) ||
            !parse_int(ctx, argv[4], "RANGE count", 1, PL_MAX_ELEMENTS, &count))
            return REDISMODULE_OK;
    }
    if (argc == 7) {
        size_t len;
        const char *s = RedisModule_StringPtrLen(argv[6], &len);
        int ok = is_word(argv[5], "FROM") && len == 16;
        h = 0;
        for (size_t i = 0; ok && i < 16; i++) {
            char c = s[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) ok = 0;
            else h = (h << 4) | (uint64_t)d;
        }
        if (!ok) return fail(ctx, "FROM needs a state of 16 hex digits (a previous answer)"), REDISMODULE_OK;
        if (offset % PL_CHECKSUM_BLOCK != 0)
            return fail(ctx, "a piece continued with FROM starts at a multiple of %d elements, not at %lld (the checksum's blocks)",
                        PL_CHECKSUM_BLOCK, offset), REDISMODULE_OK;
    }
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ, "tensor", 0, &t)) return REDISMODULE_OK;
    if (count < 0) count = (long long)t.n;
    if ((size_t)(offset + count) > t.n) {
        close_key(&t.key);
        return fail(ctx, "RANGE [%lld, %lld) runs past \"%s\"'s %zu elements", offset, offset + count, show(argv[1]).s, t.n), REDISMODULE_OK;
    }
    h = pl_checksum_from(h, (const pl_u32 *)dma(t.key, REDISMODULE_READ) + offset, (size_t)count);
    close_key(&t.key);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    return RedisModule_ReplyWithStringBuffer(ctx, hex, 16);
}

/* AGGREGATE answers key-position requests from cluster routing and ACLs first. */
static int cmd_aggregate_entry(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return aggregate_getkeys(ctx, argv, argc);
    return cmd_aggregate(ctx, argv, argc);
}

/* ------------------------------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------------------------- */

/* What a command does with each of its keys, by position (0 ends the list): for ACLs, which
 * tell a reader from a writer by these (a key spec per key, Redis 7.0). */
#define KEY_READ (REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS)
#define KEY_UPDATE (REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE)
#define KEY_OVERWRITE (REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE)
#define PL_MAX_KEYS 5

typedef struct {
    int pos;
    uint64_t flags;
} key_use;

typedef struct {
    const char *name;
    RedisModuleCmdFunc fn;
    const char *flags;
    int first, last, step;
    key_use keys[PL_MAX_KEYS + 1];
} command_spec;

/* PL.STATS: the accumulation counters since the server started, as name/value pairs. */
static int cmd_stats(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    const struct { const char *name; long long v; } f[] = {
        {"counted", stats.counted}, {"completed", stats.completed}, {"repeats", stats.repeats},
        {"withdrawn", stats.withdrawn}, {"late", stats.late},
    };
    RedisModule_ReplyWithArray(ctx, (long)(2 * (sizeof f / sizeof f[0])));
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        RedisModule_ReplyWithSimpleString(ctx, f[i].name);
        RedisModule_ReplyWithLongLong(ctx, f[i].v);
    }
    return REDISMODULE_OK;
}

static const command_spec COMMANDS[] = {
    {"pl.set", cmd_set, "write deny-oom", 1, 1, 1, {{1, KEY_OVERWRITE}}},
    {"pl.setrange", cmd_setrange, "write deny-oom", 1, 1, 1, {{1, KEY_UPDATE}}},
    {"pl.copyrange", cmd_copyrange, "write deny-oom", 1, 3, 2, {{1, KEY_UPDATE}, {3, KEY_READ}}},
    {"pl.zeros", cmd_zeros, "write deny-oom", 1, 1, 1, {{1, KEY_OVERWRITE}}},
    {"pl.len", cmd_len, "readonly fast", 1, 1, 1, {{1, KEY_READ}}},
    {"pl.getrange", cmd_getrange, "readonly", 1, 1, 1, {{1, KEY_READ}}},
    /* sum, avg; the id set "<sum>:ids" is derived (use a hash tag in cluster mode) */
    {"pl.accum", cmd_accum, "write deny-oom", 1, 2, 1, {{1, KEY_UPDATE}, {2, KEY_OVERWRITE}}},
    {"pl.push", cmd_push, "write deny-oom", 1, 2, 1, {{1, KEY_UPDATE}, {2, KEY_OVERWRITE}}},
    {"pl.close", cmd_close, "write deny-oom", 1, 2, 1, {{1, KEY_UPDATE}, {2, KEY_OVERWRITE}}},
    {"pl.sgd", cmd_sgd, "write deny-oom", 1, 3, 1, {{1, KEY_UPDATE}, {2, KEY_READ}, {3, KEY_UPDATE}}},
    {"pl.adam", cmd_adam, "write deny-oom", 1, 5, 1,
     {{1, KEY_UPDATE}, {2, KEY_READ}, {3, KEY_UPDATE}, {4, KEY_UPDATE}, {5, KEY_UPDATE}}},
    /* dst, then inputs at a position that depends on the rule: the getkeys-api says which */
    {"pl.aggregate", cmd_aggregate_entry, "write deny-oom getkeys-api", 1, 1, 1, {{0, 0}}},
    {"pl.scale", cmd_scale, "write deny-oom", 1, 1, 1, {{1, KEY_UPDATE}}},
    {"pl.checksum", cmd_checksum, "readonly", 1, 1, 1, {{1, KEY_READ}}},
    {"pl.stats", cmd_stats, "readonly fast", 0, 0, 0, {{0, 0}}},
    /* connects out to another server: admins only (its password is redacted from the slow log
     * and MONITOR) */
    {"pl.send", cmd_send, "readonly admin", 1, 1, 1, {{1, KEY_READ}}},
};

/* Declares a command's key specs where the server has the API (Redis >= 7.0). */
static int set_key_specs(RedisModuleCtx *ctx, const command_spec *c) {
    if (!RedisModule_GetCommand || !RedisModule_SetCommandInfo || c->keys[0].pos == 0) return REDISMODULE_OK;
    static const RedisModuleCommandInfoVersion version = {1, 2 * sizeof(const char *), sizeof(RedisModuleCommandKeySpec), 0};
    RedisModuleCommandKeySpec specs[PL_MAX_KEYS + 1];
    memset(specs, 0, sizeof specs);
    for (int i = 0; i < PL_MAX_KEYS && c->keys[i].pos > 0; i++) {
        specs[i].flags = c->keys[i].flags;
        specs[i].begin_search_type = REDISMODULE_KSPEC_BS_INDEX;
        specs[i].bs.index.pos = c->keys[i].pos;
        specs[i].find_keys_type = REDISMODULE_KSPEC_FK_RANGE;
        specs[i].fk.range.lastkey = 0;
        specs[i].fk.range.keystep = 1;
        specs[i].fk.range.limit = 0;
    }
    RedisModuleCommandInfo info;
    memset(&info, 0, sizeof info);
    info.version = &version;
    info.key_specs = specs;
    RedisModuleCommand *cmd = RedisModule_GetCommand(ctx, c->name);
    return cmd && RedisModule_SetCommandInfo(cmd, &info) == REDISMODULE_OK ? REDISMODULE_OK : REDISMODULE_ERR;
}

/* Fills every API pointer by name through the lookup function in the context's first
 * field (what redismodule.h's RedisModule_Init does). */
static int load_api(RedisModuleCtx *ctx) {
    int (*getapi)(const char *, void *) = (int (*)(const char *, void *))((void **)ctx)[0];
#define PL_LOAD_API(ret, name, params)                                                          \
    if (getapi("RedisModule_" #name, (void *)&RedisModule_##name) != REDISMODULE_OK ||         \
        RedisModule_##name == NULL)                                                            \
        return REDISMODULE_ERR;
    PL_REDIS_API(PL_LOAD_API)
#undef PL_LOAD_API
    /* Optional: an older server keeps the legacy key triple. */
#define PL_LOAD_OPTIONAL(ret, name, params) getapi("RedisModule_" #name, (void *)&RedisModule_##name);
    PL_REDIS_API_7(PL_LOAD_OPTIONAL)
#undef PL_LOAD_OPTIONAL
    return REDISMODULE_OK;
}

__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx,
                                                              RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    if (load_api(ctx) != REDISMODULE_OK) return REDISMODULE_ERR;
    RedisModule_SetModuleAttribs(ctx, "peerless", 1, REDISMODULE_APIVER_1);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        const command_spec *c = &COMMANDS[i];
        if (RedisModule_CreateCommand(ctx, c->name, c->fn, c->flags, c->first, c->last, c->step) !=
                REDISMODULE_OK ||
            set_key_specs(ctx, c) != REDISMODULE_OK)
            return REDISMODULE_ERR;
    }
    RedisModuleEvent persistence = {REDISMODULE_EVENT_PERSISTENCE, 1};
    if (RedisModule_SubscribeToServerEvent(ctx, persistence, finish_before_snapshot) != REDISMODULE_OK)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
