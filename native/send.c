/*
 * send.c: PL.SEND, a tensor range streamed from this Redis straight into another one.
 *
 *   PL.SEND src offset count address port dst dstoffset [AUTH user password] [CHUNK n] [TIMEOUT ms]
 *
 * The exchange moves each peer's average (or its shards) into the other peers' Redis servers.
 * Relayed by the peer process, every byte crosses two sockets and the process's own buffers;
 * sent by the module, it crosses one and never leaves the databases. The module connects to
 * the destination as a plain client and writes the range chunk by chunk with PL.SETRANGE into
 * `dst`, which must already exist at full size there.
 *
 * The send runs on the server's own event loop (RedisModule_EventLoopAdd): each time the
 * socket takes more, the next chunks go out straight from the source tensor's memory, so the
 * kernel's copy into the socket is the only copy on this side. (It used to run on a thread of
 * its own, which cannot touch the keyspace without the server's lock and so sent from a
 * snapshot: a memcpy of every byte sent, a quarter of the sender's CPU.) The source is opened
 * again at every event: a source deleted or cut short meanwhile ends the send with an error,
 * never a read of freed memory. An event writes at most SEND_EVENT_BUDGET bytes, so the
 * server's other clients wait no longer than that copy. Chunks are pipelined; replies are read
 * as they come and the first error stops the send. The calling client is blocked (the server
 * is not) until the destination acknowledged every chunk, then gets the number of bytes sent,
 * or one line naming the destination and what went wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "command.h"

/* Sends running at once; beyond it PL.SEND is refused (each holds a socket). */
#define SEND_MAX_JOBS 64
#define SEND_DEFAULT_CHUNK (1 << 18) /* elements: 1 MiB, as the peers' own transfers */
#define SEND_MAX_CHUNK (1 << 22)
#define SEND_DEFAULT_TIMEOUT_MS 60000LL
#define SEND_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define SEND_MAX_HOST 255
/* Bytes one writable event may write: about a millisecond of copying, as long as the server's
 * other clients then wait (an event takes less when the socket is full sooner). */
#define SEND_EVENT_BUDGET ((size_t)4 << 20)

static int running_sends; /* the server's thread only */

typedef enum {
    S_CONNECTING, /* waiting for the connection */
    S_AUTH,       /* writing AUTH */
    S_AUTH_WAIT,  /* waiting for AUTH's reply: a server drops an unauthenticated big argument */
    S_SENDING,    /* writing chunks */
    S_DRAINING,   /* every chunk written; waiting for their acknowledgements */
} send_state;

typedef struct {
    RedisModuleBlockedClient *bc;
    RedisModuleCtx *kctx; /* opens the source between events (outlives the command's context) */
    char *src, *dst, *user, *pass;
    size_t src_len, dst_len, user_len, pass_len;
    long long offset, count, dst_offset, chunk, timeout_ms;
    int db;
    char host[SEND_MAX_HOST + 1], port[8];
    int fd;
    send_state state;
    int writable;     /* the WRITABLE event is registered */
    RedisModuleTimerID timer;
    int timer_live;
    long long next;   /* first element of the chunk being written */
    size_t written;   /* bytes of the command being written that are out */
    long long pending; /* commands written whose reply has not been read */
    char in[4096];
    size_t in_len;
    int skipping; /* inside a reply line longer than `in` */
    long long bytes; /* sent and acknowledged, when error is empty */
    char error[400];
} send_job;

static char *copy_arg(RedisModuleString *arg, size_t *len) {
    const char *p = RedisModule_StringPtrLen(arg, len);
    char *out = malloc(*len + 1);
    if (out) {
        memcpy(out, p, *len);
        out[*len] = '\0';
    }
    return out;
}

static void free_job(send_job *j) {
    if (!j) return;
    if (j->kctx) RedisModule_FreeThreadSafeContext(j->kctx);
    free(j->src);
    free(j->dst);
    free(j->user);
    if (j->pass) memset(j->pass, 0, j->pass_len);
    free(j->pass);
    free(j);
}

