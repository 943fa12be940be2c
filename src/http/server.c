/*
 * server.c — tandem's HTTP API v1 (server.h, docs/api.md) on libmicrohttpd.
 *
 * NOTES ON THE DESIGN OF THE SERVER
 *
 * Threads. libmicrohttpd runs its own polling threads (MHD_USE_INTERNAL_POLLING_THREAD), a
 * pool of opts->threads of them, each with its own epoll set where the library has epoll.
 * A request is handled start to finish on one of them, including the engine call, which
 * may take long (training); the engine is safe to call from several threads at once, so
 * the server holds no lock of its own.
 *
 * The listening socket. The server binds and listens itself, so that a failure to bind can
 * name the address and the reason ("Address already in use") instead of libmicrohttpd's
 * bare NULL, and accepts on a thread of its own (accept_main), handing each connection to
 * libmicrohttpd with MHD_add_connection(), which spreads them over the pool by the socket's
 * number. When the pool's threads accepted themselves, the one awake first took most of the
 * connections a client opened at once: with pace's 64 connections at 10,000 requests a
 * second, one thread of four used 0.42 cores and another 0.02, and every request on the busy
 * one queued behind the others' parsing and answers.
 *
 * One request, as libmicrohttpd calls the access handler for it:
 *
 *   1. First call, headers only (*con_cls == NULL). A connection context is made: the
 *      request's arena, its body buffer, its start time. router.c decides everything the
 *      headers allow: route (404), method (405 with Allow), path parameters (400), the
 *      token and what it may do (401, 403), content type (415) and declared Content-Length
 *      against the route's cap (413). If any fails the answer is queued at once, before "100
 * Continue", and the body is never read; libmicrohttpd closes the connection after the answer.
 *   2. Body calls (*upload_data_size > 0). The bytes are appended to the capped buffer. A
 *      body without Content-Length (chunked) that passes the cap cannot be answered in
 *      libmicrohttpd 0.9.75, which refuses a response in the middle of an upload; the
 *      server then stops reading and closes the connection (logged as 413). A declared
 *      length is never exceeded: libmicrohttpd stops at it.
 *   3. Final call (*upload_data_size == 0 again). The route's handler runs on the whole
 *      body and its answer is queued.
 *   4. libmicrohttpd calls on_completed (MHD_OPTION_NOTIFY_COMPLETED) once the answer is
 *      sent or the connection failed: the request log line is written and the context,
 *      with its arena and body, is freed. Every context made in step 1 is freed here.
 *
 * URLs are not unescaped by libmicrohttpd (MHD_OPTION_UNESCAPE_CALLBACK keeps them as
 * sent): router.c decodes each path segment and each query value on its own, so that an
 * escaped "/" stays inside a name.
 *
 * Stopping. tdm_server_stop() first stops the accepting thread and closes the listening
 * socket (no new connections), waits for the requests in flight — counted from step 1 to
 * step 4 — to finish, at most timeout_seconds, then stops the daemon, which closes idle
 * keep-alive connections and joins the threads. After it returns no handler runs, so the engine may
 * be closed.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http_int.h"
#include "http/routes.h"
#include "tandem/server.h"
#include "util/util.h"

/* A request's arena holds its decoded path, query values and principal: far less than this. */
#define ARENA_MAX ((size_t)1 << 20)

struct tdm_server {
    struct MHD_Daemon *daemon;
    tdm_engine *engine;
    tdm__http_limits limits;
    unsigned timeout_seconds;
    unsigned port;
    int quiet;
    atomic_int in_flight;
    /* The live streams of GET /v1/events waiting for their next look (see "Streams"). */
    pthread_mutex_t hub_lock;
    pthread_cond_t hub_wake;
    pthread_t hub;
    int hub_running;
    int stopping;           /* under hub_lock */
    struct stream *waiting; /* suspended streams, under hub_lock */
    int n_streams;          /* open streams, under hub_lock */
    /* Accepting (see "The listening socket"): */
    int listen_fd;
    int stop_pipe[2]; /* written once to stop the accepting thread */
    pthread_t acceptor;
};

