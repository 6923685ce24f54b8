/*
 * redismodule_min.h: the small part of the Redis module API that peerless uses.
 *
 * No redismodule.h ships with Debian's redis-server, so this header declares only
 * what we call. Redis hands every module a context whose first field is a lookup
 * function, `int getapi(const char *name, void *targetPtrPtr)`; pl_module_init()
 * (peerless.c) calls it once per name below to fill the function pointers.
 * Signatures and constants checked against redis 7.0 (src/redismodule.h, module.c).
 */
#ifndef PEERLESS_REDISMODULE_MIN_H
#define PEERLESS_REDISMODULE_MIN_H

#include <stddef.h>
#include <stdint.h>

#define REDISMODULE_OK 0
#define REDISMODULE_ERR 1
#define REDISMODULE_APIVER_1 1

/* Key open modes. */
#define REDISMODULE_READ (1 << 0)
#define REDISMODULE_WRITE (1 << 1)

/* RedisModule_KeyType() results. */
#define REDISMODULE_KEYTYPE_EMPTY 0
#define REDISMODULE_KEYTYPE_STRING 1
#define REDISMODULE_KEYTYPE_LIST 2
#define REDISMODULE_KEYTYPE_HASH 3
#define REDISMODULE_KEYTYPE_SET 4
#define REDISMODULE_KEYTYPE_ZSET 5
#define REDISMODULE_KEYTYPE_MODULE 6
#define REDISMODULE_KEYTYPE_STREAM 7

/* RedisModule_HashSet / HashGet flags. */
#define REDISMODULE_HASH_NONE 0
#define REDISMODULE_HASH_NX (1 << 0)
#define REDISMODULE_HASH_XX (1 << 1)
#define REDISMODULE_HASH_CFIELDS (1 << 2)
#define REDISMODULE_HASH_EXISTS (1 << 3)

typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleKey RedisModuleKey;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleBlockedClient RedisModuleBlockedClient;
typedef int (*RedisModuleCmdFunc)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
typedef void (*RedisModuleFreePrivData)(RedisModuleCtx *ctx, void *privdata);
typedef void (*RedisModuleTimerProc)(RedisModuleCtx *ctx, void *data);
typedef uint64_t RedisModuleTimerID;
/* Module file events on the server's own event loop (Redis 7.0): PL.SEND runs on them. */
#define REDISMODULE_EVENTLOOP_READABLE 1
#define REDISMODULE_EVENTLOOP_WRITABLE 2
typedef void (*RedisModuleEventLoopFunc)(int fd, void *user_data, int mask);

/* RedisModule_GetContextFlags(): a command replayed from the AOF, or sent by a master; one
 * inside a script or a transaction, or from another module (none of which may block). */
#define REDISMODULE_CTX_FLAGS_LUA (1 << 0)
#define REDISMODULE_CTX_FLAGS_MULTI (1 << 1)
#define REDISMODULE_CTX_FLAGS_REPLICATED (1 << 12)
#define REDISMODULE_CTX_FLAGS_LOADING (1 << 13)
#define REDISMODULE_CTX_FLAGS_DENY_BLOCKING (1 << 21)

/* Server events: a snapshot about to be written (in the process that writes it). */
typedef struct RedisModuleEvent {
    uint64_t id;
    uint64_t dataver;
} RedisModuleEvent;
typedef void (*RedisModuleEventCallback)(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent, void *data);
#define REDISMODULE_EVENT_PERSISTENCE 1
#define REDISMODULE_SUBEVENT_PERSISTENCE_RDB_START 0      /* a forked child: BGSAVE, replication */
#define REDISMODULE_SUBEVENT_PERSISTENCE_AOF_START 1      /* a forked child: AOF rewrite */
#define REDISMODULE_SUBEVENT_PERSISTENCE_SYNC_RDB_START 2 /* the server itself: SAVE, shutdown */
#define REDISMODULE_SUBEVENT_PERSISTENCE_SYNC_AOF_START 5 /* the server itself */