__attribute__((format(printf, 2, 3))) static void job_error(send_job *j, const char *fmt, ...) {
    if (j->error[0]) return; /* the first error is the cause */
    int head = snprintf(j->error, sizeof j->error, "PL.SEND to %s:%s: ", j->host, j->port);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->error + head, sizeof j->error - (size_t)head, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------
 * Writing commands
 * ---------------------------------------------------------------------------------------- */

/* A command of bulk strings (at most 4) in RESP, as iovecs over the parts themselves. */
typedef struct {
    struct iovec iov[10];
    char heads[5][32];
    int n;
} resp_t;

static void resp(resp_t *r, const struct iovec *parts, int count) {
    r->n = 0;
    snprintf(r->heads[0], sizeof r->heads[0], "*%d\r\n", count);
    r->iov[r->n++] = (struct iovec){r->heads[0], strlen(r->heads[0])};
    for (int i = 0; i < count; i++) {
        snprintf(r->heads[i + 1], sizeof r->heads[i + 1], "%s$%zu\r\n", i == 0 ? "" : "\r\n", parts[i].iov_len);
        r->iov[r->n++] = (struct iovec){r->heads[i + 1], strlen(r->heads[i + 1])};
        r->iov[r->n++] = parts[i];
    }
    r->iov[r->n++] = (struct iovec){"\r\n", 2};
}

/* Drops the first `bytes` of an iovec array in place. */
static void skip_bytes(struct iovec **iov, int *n, size_t bytes) {
    while (*n > 0 && bytes >= (*iov)->iov_len) {
        bytes -= (*iov)->iov_len;
        (*iov)++;
        (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + bytes;
        (*iov)->iov_len -= bytes;
    }
}

/* Writes what the socket takes of the command past its first j->written bytes: 1 when the
 * command is all out, 0 when the socket is full, -1 on a failure (recorded). */
static int write_command(send_job *j, resp_t *r, size_t *budget) {
    struct iovec *iov = r->iov;
    int n = r->n;
    skip_bytes(&iov, &n, j->written);
    while (n > 0) {
        if (*budget == 0) return 0;
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(j->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            job_error(j, "connection lost while sending (%s)", strerror(errno));
            return -1;
        }
        size_t done = (size_t)w;
        j->written += done;
        *budget = done >= *budget ? 0 : *budget - done;
        skip_bytes(&iov, &n, done);
    }
    j->written = 0;
    j->pending++;
    return 1;
}

/* The source's bytes, or NULL (recorded) when it no longer holds the range; the key stays
 * open in *key until the caller closes it, and no other command runs meanwhile. */
static const char *open_source(send_job *j, RedisModuleKey **key) {
    RedisModule_SelectDb(j->kctx, j->db);
    RedisModuleString *name = RedisModule_CreateString(j->kctx, j->src, j->src_len);
    *key = RedisModule_OpenKey(j->kctx, name, REDISMODULE_READ);
    RedisModule_FreeString(j->kctx, name);
    if (RedisModule_KeyType(*key) == REDISMODULE_KEYTYPE_STRING &&
        RedisModule_ValueLength(*key) >= (size_t)(j->offset + j->count) * 4) {
        size_t len;
        return RedisModule_StringDMA(*key, &len, REDISMODULE_READ);
    }
    RedisModule_CloseKey(*key);
    *key = NULL;
    job_error(j, "the source tensor changed or was deleted during the send");
    return NULL;
}

/* Writes chunks from the source while the socket and the budget allow. */
static void write_chunks(send_job *j) {
    RedisModuleKey *key;
    const char *p = open_source(j, &key);
    if (!p) return;
    size_t budget = SEND_EVENT_BUDGET;
    while (j->next < j->count) {
        long long n = j->count - j->next < j->chunk ? j->count - j->next : j->chunk;
        char at[24];
        snprintf(at, sizeof at, "%lld", j->dst_offset + j->next);
        struct iovec parts[4] = {{"PL.SETRANGE", 11}, {j->dst, j->dst_len}, {at, strlen(at)},
                                 {(char *)p + (j->offset + j->next) * 4, (size_t)n * 4}};
        resp_t r;
        resp(&r, parts, 4);
        int done = write_command(j, &r, &budget);
        if (done <= 0) break;
        j->next += n;
    }
    RedisModule_CloseKey(key);
    if (j->next >= j->count && !j->error[0]) j->state = S_DRAINING;
}

static void write_auth(send_job *j) {
    struct iovec parts[3] = {{"AUTH", 4}, {j->user, j->user_len}, {j->pass, j->pass_len}};
    resp_t r;
    resp(&r, parts, 3);
    size_t budget = SEND_EVENT_BUDGET;
    if (write_command(j, &r, &budget) == 1) j->state = S_AUTH_WAIT;
}

/* ------------------------------------------------------------------------------------------
 * Reading acknowledgements
 * ---------------------------------------------------------------------------------------- */

/* One reply line (without "\r\n"): an error line is the destination refusing a command. */
static void on_reply(send_job *j, const char *line, size_t len) {
    if (j->pending > 0) j->pending--;
    if (len > 0 && line[0] == '-') job_error(j, "refused: %.*s", (int)(len > 300 ? 300 : len - 1), line + 1);
}

/* Reads the replies that have arrived; records a failure of the connection. */
static void read_replies(send_job *j) {
    for (;;) {
        ssize_t r = recv(j->fd, j->in + j->in_len, sizeof j->in - j->in_len, MSG_DONTWAIT);
        if (r == 0) {
            job_error(j, "the destination closed the connection");
            return;
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) job_error(j, "connection lost (%s)", strerror(errno));
            return;
        }
        j->in_len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < j->in_len; i++) {
            if (j->in[i] != '\n') continue;
            if (!j->skipping) on_reply(j, j->in + start, i > start && j->in[i - 1] == '\r' ? i - 1 - start : i - start);
            j->skipping = 0;
            start = i + 1;
        }
        if (start == 0 && j->in_len == sizeof j->in) {
            /* A reply longer than the buffer: take its head, drop the rest up to its end. */
            if (!j->skipping) on_reply(j, j->in, j->in_len);
            j->skipping = 1;
            start = j->in_len;
        }
        memmove(j->in, j->in + start, j->in_len - start);
        j->in_len -= start;
    }
}