/* The state of one request, from its headers to the end of its answer. */
typedef struct conn_ctx {
    tdm_server *server;
    tdm__http_request req;
    double started;
    unsigned status; /* of the answer queued, for the log */
    size_t bytes;    /* of the answer queued, for the log */
    int answered;    /* an answer was queued; later calls have nothing to do */
    int cut;         /* the body passed its cap mid-stream; the connection was dropped */
    int suspended;   /* an intake was started and the connection suspended for it */
    int has_early;   /* ... but it failed at once: `early` is the answer */
    tdm__http_response early;
    char method[16];
    char *path; /* as sent, for the log; in the arena */
} conn_ctx;

void tdm_server_opts_init(tdm_server_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->listen = "127.0.0.1:8080";
    opts->max_body_bytes = (size_t)64 << 20;
    opts->max_small_body_bytes = (size_t)1 << 20;
    opts->threads = 32;
    opts->timeout_seconds = 30;
    opts->rate_limit = 1000;
    opts->quiet = 0;
}

/* ---- the request log --------------------------------------------------------------------- */

/* Copies `s` into `out` (of `cap` bytes) with bytes outside printable ASCII as %XX. */
static void log_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (*s && o + 4 >= cap && cap > 4) {
        o = cap - 4 < o ? cap - 4 : o;
        out[o++] = '.';
        out[o++] = '.';
        out[o++] = '.';
    }
    out[o] = '\0';
}

static void log_request(const conn_ctx *c, enum MHD_RequestTerminationCode toe)
{
    char path[512];
    log_escape(c->path != NULL ? c->path : "?", path, sizeof path);
    double ms = (tdm__now() - c->started) * 1000.0;
    const char *note = "";
    if (c->cut)
        note = " (body over the limit: connection closed)";
    else if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        note = " (timed out)";
    else if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT)
        note = " (client closed the connection)";
    else if (toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
        note = " (server shutting down)";
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        note = " (connection failed)";
    /* One fprintf per line: stdio locks the stream, so lines from threads do not mix. */
    fprintf(stderr, "%s %s %u %zu %.1f%s\n", c->method, path, c->status, c->bytes, ms, note);
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------------- */

/* Leaves URLs and query values escaped: router.c decodes them piece by piece. */
static size_t keep_escaped(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    const tdm_server *s = cls;
    if (s->quiet)
        return;
    /* Said when on_request drops a body over its cap; the request log says it better. */
    if (strncmp(fmt, "Application reported internal error", 35) == 0)
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    fprintf(stderr, "tandem: http: %s\n", line);
}

/* Queues `res` (whose body it takes over) on the connection. */

/*
 * The headers of every answer: its type; no sniffing, no framing, no referrer; for API
 * answers no sources for anything a browser might render and no caching, for the
 * workspace's files the page's own policy and caching that revalidates (ETag); and Allow,
 * WWW-Authenticate or Retry-After where the answer calls for them. 0 or -1.
 */
static int add_headers(struct MHD_Response *r, const tdm__http_response *res)
{
    static const char *const fixed[][2] = {
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
    };
    /* The workspace's files may load each other and call the API on this origin, nothing
     * else: no inline script or style, no other host, no framing. */
    static const char page_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                                   "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                                   "form-action 'self'; frame-ancestors 'none'";
    if (res->content_type != NULL &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type) != MHD_YES)
        return -1;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (MHD_add_response_header(r, fixed[i][0], fixed[i][1]) != MHD_YES)
            return -1;
    if (MHD_add_response_header(
            r, "Content-Security-Policy",
            res->page ? page_csp : "default-src 'none'; frame-ancestors 'none'") != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                res->page ? "no-cache" : "no-store") != MHD_YES)
        return -1;
    if (res->etag != NULL && MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, res->etag) != MHD_YES)
        return -1;
    if (res->allow != NULL &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res->allow) != MHD_YES)
        return -1;
    if (res->challenge != NULL &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, res->challenge) != MHD_YES)
        return -1;
    if (res->retry_after > 0) {
        char retry[16];
        snprintf(retry, sizeof retry, "%u", res->retry_after);
        if (MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry) != MHD_YES)
            return -1;
    }
    return 0;
}

static enum MHD_Result answer(conn_ctx *c, struct MHD_Connection *conn, tdm__http_response *res)
{
    struct MHD_Response *r;
    if (res->free_body != NULL)
        r = MHD_create_response_from_buffer_with_free_callback(res->len, res->body, res->free_body);
    else
        r = MHD_create_response_from_buffer(res->len, res->body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        if (res->free_body != NULL)
            res->free_body(res->body);
        return MHD_NO;
    }
    c->answered = 1;
    c->status = res->status;
    c->bytes = res->len;
    if (add_headers(r, res) != 0) {
        MHD_destroy_response(r);
        return MHD_NO;
    }
    enum MHD_Result q = MHD_queue_response(conn, res->status, r);
    MHD_destroy_response(r);
    return q;
}

