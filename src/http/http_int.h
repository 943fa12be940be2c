/*
 * http_int.h — private pieces of the HTTP server (server.h), shared by its files:
 *
 *   mem.c       the per-request arena and the capped growable buffer
 *   router.c    the route table, path decoding, methods, media types and query values
 *   handlers.c  one function per route (routes.h), each a thin call into the engine
 *   server.c    libmicrohttpd: the daemon, per-connection state, bodies, the request log
 *
 * Nothing here is public; the only published API is include/tandem/server.h.
 */
#ifndef TDM_HTTP_HTTP_INT_H
#define TDM_HTTP_HTTP_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/engine.h"

struct MHD_Connection;

/* ---- per-request arena ------------------------------------------------------------------- */

/*
 * A bump allocator that lives as long as one request: decoded path segments, decoded query
 * values and the actor are carved from it and all freed at once by tdm__arena_release().
 * Blocks are chained; a request never holds more than `max` bytes in it.
 */
typedef struct tdm__arena_block tdm__arena_block;

typedef struct tdm__arena {
    tdm__arena_block *head;
    size_t used_total; /* bytes handed out so far, to enforce `max` */
    size_t max;
} tdm__arena;

void tdm__arena_init(tdm__arena *a, size_t max);
/* Returns `n` bytes aligned for any type, or NULL when out of memory or over the cap. */
void *tdm__arena_alloc(tdm__arena *a, size_t n);
/* Copies `n` bytes of `s` and a NUL; NULL when out of memory or over the cap. */
char *tdm__arena_strndup(tdm__arena *a, const char *s, size_t n);
void tdm__arena_release(tdm__arena *a);

/* ---- capped buffer ----------------------------------------------------------------------- */

/*
 * A growable byte buffer with a hard cap fixed at creation (curl's dynbuf). The data is
 * always followed by a NUL that is not counted in `len`, so text can be read in place.
 * The caller owns `data` after tdm__buf_take(); otherwise tdm__buf_release() frees it.
 */
typedef struct tdm__buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t max;
} tdm__buf;

void tdm__buf_init(tdm__buf *b, size_t max);
/* Appends `n` bytes. Returns 0, TDM_ETOOBIG (len would pass max; nothing is appended) or
 * TDM_ENOMEM. */
int tdm__buf_append(tdm__buf *b, const void *data, size_t n);
/* Hands the data (NUL-terminated, malloc'd; free() it) to the caller and empties the buffer.
 * Never NULL: an empty buffer gives an allocated "". Returns NULL only when out of memory. */
char *tdm__buf_take(tdm__buf *b, size_t *len);
void tdm__buf_release(tdm__buf *b);

/* ---- requests and responses -------------------------------------------------------------- */

/* Methods as bits, so a route can list the ones it takes. HEAD is served as GET. */
enum tdm__http_method {
    TDM__HTTP_GET = 1,
    TDM__HTTP_PUT = 2,
    TDM__HTTP_POST = 4,
    TDM__HTTP_DELETE = 8,
    TDM__HTTP_OTHER = 16,
};

/* What a route accepts as its body; decides the media types and the cap. */
typedef enum tdm__http_body {
    TDM__BODY_NONE = 0,     /* GET: a body is read under the small cap and ignored */
    TDM__BODY_YAML,         /* a process file */
    TDM__BODY_TABLE,        /* training data: CSV or JSON Lines */
    TDM__BODY_ITEMS,        /* one JSON object, or JSON Lines */
    TDM__BODY_JSON,         /* one JSON object */
    TDM__BODY_JSON_OPTIONAL /* one JSON object, or no body at all */
} tdm__http_body;

typedef struct tdm__http_request tdm__http_request;
typedef struct tdm__http_response tdm__http_response;

typedef void (*tdm__http_handler)(tdm__http_request *req, tdm__http_response *res);

/* A route as the router found it for one request. */
typedef struct tdm__http_match {
    tdm__http_handler handler;
    tdm__http_body body;
    const char *pattern; /* "/v1/processes/{name}", for messages */
} tdm__http_match;

/* ---- per-token rate limits (limiter.c) ---------------------------------------------------- */

typedef struct tdm__http_limiter tdm__http_limiter;

/* A limiter of `rate` requests a second per token, bursts up to twice that; NULL when rate
 * is 0 (no limit) or out of memory. */