/* ------------------------------------------------------------------------------------------
 * The send's life on the event loop
 * ---------------------------------------------------------------------------------------- */

static void on_event(int fd, void *data, int mask);

/* Ends the send: the socket and the timer go, the client gets its reply (send_reply). */
static void finish(send_job *j) {
    if (j->fd >= 0) {
        RedisModule_EventLoopDel(j->fd, REDISMODULE_EVENTLOOP_READABLE | REDISMODULE_EVENTLOOP_WRITABLE);
        close(j->fd);
        j->fd = -1;
    }
    if (j->timer_live) RedisModule_StopTimer(j->kctx, j->timer, NULL);
    j->timer_live = 0;
    if (!j->error[0]) j->bytes = j->count * 4;
    running_sends--;
    RedisModule_UnblockClient(j->bc, j); /* send_free frees the job once the reply is given */
}

static int want_writable(send_job *j, int on) {
    if (on == j->writable) return 1;
    if (on && RedisModule_EventLoopAdd(j->fd, REDISMODULE_EVENTLOOP_WRITABLE, on_event, j) != REDISMODULE_OK) {
        job_error(j, "cannot watch the connection (%s)", strerror(errno));
        return 0;
    }
    if (!on) RedisModule_EventLoopDel(j->fd, REDISMODULE_EVENTLOOP_WRITABLE);
    j->writable = on;
    return 1;
}

