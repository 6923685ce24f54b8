/*
 * send.c: PL.SEND, a tensor range streamed from this Redis straight into another one.
 *
 *   PL.SEND src offset count address port dst dstoffset [AUTH user password] [CHUNK n] [TIMEOUT ms]
 *
 * The exchange moves each peer's average (or its shards) into the other peers' Redis servers.
 * Relayed by the peer process, every byte crosses two sockets and the process's own buffers;
 * sent by the module, it crosses one and never leaves the databases. A thread of the module
 * connects to the destination as a plain client and writes the range chunk by chunk with
 * PL.SETRANGE into `dst`, which must already exist at full size there. It sends from a
 * snapshot that the server's own thread copies a piece at a time (see the copier below): the
 * sender never touches the keyspace, so nothing can change or vanish under it. Chunks are
 * pipelined; replies are read as they come and the first error stops the send. The calling client is blocked (the server is not)
 * until the destination acknowledged every chunk, then gets the number of bytes sent, or one
 * line naming the destination and what went wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "command.h"

/* Sends running at once; beyond it PL.SEND is refused (each holds a thread and a socket). */
#define SEND_MAX_JOBS 64
#define SEND_DEFAULT_CHUNK (1 << 18) /* elements: 1 MiB, as the peers' own transfers */
#define SEND_MAX_CHUNK (1 << 22)
#define SEND_DEFAULT_TIMEOUT_MS 60000LL
#define SEND_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define SEND_MAX_HOST 255

static atomic_int running_sends;

typedef struct {
    RedisModuleBlockedClient *bc;
    char *src, *dst, *user, *pass;
    size_t src_len, dst_len, user_len, pass_len;
    long long offset, count, dst_offset, chunk, timeout_ms;
    int db;
    char host[SEND_MAX_HOST + 1], port[8];
    long long bytes;  /* sent and acknowledged, when error is empty */
    char error[400];
    /* The range's snapshot: filled on the server's thread (see the copier), read by the sender. */
    char *buf;
    long long copied; /* elements of buf ready */
    int copy_failed;  /* the source changed or vanished before it was all copied */
    int stopped;      /* the sender is done: the copier stops */
    pthread_mutex_t mu; /* guards copied, copy_failed, stopped */
    pthread_cond_t more;
    int refs; /* owners on the server's thread: the blocked client, the copier */
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

static void give_buffer(char *b, size_t bytes);

static void free_job(send_job *j) {
    if (!j) return;
    give_buffer(j->buf, (size_t)j->count * 4);
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

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------------------------
 * The connection to the destination
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    int fd;
    double deadline;
    long long pending; /* commands sent whose reply has not been read */
    char in[4096];
    size_t in_len;
    int skipping; /* inside a reply line longer than `in` */
    send_job *job;
} link_t;

/* Bounds every blocking socket call by what is left until the deadline; 0 when it passed. */
static int bound_by_deadline(link_t *l) {
    double left = l->deadline - now_ms();
    if (left <= 0) return 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((long long)left % 1000 * 1000)};
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000;
    setsockopt(l->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return 1;
}

static int connect_by_deadline(int fd, const struct sockaddr *addr, socklen_t len, double deadline) {
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = connect(fd, addr, len);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        double left = deadline - now_ms();
        rc = left > 0 ? poll(&p, 1, (int)left + 1) : 0;
        if (rc == 0) {
            errno = ETIMEDOUT;
            rc = -1;
        } else if (rc > 0) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            errno = err;
            rc = err ? -1 : 0;
        }
    }
    fcntl(fd, F_SETFL, flags);
    return rc;
}

