/*
 * serve.c — `tandem serve`: opens a database, applies process files, and serves the HTTP
 * API (docs/api.md) until SIGINT or SIGTERM.
 *
 * The signals are blocked before the server starts, so every thread it makes inherits the
 * block and only the main thread, waiting in sigwait(), ever takes them; shutting down then
 * runs as ordinary code (stop the server, close the engine), not in a signal handler.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "tandem/engine.h"
#include "tandem/process.h"
#include "tandem/server.h"

static const char serve_usage[] =
    "usage: tandem serve --db PATH [--listen HOST:PORT] [--process FILE]... [options]\n"
    "\n"
    "Serves tandem's HTTP API (docs/api.md) on a database until interrupted (SIGINT or\n"
    "SIGTERM). Once listening it prints one line, \"tandem: listening on http://HOST:PORT\",\n"
    "on standard output; the request log goes to standard error.\n"
    "\n"
    "options:\n"
    "  --db PATH             the database (created if missing)\n"
    "  --listen HOST:PORT    address to listen on: an IPv4 address or localhost and a port;\n"
    "                        port 0 picks a free one (default 127.0.0.1:8080)\n"
    "  --process FILE        validate a process file and create or update its process\n"
    "                        before serving (repeatable)\n"
    "  --threads N           worker threads, 1 to 1024 (default 32)\n"
    "  --timeout SECONDS     close idle or slow connections after this long (default 30)\n"
    "  --max-body-mib N      limit for training data and item batches (default 64)\n"
    "  --rate-limit N        requests a second per token, in bursts of up to twice that;\n"
    "                        over it, 429 with Retry-After (default 1000; 0: no limit)\n"
    "  --quiet               no request log\n"
    "  --webhook-retry-base-ms N\n"
    "                        the first webhook retry's delay; later ones are 6, 24, 120,\n"
    "                        360, 720 and 1440 times it (default 5000: 5 s ... 2 h)\n"
    "  --webhook-max-attempts N\n"
    "                        attempts before a delivery is dead, 1 to 100 (default 8)\n"
    "  --webhook-timeout SECONDS\n"
    "                        one delivery attempt's time limit (default 10)\n"
    "  --webhook-keep-days N delivered deliveries are deleted after N days; 0 keeps them\n"
    "                        (default 7)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Every API call needs a token (docs/security.md). On a database without any token, the\n"
    "first start makes an admin token named \"admin\" and prints it once on standard error;\n"
    "or it takes the token from the environment variable TANDEM_ADMIN_TOKEN (32 to 256\n"
    "printable characters, no blanks), for automation. Make more with tandem token create.\n"
    "\n"
    "While it serves, it delivers webhooks (tandem webhook --help) and announces tasks past\n"
    "their due time (sla.breached).\n";

typedef struct serve_args {
    const char *db;
    const char **process;
    size_t n_process;
    tdm_server_opts opts;
    tdm_webhook_opts webhooks;
} serve_args;

static int parse_args(int argc, char **argv, serve_args *a)
{
    enum {
        O_DB = 256,
        O_LISTEN,
        O_PROCESS,
        O_THREADS,
        O_TIMEOUT,
        O_MAXBODY,
        O_RATE,
        O_QUIET,
        O_WH_BASE,
        O_WH_ATTEMPTS,
        O_WH_TIMEOUT,
        O_WH_KEEP
    };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"listen", required_argument, NULL, O_LISTEN},
        {"process", required_argument, NULL, O_PROCESS},
        {"threads", required_argument, NULL, O_THREADS},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"max-body-mib", required_argument, NULL, O_MAXBODY},
        {"rate-limit", required_argument, NULL, O_RATE},
        {"quiet", no_argument, NULL, O_QUIET},
        {"webhook-retry-base-ms", required_argument, NULL, O_WH_BASE},
        {"webhook-max-attempts", required_argument, NULL, O_WH_ATTEMPTS},
        {"webhook-timeout", required_argument, NULL, O_WH_TIMEOUT},
        {"webhook-keep-days", required_argument, NULL, O_WH_KEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t u;
    tdm_server_opts_init(&a->opts);
    tdm_webhook_opts_init(&a->webhooks);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DB:
            a->db = optarg;
            break;
        case O_LISTEN:
            a->opts.listen = optarg;
            break;
        case O_PROCESS:
            a->process[a->n_process++] = optarg;
            break;
        case O_THREADS:
            if (cli_parse_u64("--threads", optarg, 1, 1024, &u))
                return CLI_EXIT_USAGE;
            a->opts.threads = (unsigned)u;
            break;
        case O_TIMEOUT:
            if (cli_parse_u64("--timeout", optarg, 1, 86400, &u))
                return CLI_EXIT_USAGE;
            a->opts.timeout_seconds = (unsigned)u;
            break;
        case O_MAXBODY:
            if (cli_parse_u64("--max-body-mib", optarg, 1, 1 << 20, &u))
                return CLI_EXIT_USAGE;
            a->opts.max_body_bytes = (size_t)u << 20;
            break;
        case O_RATE:
            if (cli_parse_double("--rate-limit", optarg, 0, 1e6, &a->opts.rate_limit))
                return CLI_EXIT_USAGE;
            break;
        case O_QUIET:
            a->opts.quiet = 1;
            break;
        case O_WH_BASE:
            if (cli_parse_u64("--webhook-retry-base-ms", optarg, 1, 86400000, &u))
                return CLI_EXIT_USAGE;
            a->webhooks.retry_base_ms = (unsigned)u;
            break;
        case O_WH_ATTEMPTS:
            if (cli_parse_u64("--webhook-max-attempts", optarg, 1, 100, &u))
                return CLI_EXIT_USAGE;
            a->webhooks.max_attempts = (unsigned)u;
            break;
        case O_WH_TIMEOUT:
            if (cli_parse_u64("--webhook-timeout", optarg, 1, 600, &u))
                return CLI_EXIT_USAGE;
            a->webhooks.timeout_ms = (unsigned)u * 1000;
            break;
        case O_WH_KEEP:
            if (cli_parse_u64("--webhook-keep-days", optarg, 0, 36500, &u))
                return CLI_EXIT_USAGE;
            a->webhooks.keep_days = (unsigned)u;
            break;
        case 'h':
            fputs(serve_usage, stdout);
            return -1;
        case ':':
            cli_error("serve: option %s needs a value (see tandem serve --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("serve: unknown option %s (see tandem serve --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("serve: unexpected argument \"%s\" (see tandem serve --help)", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (a->db == NULL) {
        cli_error("serve: --db PATH is required (see tandem serve --help)");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Validates a process file and puts it into the engine under the name it declares. */