/* The connection is up (or failed): replies are watched from now on. */
static void on_connected(send_job *j) {
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    if (err) {
        job_error(j, "cannot connect (%s)", strerror(err));
        return;
    }
    int one = 1;
    setsockopt(j->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (RedisModule_EventLoopAdd(j->fd, REDISMODULE_EVENTLOOP_READABLE, on_event, j) != REDISMODULE_OK) {
        job_error(j, "cannot watch the connection (%s)", strerror(errno));
        return;
    }
    j->state = j->user ? S_AUTH : S_SENDING;
}

static void on_event(int fd, void *data, int mask) {
    (void)fd;
    send_job *j = data;
    /* An error on the socket comes as both readable and writable, whichever is registered. */
    if (j->state == S_CONNECTING) on_connected(j);
    else if (mask & REDISMODULE_EVENTLOOP_READABLE) read_replies(j);
    if (!j->error[0] && (mask & REDISMODULE_EVENTLOOP_WRITABLE)) {
        if (j->state == S_AUTH) write_auth(j);
        if (!j->error[0] && j->state == S_SENDING) write_chunks(j);
    }
    if (!j->error[0] && j->state == S_AUTH_WAIT && j->pending == 0) {
        j->state = S_SENDING; /* authenticated: the data may go */
        write_chunks(j);
    }
    if (!j->error[0]) want_writable(j, j->state == S_CONNECTING || j->state == S_AUTH || j->state == S_SENDING);
    if (j->error[0] || (j->state == S_DRAINING && j->pending == 0)) finish(j);
}

static void on_deadline(RedisModuleCtx *ctx, void *data) {
    (void)ctx;
    send_job *j = data;
    j->timer_live = 0;
    if (j->state == S_CONNECTING) job_error(j, "cannot connect (%s)", strerror(ETIMEDOUT));
    else if (j->state == S_AUTH || j->state == S_SENDING) job_error(j, "timed out after %lld ms while sending", j->timeout_ms);
    else job_error(j, "timed out after %lld ms waiting for acknowledgements", j->timeout_ms);
    finish(j);
}

/* Starts a non-blocking connection to the destination; 0 (recorded) when it fails at once. */
static int start_connect(send_job *j) {
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* never a resolver: see parse_host */
    int rc = getaddrinfo(j->host, j->port, &hints, &found);
    if (rc != 0) {
        job_error(j, "cannot connect (%s)", gai_strerror(rc));
        return 0;
    }
    j->fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, found->ai_protocol);
    if (j->fd < 0) {
        job_error(j, "cannot connect (%s)", strerror(errno));
        freeaddrinfo(found);
        return 0;
    }
    rc = connect(j->fd, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    if (rc != 0 && errno != EINPROGRESS) {
        job_error(j, "cannot connect (%s)", strerror(errno));
        close(j->fd);
        j->fd = -1;
        return 0;
    }
    return want_writable(j, 1); /* writable once connected (or failed) */
}

/* ------------------------------------------------------------------------------------------
 * The command
 * ---------------------------------------------------------------------------------------- */

static int send_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    send_job *j = RedisModule_GetBlockedClientPrivateData(ctx);
    if (j->error[0]) return fail(ctx, "%s", j->error);
    return RedisModule_ReplyWithLongLong(ctx, j->bytes);
}

static void send_free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    free_job(privdata);
}

/* An IPv4 or IPv6 address. Names are resolved by the caller: a resolver may block for
 * seconds, and the send runs on the server's own thread. */
static int parse_host(RedisModuleCtx *ctx, RedisModuleString *arg, char *out) {
    size_t len;
    const char *p = RedisModule_StringPtrLen(arg, &len);
    unsigned char addr[sizeof(struct in6_addr)];
    int ok = len > 0 && len <= SEND_MAX_HOST && memchr(p, '\0', len) == NULL;
    if (ok) {
        memcpy(out, p, len);
        out[len] = '\0';
        ok = inet_pton(AF_INET, out, addr) == 1 || inet_pton(AF_INET6, out, addr) == 1;
    }
    if (!ok) {
        fail(ctx, "host must be an IPv4 or IPv6 address (resolve names first), got \"%s\"", show(arg).s);
        return 0;
    }
    return 1;
}

