/*
 * command.h: what every command file of the module shares: one-line errors, argument
 * parsing and opening keys that hold tensors (defined in peerless.c).
 */
#ifndef PEERLESS_COMMAND_H
#define PEERLESS_COMMAND_H

#include <stddef.h>

#include "redismodule_min.h"

/* 2^27 elements = 512 MiB, the largest string Redis keeps (StringTruncate refuses more). */
#define PL_MAX_ELEMENTS (1LL << 27)

/* Replies "ERR peerless: <message>" (one line) and returns REDISMODULE_OK, so `return fail(...)`. */
__attribute__((format(printf, 2, 3))) int fail(RedisModuleCtx *ctx, const char *fmt, ...);

/* A printable, bounded rendering of a key name or argument for error messages. */
typedef struct {
    char s[72];
} shown;
shown show(const RedisModuleString *str);

/* Case-insensitive comparison of an argument with an upper-case ASCII word. */
int is_word(const RedisModuleString *arg, const char *word);

/* An integer in [min, max]; replies the error and returns 0 otherwise. */
int parse_int(RedisModuleCtx *ctx, RedisModuleString *arg, const char *what, long long min,
              long long max, long long *out);

typedef struct {
    RedisModuleKey *key;
    size_t n; /* elements; 0 when the key is missing */
} tensor_key;

void close_key(RedisModuleKey **key);

/* Opens `name` and checks it holds a tensor (a string, non-empty, a multiple of 4 bytes);
 * a missing key is allowed only when `may_be_missing`. Replies the error and returns 0
 * (with the key closed) otherwise. */
int open_tensor(RedisModuleCtx *ctx, RedisModuleString *name, int mode, const char *role,
                int may_be_missing, tensor_key *t);

/* PL.SEND (send.c). */
int cmd_send(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