static int dial(link_t *l) {
    send_job *j = l->job;
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
    int err = 0;
    for (struct addrinfo *a = found; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect_by_deadline(fd, a->ai_addr, a->ai_addrlen, l->deadline) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            l->fd = fd;
            freeaddrinfo(found);
            return 1;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(found);
    job_error(j, "cannot connect (%s)", strerror(err));
    return 0;
}

/* Writes every byte of `iov`, or records why not. */
static int write_all(link_t *l, struct iovec *iov, int n) {
    while (n > 0) {
        if (!bound_by_deadline(l)) {
            job_error(l->job, "timed out after %lld ms while sending", l->job->timeout_ms);
            return 0;
        }
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(l->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                job_error(l->job, "timed out after %lld ms while sending", l->job->timeout_ms);
            else
                job_error(l->job, "connection lost while sending (%s)", strerror(errno));
            return 0;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 1;
}

/* One reply line (without "\r\n"): an error line is the destination refusing a command. */
static void on_reply(link_t *l, const char *line, size_t len) {
    if (l->pending > 0) l->pending--;
    if (len > 0 && line[0] == '-') job_error(l->job, "refused: %.*s", (int)(len > 300 ? 300 : len - 1), line + 1);
}

/* Reads what replies have arrived (all that are pending when `wait`); 0 on a socket failure. */
static int read_replies(link_t *l, int wait) {
    while (l->pending > 0) {
        if (wait && !bound_by_deadline(l)) {
            job_error(l->job, "timed out after %lld ms waiting for acknowledgements", l->job->timeout_ms);
            return 0;
        }
        ssize_t r = recv(l->fd, l->in + l->in_len, sizeof l->in - l->in_len, wait ? 0 : MSG_DONTWAIT);
        if (r == 0) {
            job_error(l->job, "the destination closed the connection");
            return 0;
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!wait) return 1;
                job_error(l->job, "timed out after %lld ms waiting for acknowledgements", l->job->timeout_ms);
            } else {
                job_error(l->job, "connection lost (%s)", strerror(errno));
            }
            return 0;
        }
        l->in_len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < l->in_len; i++) {
            if (l->in[i] != '\n') continue;
            if (!l->skipping) on_reply(l, l->in + start, i > start && l->in[i - 1] == '\r' ? i - 1 - start : i - start);
            l->skipping = 0;
            start = i + 1;
        }
        if (start == 0 && l->in_len == sizeof l->in) {
            /* A reply longer than the buffer: take its head, drop the rest up to its end. */
            if (!l->skipping) on_reply(l, l->in, l->in_len);
            l->skipping = 1;
            start = l->in_len;
        }
        memmove(l->in, l->in + start, l->in_len - start);
        l->in_len -= start;
    }
    return 1;
}