int cmd_send(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 8) return RedisModule_WrongArity(ctx);
    send_job job;
    memset(&job, 0, sizeof job);
    long long port;
    if (!parse_int(ctx, argv[2], "offset", 0, PL_MAX_ELEMENTS, &job.offset) ||
        !parse_int(ctx, argv[3], "count", 1, PL_MAX_ELEMENTS, &job.count) ||
        !parse_host(ctx, argv[4], job.host) || !parse_int(ctx, argv[5], "port", 1, 65535, &port) ||
        !parse_int(ctx, argv[7], "destination offset", 0, PL_MAX_ELEMENTS, &job.dst_offset))
        return REDISMODULE_OK;
    snprintf(job.port, sizeof job.port, "%lld", port);
    job.chunk = SEND_DEFAULT_CHUNK;
    job.timeout_ms = SEND_DEFAULT_TIMEOUT_MS;
    RedisModuleString *user = NULL, *pass = NULL;
    for (int i = 8; i < argc;) {
        if (is_word(argv[i], "AUTH") && i + 2 < argc) {
            user = argv[i + 1];
            pass = argv[i + 2];
            /* The slow log and MONITOR show "(redacted)" instead (Redis 7.0 and later). */
            if (RedisModule_RedactClientCommandArgument) RedisModule_RedactClientCommandArgument(ctx, i + 2);
            i += 3;
        } else if (is_word(argv[i], "CHUNK") && i + 1 < argc) {
            if (!parse_int(ctx, argv[i + 1], "chunk", 1, SEND_MAX_CHUNK, &job.chunk)) return REDISMODULE_OK;
            i += 2;
        } else if (is_word(argv[i], "TIMEOUT") && i + 1 < argc) {
            if (!parse_int(ctx, argv[i + 1], "timeout", 1, SEND_MAX_TIMEOUT_MS, &job.timeout_ms)) return REDISMODULE_OK;
            i += 2;
        } else {
            return fail(ctx, "unexpected argument \"%s\" (options: AUTH user password, CHUNK n, TIMEOUT ms)",
                        show(argv[i]).s);
        }
    }
    /* A send blocks its client until the destination acknowledged it. Inside MULTI, a script
     * or another module's call Redis refuses to block it, after the send started: the caller
     * got an error while the bytes were written anyway. So it is refused before anything. */
    if (RedisModule_GetContextFlags(ctx) &
        (REDISMODULE_CTX_FLAGS_MULTI | REDISMODULE_CTX_FLAGS_LUA | REDISMODULE_CTX_FLAGS_DENY_BLOCKING))
        return fail(ctx, "PL.SEND cannot run inside MULTI, a script or another module's call (it waits "
                    "for the destination): send it on its own");
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ, "source", 0, &t)) return REDISMODULE_OK;
    close_key(&t.key);
    if ((size_t)(job.offset + job.count) > t.n)
        return fail(ctx, "range [%lld, %lld) is outside tensor \"%s\" of %zu elements", job.offset,
                    job.offset + job.count, show(argv[1]).s, t.n);
    if (running_sends >= SEND_MAX_JOBS)
        return fail(ctx, "PL.SEND: %d sends are already running; retry when one ends", SEND_MAX_JOBS);

    send_job *j = malloc(sizeof *j);
    if (j) {
        *j = job;
        j->fd = -1;
        j->src = copy_arg(argv[1], &j->src_len);
        j->dst = copy_arg(argv[6], &j->dst_len);
        if (user) {
            j->user = copy_arg(user, &j->user_len);
            j->pass = copy_arg(pass, &j->pass_len);
        }
        j->kctx = RedisModule_GetDetachedThreadSafeContext(ctx);
    }
    if (!j || !j->src || !j->dst || !j->kctx || (user && (!j->user || !j->pass))) {
        free_job(j);
        return fail(ctx, "PL.SEND: out of memory");
    }
    j->db = RedisModule_GetSelectedDb(ctx);
    if (!start_connect(j)) {
        int r = fail(ctx, "%s", j->error);
        if (j->fd >= 0) close(j->fd);
        free_job(j);
        return r;
    }
    running_sends++;
    /* The send bounds itself by its timer, so the client needs no timeout of the server's. */
    j->bc = RedisModule_BlockClient(ctx, send_reply, NULL, send_free, 0);
    j->timer = RedisModule_CreateTimer(ctx, j->timeout_ms, on_deadline, j);
    j->timer_live = 1;
    return REDISMODULE_OK;
}