tdm__http_limiter *tdm__http_limiter_new(double rate);
void tdm__http_limiter_free(tdm__http_limiter *l);
/* Takes one request from token `id`'s bucket: 0 when allowed, else the seconds until it
 * would be. A NULL limiter allows everything. Thread-safe. */
double tdm__http_limiter_take(tdm__http_limiter *l, const char *id);

/* The limits the server was started with, read by the router. */
typedef struct tdm__http_limits {
    size_t max_body_bytes;
    size_t max_small_body_bytes;
    tdm__http_limiter *limiter; /* per-token rate limits, or NULL */
} tdm__http_limits;

/*
 * One request, from its headers to its answer. Owned by server.c's per-connection context;
 * everything that points into it lives in its arena or its body buffer.
 */
struct tdm__http_request {
    tdm_engine *engine;
    struct MHD_Connection *conn;
    tdm__arena arena;
    tdm__http_match route;
    const char *params[2];    /* decoded path parameters, in pattern order */
    const char *actor;        /* who acts: the token's name, or NULL (a public route) */
    tdm_principal *principal; /* the token's holder (in the arena), or NULL */
    int jsonl;                /* ITEMS: the body is JSON Lines */
    tdm_table_format format;  /* TABLE: CSV or JSON Lines */
    int has_content_type;
    tdm__buf body;
    tdm_submission *pending; /* an intake waiting for its commit (connection suspended) */
};

/*
 * An answer. `body` is `len` bytes freed with `free_body` (NULL: static, not freed); server.c
 * hands it to libmicrohttpd without copying. `allow` is set for 405 answers, `challenge`
 * for 401 answers (the WWW-Authenticate header).
 */
struct tdm__http_response {
    unsigned status;
    const char *content_type;
    char *body;
    size_t len;
    void (*free_body)(void *);
    const char *allow;
    const char *challenge;
    unsigned retry_after; /* seconds, for 429 answers; 0: no Retry-After header */
    int page;             /* a workspace file: the page's CSP, revalidated caching */
    const char *etag;     /* its ETag, or NULL */
};

/* The value of request header `name`, or NULL. */
const char *tdm__http_header(tdm__http_request *req, const char *name);

#define TDM__HTTP_NAME_MAX 200 /* bytes in a decoded path parameter */

/* The largest export answer built in memory (GET /v1/decisions). */
#define TDM__HTTP_EXPORT_MAX ((size_t)256 << 20)

/*
 * Reads the request line and headers and decides whether the request can go on: finds the
 * route, checks the method, the path parameters, the bearer token and what its role and
 * scope allow, the content type and the declared length against the route's cap, and sizes
 * req->body accordingly. Returns 0 to go on reading the body, or -1 with `res` filled with
 * the answer to send at once (404, 405, 400, 401, 403, 429, 415, 413) — the body is then
 * never read.
 */
int tdm__http_begin(tdm__http_request *req, const tdm__http_limits *limits, const char *url,
                    const char *method, tdm__http_response *res);

/* Runs the route's handler on the complete request; always fills `res`. */
void tdm__http_dispatch(tdm__http_request *req, tdm__http_response *res);

/*
 * The decoded value of query parameter `name`: returns 0 and sets *value (NULL when the
 * parameter is absent; owned by the request's arena), or -1 with `res` filled with a 400
 * (malformed percent-escape) or 500 (out of memory).
 */
int tdm__http_query(tdm__http_request *req, const char *name, const char **value,
                    tdm__http_response *res);

/* ---- answers (handlers.c) ----------------------------------------------------------------- */

/* Fills `res` with {"error": {"code", "message", "field"}} and `status`. */
void tdm__http_error(tdm__http_response *res, unsigned status, const char *code, const char *field,
                     const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Fills `res` with the error answer for an engine failure: the status and code follow the
 * engine's error code (engine.h), the message and field are the engine's. */
void tdm__http_engine_error(tdm__http_response *res, int rc, const tdm_error *err);

/*
 * Fills `res` with a 200 answer of `text` (`len` bytes, freed with tdm_free), ending it with
 * a newline when it has none. Takes ownership of `text` in every case.
 */
void tdm__http_text(tdm__http_response *res, const char *content_type, char *text, size_t len);

#endif /* TDM_HTTP_HTTP_INT_H */