/* Sends one command of bulk strings, pipelined (its reply is read later). */
static int send_command(link_t *l, struct iovec *parts, int count) {
    struct iovec iov[16];
    char heads[8][32];
    int n = 0, h = 0;
    snprintf(heads[h], sizeof heads[h], "*%d\r\n", count);
    iov[n++] = (struct iovec){heads[h], strlen(heads[h])};
    h++;
    for (int i = 0; i < count; i++) {
        snprintf(heads[h], sizeof heads[h], "%s$%zu\r\n", i == 0 ? "" : "\r\n", parts[i].iov_len);
        iov[n++] = (struct iovec){heads[h], strlen(heads[h])};
        h++;
        iov[n++] = parts[i];
    }
    iov[n++] = (struct iovec){"\r\n", 2};
    if (!write_all(l, iov, n)) return 0;
    l->pending++;
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * The sending thread
 * ---------------------------------------------------------------------------------------- */

/*
 * The source is copied into a snapshot on the server's own thread, the first piece by the
 * command itself and the others one per event-loop turn (a module timer), and the sender
 * streams each chunk as soon as its piece is in. The sender never takes the server's lock: a
 * thread waiting for it is let in only while the server sleeps between events, and a busy
 * server (receiving other peers' chunks) left senders waiting up to 60 ms per 8 MiB window.
 * A piece is 16 MiB, a memcpy of 2-5 ms: a sharded exchange's slices at 4 peers and more
 * go whole with the command, and a busy server's slow event-loop turns rarely hold a send.
 * Snapshot buffers are kept for the next send of the same size: fresh pages would fault in
 * at first touch every round.
 */
#define SEND_COPY_PIECE ((long long)1 << 22) /* elements: 16 MiB */
#define SEND_POOLED 16

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pool[SEND_POOLED];
static size_t pool_bytes[SEND_POOLED];
static int pooled;

static char *take_buffer(size_t bytes) {
    char *b = NULL;
    pthread_mutex_lock(&pool_lock);
    for (int i = 0; i < pooled; i++)
        if (pool_bytes[i] == bytes) {
            b = pool[i];
            pool[i] = pool[--pooled];
            pool_bytes[i] = pool_bytes[pooled];
            break;
        }
    pthread_mutex_unlock(&pool_lock);
    return b ? b : malloc(bytes);
}

static void give_buffer(char *b, size_t bytes) {
    if (!b) return;
    pthread_mutex_lock(&pool_lock);
    if (pooled < SEND_POOLED) {
        pool[pooled] = b;
        pool_bytes[pooled++] = bytes;
        b = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    free(b);
}

/* Drops one owner's hold (on the server's thread); the last frees the job. */
static void release_job(send_job *j) {
    if (--j->refs > 0) return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->more);
    free_job(j);
}

/* Copies the snapshot's next piece from the source (on the server's thread); returns 1 while
 * pieces are left. */
static int copy_piece(RedisModuleCtx *ctx, send_job *j) {
    long long from = j->copied, n = j->count - from < SEND_COPY_PIECE ? j->count - from : SEND_COPY_PIECE;
    RedisModuleString *name = RedisModule_CreateString(ctx, j->src, j->src_len);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, name, REDISMODULE_READ);
    int ok = RedisModule_KeyType(key) == REDISMODULE_KEYTYPE_STRING &&
             RedisModule_ValueLength(key) >= (size_t)(j->offset + j->count) * 4;
    if (ok) {
        size_t len;
        const char *p = RedisModule_StringDMA(key, &len, REDISMODULE_READ);
        memcpy(j->buf + from * 4, p + (j->offset + from) * 4, (size_t)n * 4);
    }
    RedisModule_CloseKey(key);
    RedisModule_FreeString(ctx, name);
    pthread_mutex_lock(&j->mu);
    if (ok) j->copied += n;
    else j->copy_failed = 1;
    pthread_cond_broadcast(&j->more);
    pthread_mutex_unlock(&j->mu);
    return ok && j->copied < j->count;
}

static void copy_tick(RedisModuleCtx *ctx, void *data) {
    send_job *j = data;
    pthread_mutex_lock(&j->mu);
    int stopped = j->stopped;
    pthread_mutex_unlock(&j->mu);
    RedisModule_SelectDb(ctx, j->db);
    if (!stopped && copy_piece(ctx, j)) {
        RedisModule_CreateTimer(ctx, 0, copy_tick, j);
        return;
    }
    release_job(j);
}

/* Waits until the snapshot holds elements [0, upto); 0 (with the error recorded) if it never will. */
static int wait_copied(link_t *l, long long upto) {
    send_job *j = l->job;
    pthread_mutex_lock(&j->mu);
    while (j->copied < upto && !j->copy_failed) {
        double left = l->deadline - now_ms();
        if (left <= 0) break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = (long long)until.tv_nsec + (long long)(left * 1e6);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&j->more, &j->mu, &until);
    }
    int ready = j->copied >= upto, failed = j->copy_failed;
    pthread_mutex_unlock(&j->mu);
    if (failed) job_error(j, "the source tensor changed or was deleted during the send");
    else if (!ready) job_error(j, "timed out after %lld ms while reading the source", j->timeout_ms);
    return ready;
}