static int apply_process(tdm_engine *e, const char *path)
{
    tdm_process *p = NULL;
    tdm_error err = {0};
    if (tdm_process_load(path, &p, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        return -1;
    }
    char *yaml = NULL, *json = NULL;
    size_t len;
    int rc = -1;
    if (cli_read_file(path, (size_t)16 << 20, &yaml, &len) != 0)
        goto out;
    if (tdm_engine_put_process(e, tdm_process_name(p), yaml, len, "tandem serve", &json, &err) !=
        0) {
        cli_error("%s: %s", path, err.message[0] ? err.message : tdm_strerror(err.code));
        goto out;
    }
    json_t *o = json_loads(json, 0, NULL);
    json_t *version = json_object_get(o, "version");
    if (json_is_integer(version))
        fprintf(stderr, "tandem: %s: process %s, version %lld\n", path, tdm_process_name(p),
                (long long)json_integer_value(version));
    else
        fprintf(stderr, "tandem: %s: process %s applied\n", path, tdm_process_name(p));
    json_decref(o);
    rc = 0;
out:
    tdm_free(json);
    free(yaml);
    tdm_process_free(p);
    return rc;
}

/*
 * On a database without any token in force: makes the admin token, from TANDEM_ADMIN_TOKEN
 * or made up and printed once. Nothing is ever printed of a token chosen by the caller.
 */
static int first_admin(tdm_engine *e)
{
    int64_t n = 0;
    tdm_error err = {0};
    if (tdm_engine_token_count(e, &n, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        return -1;
    }
    if (n > 0)
        return 0;
    const char *given = getenv("TANDEM_ADMIN_TOKEN");
    if (given != NULL && given[0] == '\0')
        given = NULL;
    char *json = NULL;
    if (tdm_engine_token_create(e, "admin", TDM_ROLE_ADMIN, NULL, 0, given, "tandem serve", &json,
                                &err) != 0) {
        cli_error("%s%s", given != NULL ? "TANDEM_ADMIN_TOKEN: " : "",
                  err.message[0] ? err.message : tdm_strerror(err.code));
        return -1;
    }
    if (given != NULL) {
        fprintf(stderr, "tandem: the admin token is the one in TANDEM_ADMIN_TOKEN\n");
    } else {
        json_t *o = json_loads(json, 0, NULL);
        const char *token = json_string_value(json_object_get(o, "token"));
        fprintf(stderr,
                "tandem: first start: the admin token, shown this once (keep it safe; tandem\n"
                "        stores only its hash):\n\n    %s\n\n",
                token != NULL ? token : "(missing)");
        json_decref(o);
    }
    tdm_free(json);
    return 0;
}

/* The host part of the listen address, for the URL printed. */
static void listen_host(const char *listen, char *host, size_t cap)
{
    const char *colon = strrchr(listen, ':');
    size_t n = colon != NULL ? (size_t)(colon - listen) : strlen(listen);
    snprintf(host, cap, "%.*s", (int)n, listen);
}

int cli_serve(int argc, char **argv)
{
    serve_args a;
    memset(&a, 0, sizeof a);
    a.process = calloc((size_t)argc, sizeof *a.process);
    if (a.process == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.process);
        return rc < 0 ? 0 : rc;
    }

    /* Blocked here, before any thread exists, so all of them inherit the block. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    tdm_engine *e = NULL;
    tdm_server *s = NULL;
    tdm_engine_opts eo;
    tdm_error err = {0};
    rc = CLI_EXIT_FAIL;
    tdm_engine_opts_init(&eo);
    eo.db_path = a.db;
    if (tdm_engine_open(&eo, &e, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        goto out;
    }
    for (size_t i = 0; i < a.n_process; i++)
        if (apply_process(e, a.process[i]) != 0)
            goto out;
    if (first_admin(e) != 0)
        goto out;
    if (tdm_engine_webhooks_start(e, &a.webhooks, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        goto out;
    }
    if (tdm_server_start(e, &a.opts, &s, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        goto out;
    }
    char host[64];
    listen_host(a.opts.listen, host, sizeof host);
    printf("tandem: listening on http://%s:%u\n", host, tdm_server_port(s));
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    if (!a.opts.quiet)
        fprintf(stderr, "tandem: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    tdm_server_stop(s);
    tdm_engine_close(e);
    free(a.process);
    return rc;
}