/* X(return type, name without the RedisModule_ prefix, parameter list) */
#define PL_REDIS_API(X)                                                                          \
    X(int, CreateCommand, (RedisModuleCtx *, const char *, RedisModuleCmdFunc, const char *,     \
                           int, int, int))                                                       \
    X(void, SetModuleAttribs, (RedisModuleCtx *, const char *, int, int))                        \
    X(int, WrongArity, (RedisModuleCtx *))                                                       \
    X(int, ReplyWithLongLong, (RedisModuleCtx *, long long))                                     \
    X(int, ReplyWithError, (RedisModuleCtx *, const char *))                                     \
    X(int, ReplyWithSimpleString, (RedisModuleCtx *, const char *))                              \
    X(int, ReplyWithArray, (RedisModuleCtx *, long))                                             \
    X(int, ReplyWithStringBuffer, (RedisModuleCtx *, const char *, size_t))                      \
    X(void *, OpenKey, (RedisModuleCtx *, RedisModuleString *, int))                             \
    X(void, CloseKey, (RedisModuleKey *))                                                        \
    X(int, KeyType, (RedisModuleKey *))                                                          \
    X(size_t, ValueLength, (RedisModuleKey *))                                                   \
    X(int, DeleteKey, (RedisModuleKey *))                                                        \
    X(int, StringSet, (RedisModuleKey *, RedisModuleString *))                                   \
    X(char *, StringDMA, (RedisModuleKey *, size_t *, int))                                      \
    X(int, StringTruncate, (RedisModuleKey *, size_t))                                           \
    X(int, HashSet, (RedisModuleKey *, int, ...))                                                \
    X(int, HashGet, (RedisModuleKey *, int, ...))                                                \
    X(const char *, StringPtrLen, (const RedisModuleString *, size_t *))                         \
    X(int, StringToLongLong, (const RedisModuleString *, long long *))                           \
    X(int, StringToDouble, (const RedisModuleString *, double *))                                \
    X(RedisModuleString *, CreateString, (RedisModuleCtx *, const char *, size_t))               \
    X(RedisModuleString *, CreateStringFromLongLong, (RedisModuleCtx *, long long))              \
    X(void, FreeString, (RedisModuleCtx *, RedisModuleString *))                                 \
    X(int, PublishMessage, (RedisModuleCtx *, RedisModuleString *, RedisModuleString *))         \
    X(int, ReplicateVerbatim, (RedisModuleCtx *))                                                \
    X(int, IsKeysPositionRequest, (RedisModuleCtx *))                                            \
    X(void, KeyAtPos, (RedisModuleCtx *, int))                                                   \
    X(void *, Alloc, (size_t))                                                                   \
    X(void, Free, (void *))                                                                      \
    X(RedisModuleBlockedClient *, BlockClient, (RedisModuleCtx *, RedisModuleCmdFunc,              \
                                                RedisModuleCmdFunc, RedisModuleFreePrivData,       \
                                                long long))                                        \
    X(int, UnblockClient, (RedisModuleBlockedClient *, void *))                                  \
    X(void *, GetBlockedClientPrivateData, (RedisModuleCtx *))                                   \
    X(int, GetSelectedDb, (RedisModuleCtx *))                                                    \
    X(int, SelectDb, (RedisModuleCtx *, int))                                                    \
    X(RedisModuleString *, CreateStringFromString, (RedisModuleCtx *, const RedisModuleString *)) \
    X(RedisModuleTimerID, CreateTimer, (RedisModuleCtx *, long long, RedisModuleTimerProc, void *)) \
    X(int, StopTimer, (RedisModuleCtx *, RedisModuleTimerID, void **))                           \
    X(RedisModuleCtx *, GetDetachedThreadSafeContext, (RedisModuleCtx *))                        \
    X(void, FreeThreadSafeContext, (RedisModuleCtx *))                                           \
    X(int, EventLoopAdd, (int, int, RedisModuleEventLoopFunc, void *))                           \
    X(int, EventLoopDel, (int, int))                                                             \
    X(int, GetContextFlags, (RedisModuleCtx *))                                                  \
    X(int, SubscribeToServerEvent, (RedisModuleCtx *, RedisModuleEvent, RedisModuleEventCallback))