static void send_range(send_job *j) {
    link_t l = {.fd = -1, .deadline = now_ms() + (double)j->timeout_ms, .job = j};
    if (!dial(&l)) goto done;
    if (j->user) {
        struct iovec auth[3] = {{"AUTH", 4}, {j->user, j->user_len}, {j->pass, j->pass_len}};
        /* Wait for it: a server refuses (and drops) an unauthenticated client's big arguments. */
        if (!send_command(&l, auth, 3) || !read_replies(&l, 1) || j->error[0]) goto done;
    }
    for (long long off = 0; off < j->count && !j->error[0]; off += j->chunk) {
        long long n = j->count - off < j->chunk ? j->count - off : j->chunk;
        if (!wait_copied(&l, off + n)) break;
        char at[24];
        snprintf(at, sizeof at, "%lld", j->dst_offset + off);
        struct iovec cmd[4] = {{"PL.SETRANGE", 11}, {j->dst, j->dst_len}, {at, strlen(at)}, {j->buf + off * 4, (size_t)n * 4}};
        if (!send_command(&l, cmd, 4) || !read_replies(&l, 0)) break;
    }
    if (!j->error[0]) read_replies(&l, 1);
    if (!j->error[0]) j->bytes = j->count * 4;
done:
    if (l.fd >= 0) close(l.fd);
}

static void *send_thread(void *arg) {
    send_job *j = arg;
    send_range(j);
    pthread_mutex_lock(&j->mu);
    j->stopped = 1; /* a copier still running stops at its next piece */
    pthread_mutex_unlock(&j->mu);
    atomic_fetch_sub(&running_sends, 1);
    RedisModule_UnblockClient(j->bc, j); /* from here the job belongs to the server's thread */
    return NULL;
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

static int send_timed_out(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    return fail(ctx, "PL.SEND: the destination did not acknowledge every chunk in time");
}

static void send_free(RedisModuleCtx *ctx, void *privdata) {
    (void)ctx;
    release_job(privdata);
}

/* An IPv4 or IPv6 address. Names are resolved by the caller: a resolver may block for
 * seconds, and the sending thread must keep to its deadline. */
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
    tensor_key t;
    if (!open_tensor(ctx, argv[1], REDISMODULE_READ, "source", 0, &t)) return REDISMODULE_OK;
    close_key(&t.key);
    if ((size_t)(job.offset + job.count) > t.n)
        return fail(ctx, "range [%lld, %lld) is outside tensor \"%s\" of %zu elements", job.offset,
                    job.offset + job.count, show(argv[1]).s, t.n);
    if (atomic_fetch_add(&running_sends, 1) >= SEND_MAX_JOBS) {
        atomic_fetch_sub(&running_sends, 1);
        return fail(ctx, "PL.SEND: %d sends are already running; retry when one ends", SEND_MAX_JOBS);
    }

    send_job *j = malloc(sizeof *j);
    if (j) {
        *j = job;
        j->src = copy_arg(argv[1], &j->src_len);
        j->dst = copy_arg(argv[6], &j->dst_len);
        if (user) {
            j->user = copy_arg(user, &j->user_len);
            j->pass = copy_arg(pass, &j->pass_len);
        }
        j->buf = take_buffer((size_t)j->count * 4);
    }
    if (!j || !j->src || !j->dst || !j->buf || (user && (!j->user || !j->pass))) {
        free_job(j);
        atomic_fetch_sub(&running_sends, 1);
        return fail(ctx, "PL.SEND: out of memory");
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->more, NULL);
    j->db = RedisModule_GetSelectedDb(ctx);
    j->refs = 1; /* the blocked client's: released once its reply is given */
    /* The first piece now; the others one per event-loop turn, while the sender streams. */
    if (copy_piece(ctx, j)) {
        j->refs++;
        RedisModule_CreateTimer(ctx, 0, copy_tick, j);
    }
    /* The thread bounds its own work by the timeout; the server's backstop comes a little later. */
    j->bc = RedisModule_BlockClient(ctx, send_reply, send_timed_out, send_free, j->timeout_ms + 1000);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, send_thread, j) != 0) {
        job_error(j, "cannot start a thread");
        pthread_mutex_lock(&j->mu);
        j->stopped = 1;
        pthread_mutex_unlock(&j->mu);
        atomic_fetch_sub(&running_sends, 1);
        RedisModule_UnblockClient(j->bc, j);
    }
    pthread_attr_destroy(&attr);
    return REDISMODULE_OK;
}
