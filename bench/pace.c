/*
 * pace — an open-loop HTTP/1.1 load generator for bench/intake.
 *
 * NOTES ON THE DESIGN
 *
 * bench/intake must show the latency of single-item posts at a fixed rate. The usual tools
 * get in the way on a 2-core machine that the load generator shares with the server: hey (Go)
 * burns about 70 us of CPU per request, a third of a core at 5,000/s, and its workers tick in
 * step, so it sends in bursts; wrk is cheap but closed-loop (each connection waits for an
 * answer before it sends again), so a slow answer delays the requests behind it and their
 * waiting is never measured ("coordinated omission"). wrk2 fixes that, but it is not packaged
 * in Debian. This program is the small part of wrk2 that the benchmark needs.
 *
 * Request i is due at start + i / rate, evenly spaced. When it is due it goes out on an idle
 * keep-alive connection; when no connection is idle it waits for one, and its latency still
 * counts from the moment it was due, so a server that falls behind is charged for the whole
 * queue it built. The latency from the moment it was actually sent is reported as well.
 *
 * One thread, non-blocking sockets, epoll with a nanosecond timeout (epoll_pwait2) to wake
 * for the next due request. Answers are read by their Content-Length (tandem and nginx always
 * send one); an answer without it, a closed connection or a read error counts as an error and
 * the connection is opened again. Every latency is kept (4 bytes each, the count is bounded
 * by rate x duration) and sorted at the end for exact percentiles.
 *
 * Output: a few readable lines on stderr and one line on stdout,
 *   pace rate_asked=R seconds=S sent=N done=N ok=N non2xx=N errors=N rate=R
 *        p50_ms=... p90_ms=... p99_ms=... p999_ms=... max_ms=...
 *        sent_p50_ms=... sent_p99_ms=... max_backlog=N
 * where the p*_ms are from the due time and the sent_* from the sending time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PACE_MAX_CONNECTIONS 4096
#define PACE_MAX_BODY        (64u << 20)
#define PACE_ANSWER_CAP      (1u << 20) /* the largest answer read; a larger one is an error */
#define PACE_DRAIN_SECONDS   10         /* how long answers in flight are awaited at the end */

typedef struct conn {
    int fd;
    int busy;         /* a request is out and its answer not complete */
    int want_out;     /* registered for EPOLLOUT: the request did not fit the socket */
    size_t sent;      /* bytes of the request written so far */
    uint64_t due_ns;  /* when the request in flight was due */
    uint64_t sent_ns; /* when its first byte was written */
    char *in;         /* the answer read so far */
    size_t in_len;
    size_t head_len; /* length of the header block once found, else 0 */
    size_t body_len; /* its Content-Length once the header block is found */
    int status;
} conn;

typedef struct pace {
    struct addrinfo *addr;
    char *request; /* the whole request, sent as is for every request */
    size_t request_len;
    conn *conns;
    int nconns;
    int epfd;
    int *idle; /* a stack of idle connection indexes */
    int nidle;
    uint32_t *lat_due_us; /* latency from the due time, per completed request */
    uint32_t *lat_sent_us;
    size_t nlat, cap_lat;
    uint64_t sent, done, ok, non2xx, errors;
    uint64_t max_backlog;
} pace;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "pace: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void usage(FILE *out)
{
    fputs("usage: pace --url http://HOST:PORT/PATH --rate R --duration S\n"
          "            [--connections C] [--method M] [--body FILE] [--type CONTENT-TYPE]\n"
          "            [--header \"NAME: VALUE\"]...\n"
          "\n"
          "Sends R requests per second, evenly spaced, for S seconds over up to C keep-alive\n"
          "connections (default 64), open-loop: a request that finds no idle connection waits\n"
          "for one and its latency counts from when it was due. Prints percentiles of that\n"
          "latency (and of the latency from the actual send) and a `pace key=value ...` line.\n"
          "--body FILE is sent with every request (method POST unless --method says otherwise,\n"
          "content type --type, default application/json). --header adds a header line to\n"
          "every request (at most 8). Exit status 0 when the run\n"
          "completed (whatever the answers were), 1 on a setup error, 2 on a usage error.\n",
          out);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s", path);
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > PACE_MAX_BODY)
        die("%s: not a regular file of at most 64 MiB", path);
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        die("out of memory reading %s", path);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size)
        die("short read from %s", path);
    fclose(f);
    *len = n;
    return buf;
}