#define PL_DECLARE_API(ret, name, params) extern ret(*RedisModule_##name) params;
PL_REDIS_API(PL_DECLARE_API)
#undef PL_DECLARE_API

/*
 * Key specs (Redis 7.0): what each key argument of a command does, so ACLs can tell a
 * read from a write (a user with read-only access to the parameters may still PL.GETRANGE
 * them). Layouts as in redis 7.0's redismodule.h; only what we fill in.
 */
#define REDISMODULE_CMD_KEY_RO (1ULL << 0)
#define REDISMODULE_CMD_KEY_RW (1ULL << 1)
#define REDISMODULE_CMD_KEY_OW (1ULL << 2)
#define REDISMODULE_CMD_KEY_ACCESS (1ULL << 4)
#define REDISMODULE_CMD_KEY_UPDATE (1ULL << 5)

typedef enum { REDISMODULE_KSPEC_BS_INVALID = 0, REDISMODULE_KSPEC_BS_UNKNOWN, REDISMODULE_KSPEC_BS_INDEX,
               REDISMODULE_KSPEC_BS_KEYWORD } RedisModuleKeySpecBeginSearchType;
typedef enum { REDISMODULE_KSPEC_FK_OMITTED = 0, REDISMODULE_KSPEC_FK_UNKNOWN, REDISMODULE_KSPEC_FK_RANGE,
               REDISMODULE_KSPEC_FK_KEYNUM } RedisModuleKeySpecFindKeysType;

typedef struct {
    const char *notes;
    uint64_t flags;
    RedisModuleKeySpecBeginSearchType begin_search_type;
    union {
        struct { int pos; } index;
        struct { const char *keyword; int startfrom; } keyword;
    } bs;
    RedisModuleKeySpecFindKeysType find_keys_type;
    union {
        struct { int lastkey; int keystep; int limit; } range;
        struct { int keynumidx; int firstkey; int keystep; } keynum;
    } fk;
} RedisModuleCommandKeySpec;

typedef struct {
    int version;
    size_t sizeof_historyentry;
    size_t sizeof_keyspec;
    size_t sizeof_arg;
} RedisModuleCommandInfoVersion;

typedef struct {
    const RedisModuleCommandInfoVersion *version;
    const char *summary;
    const char *complexity;
    const char *since;
    void *history; /* RedisModuleCommandHistoryEntry *: none given */
    const char *tips;
    int arity;
    RedisModuleCommandKeySpec *key_specs;
    void *args; /* RedisModuleCommandArg *: none given */
} RedisModuleCommandInfo;

typedef struct RedisModuleCommand RedisModuleCommand;
typedef struct RedisModuleUser RedisModuleUser;

/* Optional: absent before Redis 7.0, where commands keep their legacy key triple. */
#define PL_REDIS_API_7(X)                                                                        \
    X(RedisModuleCommand *, GetCommand, (RedisModuleCtx *, const char *))                        \
    X(int, SetCommandInfo, (RedisModuleCommand *, const RedisModuleCommandInfo *))               \
    X(void, KeyAtPosWithFlags, (RedisModuleCtx *, int, int))                                     \
    X(int, RedactClientCommandArgument, (RedisModuleCtx *, int))                                \
    X(unsigned long long, GetClientId, (RedisModuleCtx *))                                      \
    X(RedisModuleString *, GetClientUserNameById, (RedisModuleCtx *, uint64_t))                 \
    X(RedisModuleUser *, GetModuleUserFromUserName, (RedisModuleString *))                      \
    X(int, ACLCheckKeyPermissions, (RedisModuleUser *, RedisModuleString *, int))               \
    X(int, FreeModuleUser, (RedisModuleUser *))

#define PL_DECLARE_API(ret, name, params) extern ret(*RedisModule_##name) params;
PL_REDIS_API_7(PL_DECLARE_API)
#undef PL_DECLARE_API

#endif