static conn_ctx *ctx_new(tdm_server *s, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
    conn_ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->server = s;
    c->started = tdm__now();
    snprintf(c->method, sizeof c->method, "%s", method);
    c->req.engine = s->engine;
    c->req.conn = conn;
    tdm__arena_init(&c->req.arena, ARENA_MAX);
    tdm__buf_init(&c->req.body, 0);
    c->path = tdm__arena_strndup(&c->req.arena, url, strlen(url));
    return c;
}

/* ---- streams: GET /v1/events ------------------------------------------------------------ */

/*
 * A live inbox is a server-sent-event stream. It does not hold a thread while it waits: its
 * content reader either has bytes to give (an "event: queues" when the inbox changed, or a
 * keep-alive comment every KEEPALIVE seconds) or parks the connection (suspends it and puts
 * it on the server's `waiting` list) and returns 0. The hub thread wakes every parked stream
 * once a TICK, so each one looks at the inbox again about once a second; the look is one
 * indexed count per queue. Stopping the server wakes them all, and they end.
 */
#define STREAM_TICK_MS   1000
#define STREAM_KEEPALIVE 15.0
#define STREAMS_MAX      256

typedef struct stream {
    struct stream *next; /* on the waiting list */
    tdm_server *server;
    struct MHD_Connection *conn;
    tdm_principal who; /* a copy: the stream may outlive the request's arena */
    uint64_t fingerprint;
    int sent_once;
    double last_sent;
    char *pending; /* bytes not yet given to libmicrohttpd */
    size_t len, off;
} stream;

/* Resumes every parked stream, which then looks at the inbox again. Holds hub_lock. */
static void wake_parked(tdm_server *s)
{
    for (stream *st = s->waiting; st != NULL;) {
        stream *next = st->next;
        st->next = NULL;
        MHD_resume_connection(st->conn);
        st = next;
    }
    s->waiting = NULL;
}

static void *hub_main(void *arg)
{
    tdm_server *s = arg;
    pthread_mutex_lock(&s->hub_lock);
    while (!s->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)STREAM_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->hub_wake, &s->hub_lock, &until);
        wake_parked(s);
    }
    pthread_mutex_unlock(&s->hub_lock);
    return NULL;
}

/* Makes the next bytes of a stream: 1 when there are some, 0 when it has nothing to say
 * yet, -1 on failure. */