/* Splits http://HOST:PORT/PATH; host and port are copied into the given buffers. */
static void parse_url(const char *url, char *host, size_t hostcap, char *port, size_t portcap,
                      const char **path)
{
    if (strncmp(url, "http://", 7) != 0)
        die("--url must start with http:// (got %s)", url);
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    *path = slash ? slash : "/";
    size_t hp = slash ? (size_t)(slash - h) : strlen(h);
    const char *colon = memchr(h, ':', hp);
    if (!colon)
        die("--url needs an explicit port (got %s)", url);
    size_t hl = (size_t)(colon - h), pl = hp - hl - 1;
    if (hl == 0 || hl >= hostcap || pl == 0 || pl >= portcap)
        die("--url: bad host or port in %s", url);
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
}

static void conn_open(pace *p, int i)
{
    conn *c = &p->conns[i];
    int fd = socket(p->addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, p->addr->ai_addr, p->addr->ai_addrlen) != 0 && errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    c->fd = fd;
    c->busy = 0;
    c->want_out = 0;
    c->in_len = c->head_len = c->body_len = 0;
    p->idle[p->nidle++] = i;
}

static void conn_reopen(pace *p, int i)
{
    conn *c = &p->conns[i];
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conn_open(p, i);
}

static void record(pace *p, conn *c, uint64_t t)
{
    if (p->nlat < p->cap_lat) {
        uint64_t d = (t - c->due_ns) / 1000, s = (t - c->sent_ns) / 1000;
        p->lat_due_us[p->nlat] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        p->lat_sent_us[p->nlat] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
        p->nlat++;
    }
}

/* Writes what is left of the request on connection i. Returns 0, or -1 when the connection
 * failed (it has been reopened and the request counted as an error). */
static int conn_write(pace *p, int i)
{
    conn *c = &p->conns[i];
    while (c->sent < p->request_len) {
        ssize_t n = send(c->fd, p->request + c->sent, p->request_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The socket buffer is full (or the connection is still being made): wait for
             * it to drain. */
            if (!c->want_out) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
                                         .data.u32 = (uint32_t)i};
                epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = 1;
            }
            return 0;
        }
        p->errors++;
        p->done++;
        conn_reopen(p, i);
        return -1;
    }
    /* Usually the whole request goes out at once and the registration never changes: one
     * system call per request saved. */
    if (c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = 0;
    }
    return 0;
}

static void conn_send(pace *p, int i, uint64_t due)
{
    conn *c = &p->conns[i];
    c->busy = 1;
    c->sent = 0;
    c->due_ns = due;
    c->sent_ns = now_ns();
    c->in_len = c->head_len = c->body_len = 0;
    c->status = 0;
    p->sent++;
    conn_write(p, i);
}

/* Finds the end of the header block and reads the status and Content-Length. Returns 1 when
 * found, 0 when more is needed, -1 when the answer cannot be read. */
static int parse_head(conn *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len > 65536 ? -1 : 0;
    c->head_len = (size_t)(end - c->in) + 4;
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.", 7) != 0)
        return -1;
    c->status = atoi(c->in + 9);
    const char *line = memchr(c->in, '\n', c->head_len);
    int have_length = 0;
    while (line && line < end) {
        line++;
        if ((size_t)(end - line) > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            char *stop;
            unsigned long long v = strtoull(line + 15, &stop, 10);
            if (v > PACE_ANSWER_CAP)
                return -1;
            c->body_len = (size_t)v;
            have_length = 1;
        }
        line = memchr(line, '\n', (size_t)(end - line));
    }
    return have_length ? 1 : -1;
}

