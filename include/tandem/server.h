/*
 * server.h — tandem's HTTP API v1 over an engine (docs/api.md).
 *
 * JSON in and out; errors are {"error": {"code", "message", "field"}} with the status the
 * engine's error maps to (engine.h), plus 405 for a method a route does not take, 413 for a
 * body over its limit and 415 for a body of the wrong content type. Request bodies are read
 * up to a per-route cap and never beyond.
 */
#ifndef TANDEM_SERVER_H
#define TANDEM_SERVER_H

#include "tandem/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_server tdm_server;

typedef struct tdm_server_opts {
    const char *listen;          /* "HOST:PORT"; default "127.0.0.1:8080"; port 0 picks one */
    size_t max_body_bytes;       /* batches and training data; default 64 MiB */
    size_t max_small_body_bytes; /* single items, task and feedback bodies, process files;
                                    default 1 MiB */
    unsigned threads;            /* worker threads; default 32 (a request waiting for its
                                    commit holds one) */
    unsigned timeout_seconds;    /* an idle or slow connection is closed after this; default 30 */
    double rate_limit;           /* requests a second per token (bursts of twice that); 0: no
                                    limit; default 1000 */
    int quiet;                   /* no request log on stderr */
} tdm_server_opts;

/* Fills `opts` with the defaults above. */
void tdm_server_opts_init(tdm_server_opts *opts);

/*
 * Starts serving `e` (which must outlive the server) in background threads. On success *out
 * is yours; stop it with tdm_server_stop(). Errors: TDM_EINVAL (bad listen address), TDM_EIO
 * (cannot bind: the message names the address and the reason).
 */
int tdm_server_start(tdm_engine *e, const tdm_server_opts *opts, tdm_server **out, tdm_error *err);

/* The port actually listened on (useful with port 0). */
unsigned tdm_server_port(const tdm_server *s);

/* Stops accepting, finishes the requests in flight, frees the server. NULL is ignored. */
void tdm_server_stop(tdm_server *s);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_SERVER_H */