static int stream_fill(stream *st)
{
    char *json = NULL;
    uint64_t fp = 0;
    tdm_error err = {0};
    if (tdm_engine_queues(st->server->engine, &st->who, &json, &fp, &err) != 0)
        return -1;
    double now = tdm__now();
    free(st->pending);
    st->pending = NULL;
    st->len = st->off = 0;
    if (!st->sent_once || fp != st->fingerprint) {
        size_t n = strlen(json), cap = n + 32;
        while (n > 0 && json[n - 1] == '\n')
            n--;
        st->pending = malloc(cap);
        if (st->pending != NULL)
            st->len =
                (size_t)snprintf(st->pending, cap, "event: queues\ndata: %.*s\n\n", (int)n, json);
        st->fingerprint = fp;
        st->sent_once = 1;
    } else if (now - st->last_sent >= STREAM_KEEPALIVE) {
        st->pending = strdup(": keepalive\n\n");
        if (st->pending != NULL)
            st->len = strlen(st->pending);
    } else {
        tdm_free(json);
        return 0;
    }
    tdm_free(json);
    if (st->pending == NULL)
        return -1;
    st->last_sent = now;
    return 1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    tdm_server *s = st->server;
    (void)pos;
    if (st->off == st->len) {
        pthread_mutex_lock(&s->hub_lock);
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->hub_lock);
        if (stopping)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = stream_fill(st);
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (rc == 0) {
            /* Park until the hub's next tick; the hub cannot wake us before we sleep, as it
             * takes the same lock. */
            pthread_mutex_lock(&s->hub_lock);
            if (s->stopping) {
                pthread_mutex_unlock(&s->hub_lock);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            st->next = s->waiting;
            s->waiting = st;
            MHD_suspend_connection(st->conn);
            pthread_mutex_unlock(&s->hub_lock);
            return 0;
        }
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(buf, st->pending + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    tdm_server *s = st->server;
    pthread_mutex_lock(&s->hub_lock);
    s->n_streams--;
    pthread_mutex_unlock(&s->hub_lock);
    free(st->pending);
    free(st);
}

void tdm__http_h_events(tdm__http_request *req, tdm__http_response *res)
{
    /* Never called: server.c answers the route itself (start_stream). */
    tdm__http_error(res, 500, "internal", "", "%s is a stream", req->route.pattern);
}

/* Answers GET /v1/events with a stream. */
static enum MHD_Result start_stream(conn_ctx *c, struct MHD_Connection *conn)
{
    tdm_server *s = c->server;
    tdm__http_response res = {0};
    pthread_mutex_lock(&s->hub_lock);
    int full = s->n_streams >= STREAMS_MAX;
    if (!full)
        s->n_streams++;
    pthread_mutex_unlock(&s->hub_lock);
    if (full) {
        tdm__http_error(&res, 503, "unavailable", "",
                        "the server has %d live streams open, its most; retry later", STREAMS_MAX);
        res.retry_after = 5;
        return answer(c, conn, &res);
    }
    stream *st = calloc(1, sizeof *st);
    struct MHD_Response *r = st != NULL ? MHD_create_response_from_callback(
                                              MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free)
                                        : NULL;
    if (r == NULL) {
        free(st);
        pthread_mutex_lock(&s->hub_lock);
        s->n_streams--;
        pthread_mutex_unlock(&s->hub_lock);
        return MHD_NO;
    }
    st->server = s;
    st->conn = conn;
    st->who = *c->req.principal;
    st->last_sent = tdm__now();
    res.content_type = "text/event-stream; charset=utf-8";
    c->answered = 1;
    c->status = 200;
    if (add_headers(r, &res) != 0 ||
        MHD_add_response_header(r, "X-Accel-Buffering", "no") != MHD_YES) {
        MHD_destroy_response(r);
        return MHD_NO;
    }
    enum MHD_Result q = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return q;
}

/* Called by the engine's writer thread when a suspended intake's commit is over. */
static void resume_intake(void *arg)
{
    conn_ctx *c = arg;
    MHD_resume_connection(c->req.conn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    tdm_server *s = cls;
    conn_ctx *c = *con_cls;
    tdm__http_response res = {0};
    (void)version;

    if (c == NULL) {
        c = ctx_new(s, conn, url, method);
        if (c == NULL)
            return MHD_NO;
        *con_cls = c;
        atomic_fetch_add(&s->in_flight, 1);
        if (tdm__http_begin(&c->req, &s->limits, url, method, &res) != 0)
            return answer(c, conn, &res);
        return MHD_YES;
    }
    if (c->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        int rc = tdm__buf_append(&c->req.body, upload_data, *upload_data_size);
        if (rc != 0) {
            /* libmicrohttpd 0.9.75 cannot answer in the middle of a body: drop it. */
            c->cut = 1;
            c->status = rc == TDM_ETOOBIG ? 413 : 500;
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->req.route.handler == tdm__http_h_submit) {
        /* Intake does not hold a thread while its commit is made durable: the connection is
         * suspended and the engine's writer resumes it (resume_intake) once the items are on
         * disk; libmicrohttpd then calls us again and the answer goes out. */
        if (!c->suspended) {
            c->suspended = 1;
            MHD_suspend_connection(conn);
            if (tdm__http_h_submit_start(&c->req, &c->early, resume_intake, c) == 0) {
                c->has_early = 1;
                MHD_resume_connection(conn);
            }
            return MHD_YES;
        }
        if (c->has_early) {
            c->has_early = 0;
            return answer(c, conn, &c->early);
        }
        if (c->req.pending == NULL)
            return MHD_YES; /* called again before the writer was done: keep waiting */
        tdm__http_h_submit_finish(&c->req, &res);
        return answer(c, conn, &res);
    }
    if (c->req.route.handler == tdm__http_h_events)
        return start_stream(c, conn);
    tdm__http_dispatch(&c->req, &res);
    return answer(c, conn, &res);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    tdm_server *s = cls;
    conn_ctx *c = *con_cls;
    (void)conn;
    if (c == NULL)
        return;
    if (!s->quiet)
        log_request(c, toe);
    tdm__buf_release(&c->req.body);
    tdm__arena_release(&c->req.arena);
    free(c);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

/* ---- start and stop ---------------------------------------------------------------------- */

/* The accepting thread's wait after a shortage (memory, descriptors): 10 ms, long enough
 * not to spin on it, short enough that the backlog does not overflow meanwhile. */
static void accept_backoff(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* The accepting thread: each new connection goes to libmicrohttpd, which picks its polling
 * thread by the socket's number (see "The listening socket"). */
static void *accept_main(void *arg)
{
    tdm_server *s = arg;
    pthread_setname_np(pthread_self(), "tandem-accept");
    struct pollfd p[2] = {{s->listen_fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOMEM) {
                /* The kernel could not allocate the poll table this time: new connections
                 * wait in the backlog meanwhile, so wait a little and poll again rather
                 * than stop accepting for good. */
                fprintf(stderr, "tandem: http: poll on the listening socket: %s; retrying\n",
                        strerror(errno));
                accept_backoff();
                continue;
            }
            /* EFAULT or EINVAL: a bug, not a passing shortage; say so before the server
             * stops taking connections. */
            fprintf(stderr,
                    "tandem: http: poll on the listening socket: %s; no new "
                    "connections are accepted\n",
                    strerror(errno));
            break;
        }
        if (p[1].revents != 0)
            break;
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd =
            accept4(s->listen_fd, (struct sockaddr *)&addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors or memory: the connection waits in the backlog; try
                 * again a little later instead of spinning on it. */
                accept_backoff();
            }
            continue; /* EAGAIN, EINTR, ECONNABORTED: nothing to take */
        }
        /* On failure libmicrohttpd has closed the socket and logged why. */
        (void)MHD_add_connection(s->daemon, fd, (struct sockaddr *)&addr, len);
    }
    return NULL;
}

/* Parses "HOST:PORT" with HOST an IPv4 address or "localhost" and PORT 0..65535. */
static int parse_listen(const char *address, struct sockaddr_in *sa, tdm_error *err)
{
    const char *colon = address != NULL ? strrchr(address, ':') : NULL;
    char host[64];
    unsigned long port = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (colon == NULL || colon == address || colon[1] == '\0' || colon - address > 63)
        goto bad;
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9' || p - colon > 5)
            goto bad;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        goto bad;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        goto bad;
    sa->sin_port = htons((uint16_t)port);
    return 0;
bad:
    return tdm__error_field(err, TDM_EINVAL, "listen",
                            "listen address \"%.100s\": expected HOST:PORT with an IPv4 address "
                            "or localhost and a port from 0 to 65535, like 127.0.0.1:8080",
                            address != NULL ? address : "(null)");
}

/* Binds and listens on `address`; the socket and the port it got are returned. */
static int open_listener(const char *address, int *fd_out, unsigned *port, tdm_error *err)
{
    struct sockaddr_in sa;
    int rc = parse_listen(address, &sa, err);
    if (rc != 0)
        return rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return tdm__error(err, TDM_EIO, "cannot listen on %s: %s", address, strerror(errno));
    /* A restarted server can take its port back while old connections sit in TIME_WAIT;
     * on Linux this does not let two servers listen on one port. */
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        int e = errno;
        close(fd);
        return tdm__error(err, TDM_EIO, "cannot listen on %s: %s%s", address, strerror(e),
                          e == EADDRINUSE ? " (stop the other server or pick another port)"
                          : e == EACCES   ? " (ports below 1024 need privileges)"
                                          : "");
    }
    *port = ntohs(bound.sin_port);
    *fd_out = fd;
    return 0;
}

int tdm_server_start(tdm_engine *e, const tdm_server_opts *opts, tdm_server **out, tdm_error *err)
{
    tdm_server_opts defaults;
    *out = NULL;
    tdm__error_clear(err);
    if (opts == NULL) {
        tdm_server_opts_init(&defaults);
        opts = &defaults;
    }
    if (e == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_server_start: no engine");
    if (opts->threads < 1 || opts->threads > 1024)
        return tdm__error_field(err, TDM_EINVAL, "threads",
                                "threads: expected 1 to 1024 worker threads, got %u",
                                opts->threads);
    if (opts->max_body_bytes < 1 || opts->max_small_body_bytes < 1 ||
        opts->max_body_bytes > ((size_t)1 << 40) || opts->max_small_body_bytes > ((size_t)1 << 40))
        return tdm__error_field(err, TDM_EINVAL, "max_body_bytes",
                                "body limits must be from 1 byte to 1 TiB");
    if (opts->timeout_seconds < 1)
        return tdm__error_field(err, TDM_EINVAL, "timeout_seconds",
                                "timeout_seconds: expected at least 1 second");
    if (!(opts->rate_limit >= 0 && opts->rate_limit <= 1e6))
        return tdm__error_field(err, TDM_EINVAL, "rate_limit",
                                "rate_limit: expected 0 (none) to 1000000 requests a second");

    tdm_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return tdm__error(err, TDM_ENOMEM, "out of memory");
    s->engine = e;
    s->listen_fd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->limits.max_body_bytes = opts->max_body_bytes;
    s->limits.max_small_body_bytes = opts->max_small_body_bytes;
    if (opts->rate_limit > 0 &&
        (s->limits.limiter = tdm__http_limiter_new(opts->rate_limit)) == NULL) {
        free(s);
        return tdm__error(err, TDM_ENOMEM, "out of memory");
    }
    s->timeout_seconds = opts->timeout_seconds;
    s->quiet = opts->quiet;
    atomic_init(&s->in_flight, 0);
    pthread_mutex_init(&s->hub_lock, NULL);
    pthread_cond_init(&s->hub_wake, NULL);

    int fd = -1;
    int rc =
        open_listener(opts->listen != NULL ? opts->listen : "127.0.0.1:8080", &fd, &s->port, err);
    if (rc != 0) {
        tdm__http_limiter_free(s->limits.limiter);
        free(s);
        return rc;
    }

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        flags |= MHD_USE_EPOLL;
    /* A pool of one thread is no pool: libmicrohttpd wants the option only above one. */
    struct MHD_OptionItem pool[] = {
        {opts->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)opts->threads,
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, log_mhd,
                         s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)opts->timeout_seconds,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK,
                         keep_escaped, NULL, MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
    if (s->daemon == NULL) {
        close(fd);
        tdm__http_limiter_free(s->limits.limiter);
        free(s);
        return tdm__error(err, TDM_EIO,
                          "cannot start the HTTP server on %s (libmicrohttpd refused the "
                          "options; see the messages above)",
                          opts->listen != NULL ? opts->listen : "127.0.0.1:8080");
    }
    s->listen_fd = fd;
    if (pthread_create(&s->hub, NULL, hub_main, s) != 0) {
        MHD_stop_daemon(s->daemon);
        close(fd);
        tdm__http_limiter_free(s->limits.limiter);
        pthread_cond_destroy(&s->hub_wake);
        pthread_mutex_destroy(&s->hub_lock);
        free(s);
        return tdm__error(err, TDM_EIO, "cannot start the server's stream thread");
    }
    s->hub_running = 1;
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0 ||
        pthread_create(&s->acceptor, NULL, accept_main, s) != 0) {
        if (s->stop_pipe[0] >= 0) {
            close(s->stop_pipe[0]);
            close(s->stop_pipe[1]);
        }
        s->stop_pipe[0] = s->stop_pipe[1] = -1;
        tdm_server_stop(s);
        return tdm__error(err, TDM_EIO, "cannot start the server's accepting thread");
    }
    *out = s;
    return 0;
}

unsigned tdm_server_port(const tdm_server *s)
{
    return s != NULL ? s->port : 0;
}

void tdm_server_stop(tdm_server *s)
{
    if (s == NULL)
        return;
    if (s->stop_pipe[1] >= 0) {
        ssize_t n;
        do
            n = write(s->stop_pipe[1], "x", 1);
        while (n < 0 && errno == EINTR);
        pthread_join(s->acceptor, NULL);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    close(s->listen_fd);
    /* Live streams end at their next look; the hub wakes the parked ones for it. */
    pthread_mutex_lock(&s->hub_lock);
    s->stopping = 1;
    wake_parked(s);
    pthread_cond_signal(&s->hub_wake);
    pthread_mutex_unlock(&s->hub_lock);
    if (s->hub_running)
        pthread_join(s->hub, NULL);
    /* Let the requests in flight finish; a slow client is cut off at the timeout anyway. */
    double deadline = tdm__now() + (double)s->timeout_seconds;
    while (atomic_load(&s->in_flight) > 0 && tdm__now() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    tdm__http_limiter_free(s->limits.limiter);
    pthread_cond_destroy(&s->hub_wake);
    pthread_mutex_destroy(&s->hub_lock);
    free(s);
}