static void conn_read(pace *p, int i)
{
    conn *c = &p->conns[i];
    for (;;) {
        if (c->in_len == PACE_ANSWER_CAP)
            break;
        ssize_t n = recv(c->fd, c->in + c->in_len, PACE_ANSWER_CAP - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            /* Stop as soon as the answer is complete (no second recv to see EAGAIN): epoll
             * is level-triggered, so anything more is reported again. */
            if (c->busy && (c->head_len || parse_head(c) != 0) &&
                (c->head_len == 0 || c->in_len >= c->head_len + c->body_len))
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* Closed or failed: an error if a request was out. */
        if (c->busy) {
            p->errors++;
            p->done++;
        } else {
            for (int k = 0; k < p->nidle; k++) {
                if (p->idle[k] == i) {
                    p->idle[k] = p->idle[--p->nidle];
                    break;
                }
            }
        }
        conn_reopen(p, i);
        return;
    }
    if (!c->busy)
        return;
    if (!c->head_len) {
        int r = parse_head(c);
        if (r == 0)
            return;
        if (r < 0) {
            p->errors++;
            p->done++;
            conn_reopen(p, i);
            return;
        }
    }
    if (c->in_len < c->head_len + c->body_len)
        return;
    uint64_t t = now_ns();
    record(p, c, t);
    p->done++;
    if (c->status >= 200 && c->status < 300)
        p->ok++;
    else
        p->non2xx++;
    c->busy = 0;
    c->in_len = c->head_len = c->body_len = 0;
    p->idle[p->nidle++] = i;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const uint32_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(q * (double)n);
    if (k >= n)
        k = n - 1;
    return v[k] / 1000.0;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *body_path = NULL, *method = NULL, *type = "application/json";
    double rate = 0, duration = 0;
    int nconns = 64;
    char extra[2048] = ""; /* --header lines, each ending in CRLF */
    size_t extra_len = 0;
    int n_headers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pace: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--url"))
            url = v;
        else if (!strcmp(a, "--rate"))
            rate = atof(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--connections"))
            nconns = atoi(v);
        else if (!strcmp(a, "--method"))
            method = v;
        else if (!strcmp(a, "--body"))
            body_path = v;
        else if (!strcmp(a, "--type"))
            type = v;
        else if (!strcmp(a, "--header")) {
            size_t vl = strlen(v);
            if (n_headers == 8 || !strchr(v, ':') || strpbrk(v, "\r\n") ||
                extra_len + vl + 3 > sizeof extra) {
                fprintf(stderr, "pace: --header \"NAME: VALUE\", at most 8, one line each\n");
                return 2;
            }
            memcpy(extra + extra_len, v, vl);
            memcpy(extra + extra_len + vl, "\r\n", 3);
            extra_len += vl + 2;
            n_headers++;
        } else {
            fprintf(stderr, "pace: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (!url || !(rate >= 1 && rate <= 1e6) || !(duration > 0 && duration <= 3600) || nconns < 1 ||
        nconns > PACE_MAX_CONNECTIONS) {
        fprintf(stderr, "pace: need --url, --rate 1..1000000, --duration 0..3600 and "
                        "--connections 1..4096 (see --help)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    pace p = {0};
    char host[256], port[16];
    const char *path;
    parse_url(url, host, sizeof host, port, sizeof port, &path);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, port, &hints, &p.addr);
    if (gai != 0)
        die("cannot resolve the host: %s", gai_strerror(gai));

    size_t body_len = 0;
    char *body = body_path ? read_file(body_path, &body_len) : NULL;
    if (!method)
        method = body ? "POST" : "GET";
    char head[4096];
    int hl = body ? snprintf(head, sizeof head,
                             "%s %s HTTP/1.1\r\nHost: %s:%s\r\n%sContent-Type: %s\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             method, path, host, port, extra, type, body_len)
                  : snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n%s\r\n", method,
                             path, host, port, extra);
    if (hl < 0 || (size_t)hl >= sizeof head)
        die("%s", "the URL or the content type is too long");
    p.request_len = (size_t)hl + body_len;
    p.request = malloc(p.request_len);
    if (!p.request)
        die("%s", "out of memory");
    memcpy(p.request, head, (size_t)hl);
    if (body)
        memcpy(p.request + hl, body, body_len);
    free(body);

    uint64_t total = (uint64_t)(rate * duration + 0.5);
    p.cap_lat = (size_t)total;
    p.lat_due_us = malloc(sizeof(uint32_t) * (p.cap_lat ? p.cap_lat : 1));
    p.lat_sent_us = malloc(sizeof(uint32_t) * (p.cap_lat ? p.cap_lat : 1));
    p.nconns = nconns;
    p.conns = calloc((size_t)nconns, sizeof(conn));
    p.idle = malloc(sizeof(int) * (size_t)nconns);
    if (!p.lat_due_us || !p.lat_sent_us || !p.conns || !p.idle)
        die("%s", "out of memory");
    p.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p.epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < nconns; i++) {
        p.conns[i].in = malloc(PACE_ANSWER_CAP);
        if (!p.conns[i].in)
            die("%s", "out of memory");
        conn_open(&p, i);
    }

    const double interval_ns = 1e9 / rate;
    uint64_t next = 0;                           /* index of the next request to send */
    const uint64_t start = now_ns() + 50000000u; /* 50 ms for the connections to be made */
    const uint64_t drain_end =
        start + (uint64_t)(duration * 1e9) + PACE_DRAIN_SECONDS * 1000000000ull;
    struct epoll_event events[256];
    for (;;) {
        uint64_t t = now_ns();
        /* Send everything due, while a connection is idle. */
        while (next < total && p.nidle > 0) {
            uint64_t due = start + (uint64_t)((double)next * interval_ns);
            if (due > t)
                break;
            conn_send(&p, p.idle[--p.nidle], due);
            next++;
        }
        if (next < total) {
            uint64_t due = start + (uint64_t)((double)next * interval_ns);
            if (due <= t) {
                uint64_t backlog = (uint64_t)((double)(t - start) / interval_ns) + 1 - next;
                if (backlog > p.max_backlog)
                    p.max_backlog = backlog;
            }
        } else if (p.done >= p.sent || t >= drain_end) {
            break;
        }
        /* Sleep until the next request is due (or an answer comes). */
        struct timespec timeout = {0, 0};
        if (next < total && p.nidle > 0) {
            uint64_t due = start + (uint64_t)((double)next * interval_ns);
            uint64_t wait = due > t ? due - t : 0;
            timeout.tv_sec = (time_t)(wait / 1000000000u);
            timeout.tv_nsec = (long)(wait % 1000000000u);
        } else {
            uint64_t wait = next < total ? 100000000u : (drain_end > t ? drain_end - t : 0);
            timeout.tv_sec = (time_t)(wait / 1000000000u);
            timeout.tv_nsec = (long)(wait % 1000000000u);
        }
        int n = epoll_pwait2(p.epfd, events, 256, &timeout, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_pwait2: %s", strerror(errno));
        }
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            conn *c = &p.conns[i];
            if ((events[k].events & EPOLLOUT) && c->busy && c->sent < p.request_len) {
                if (conn_write(&p, i) < 0)
                    continue;
            }
            if (events[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                conn_read(&p, i);
        }
    }
    uint64_t end = now_ns();
    /* The run lasts until the last answer (or the end of the drain time), at least the
     * asked duration. */
    double measured = (double)(end - start) / 1e9;
    if (measured < duration)
        measured = duration;

    qsort(p.lat_due_us, p.nlat, sizeof(uint32_t), cmp_u32);
    qsort(p.lat_sent_us, p.nlat, sizeof(uint32_t), cmp_u32);
    double achieved = (double)p.done / measured;
    uint64_t lost = p.sent - p.done; /* no answer within the drain time */
    fprintf(stderr,
            "pace: %.0f requests/s asked for %.1f s over %d connections: %llu sent, %llu "
            "answered (%llu 2xx, %llu other), %llu errors, %llu unanswered, %.0f/s achieved\n",
            rate, duration, nconns, (unsigned long long)p.sent, (unsigned long long)p.done,
            (unsigned long long)p.ok, (unsigned long long)p.non2xx, (unsigned long long)p.errors,
            (unsigned long long)lost, achieved);
    fprintf(stderr,
            "pace: latency from the due time, ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
            "max %.3f\n",
            pct_ms(p.lat_due_us, p.nlat, 0.50), pct_ms(p.lat_due_us, p.nlat, 0.90),
            pct_ms(p.lat_due_us, p.nlat, 0.99), pct_ms(p.lat_due_us, p.nlat, 0.999),
            p.nlat ? p.lat_due_us[p.nlat - 1] / 1000.0 : 0);
    printf("pace rate_asked=%.0f seconds=%.3f sent=%llu done=%llu ok=%llu non2xx=%llu "
           "errors=%llu unanswered=%llu rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
           "p999_ms=%.3f max_ms=%.3f sent_p50_ms=%.3f sent_p99_ms=%.3f max_backlog=%llu\n",
           rate, measured, (unsigned long long)p.sent, (unsigned long long)p.done,
           (unsigned long long)p.ok, (unsigned long long)p.non2xx, (unsigned long long)p.errors,
           (unsigned long long)lost, achieved, pct_ms(p.lat_due_us, p.nlat, 0.50),
           pct_ms(p.lat_due_us, p.nlat, 0.90), pct_ms(p.lat_due_us, p.nlat, 0.99),
           pct_ms(p.lat_due_us, p.nlat, 0.999), p.nlat ? p.lat_due_us[p.nlat - 1] / 1000.0 : 0,
           pct_ms(p.lat_sent_us, p.nlat, 0.50), pct_ms(p.lat_sent_us, p.nlat, 0.99),
           (unsigned long long)p.max_backlog);
    for (int i = 0; i < nconns; i++) {
        close(p.conns[i].fd);
        free(p.conns[i].in);
    }
    free(p.conns);
    free(p.idle);
    free(p.lat_due_us);
    free(p.lat_sent_us);
    free(p.request);
    freeaddrinfo(p.addr);
    close(p.epfd);
    return 0;
}
