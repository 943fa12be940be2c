/*
 * webhook.c — `tandem webhook create|list|delete|deliveries|replay`: a process's signed
 * webhooks and their deliveries, on a database directly or through a running server (a
 * token of an admin or of the process's owner in TANDEM_TOKEN). `create` prints the signing
 * secret alone on standard output, for scripts; it is shown this once.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "tandem/engine.h"

static const char webhook_usage[] =
    "usage: tandem webhook create --process NAME --endpoint URL --events EVENTS\n"
    "                             (--db PATH | --url URL)\n"
    "       tandem webhook list --process NAME (--db PATH | --url URL) [--json]\n"
    "       tandem webhook delete ID (--db PATH | --url URL)\n"
    "       tandem webhook deliveries ID [--state STATE] [--limit N] (--db PATH | --url URL)\n"
    "                                 [--json]\n"
    "       tandem webhook replay ID [--delivery DELIVERY] (--db PATH | --url URL)\n"
    "\n"
    "A webhook posts a process's events to a receiver as they happen, signed as Standard\n"
    "Webhooks says (headers webhook-id, webhook-timestamp, webhook-signature; docs/api.md,\n"
    "\"Webhooks\"). The events:\n"
    "\n"
    "  task.created       an item waits for a person\n"
    "  decision.made      a step of an item was decided, by the AI or by a person\n"
    "  sla.breached       a task passed its due time before it was done\n"
    "  automation.paused  the AI stopped deciding alone at a step (kill switch or drift)\n"
    "\n"
    "A running tandem serve on the database sends the deliveries, retrying with growing\n"
    "delays until the receiver answers 2xx; a delivery whose attempts run out is dead (the\n"
    "dead-letter list: deliveries --state dead) until it is replayed.\n"
    "\n"
    "create prints the signing secret (whsec_...) alone on standard output, once: give it to\n"
    "the receiver. list prints id, events, pending and dead deliveries and the URL;\n"
    "deliveries prints a webhook's deliveries, newest first; replay sends one delivery again\n"
    "(--delivery), or every dead one of the webhook. delete stops a webhook and cancels its\n"
    "pending and dead deliveries.\n"
    "\n"
    "options:\n"
    "  --process NAME        the process whose events are sent\n"
    "  --endpoint URL        the receiver: an http:// or https:// URL\n"
    "  --events EVENTS       comma-separated events, like task.created,decision.made\n"
    "  --state STATE         deliveries: pending, delivered, dead or cancelled\n"
    "  --limit N             deliveries: at most N, 1 to 1000 (default 100)\n"
    "  --delivery DELIVERY   replay: this delivery (msg_...) alone\n" CLI_TARGET_HELP CLI_ACTOR_HELP
    "  --json                list, deliveries: print the JSON answer\n"
    "  -h, --help            show this help\n";

typedef struct webhook_args {
    const char *verb;
    const char *id;
    const char *process;
    const char *endpoint;
    const char *events;
    const char *state;
    const char *delivery;
    uint64_t limit;
    int json;
    cli_target target;
} webhook_args;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "tandem: <message>" and returns CLI_EXIT_USAGE. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tandem: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, webhook_args *a)
{
    enum {
        O_DB = 256,
        O_URL,
        O_ACTOR,
        O_PROCESS,
        O_ENDPOINT,
        O_EVENTS,
        O_STATE,
        O_LIMIT,
        O_DELIVERY,
        O_JSON
    };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"actor", required_argument, NULL, O_ACTOR},
        {"process", required_argument, NULL, O_PROCESS},
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"events", required_argument, NULL, O_EVENTS},
        {"state", required_argument, NULL, O_STATE},
        {"limit", required_argument, NULL, O_LIMIT},
        {"delivery", required_argument, NULL, O_DELIVERY},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    a->limit = 100;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DB:
            a->target.db = optarg;
            break;
        case O_URL:
            a->target.url = optarg;
            break;
        case O_ACTOR:
            a->target.actor = optarg;
            break;
        case O_PROCESS:
            a->process = optarg;
            break;
        case O_ENDPOINT:
            a->endpoint = optarg;
            break;
        case O_EVENTS:
            a->events = optarg;
            break;
        case O_STATE:
            a->state = optarg;
            break;
        case O_LIMIT:
            if (cli_parse_u64("--limit", optarg, 1, 1000, &a->limit) != 0)
                return CLI_EXIT_USAGE;
            break;
        case O_DELIVERY:
            a->delivery = optarg;
            break;
        case O_JSON:
            a->json = 1;
            break;
        case 'h':
            fputs(webhook_usage, stdout);
            return -1;
        case ':':
            return usage_error("webhook: option %s needs a value (see tandem webhook --help)",
                               argv[optind - 1]);
        default:
            return usage_error("webhook: unknown option %s (see tandem webhook --help)",
                               argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("webhook: expected create, list, delete, deliveries or replay (see "
                           "tandem webhook --help)");
    a->verb = argv[optind++];
    const char *v = a->verb;
    int create = strcmp(v, "create") == 0, list = strcmp(v, "list") == 0;
    int deliveries = strcmp(v, "deliveries") == 0, replay = strcmp(v, "replay") == 0;
    int by_id = strcmp(v, "delete") == 0 || deliveries || replay;
    if (!create && !list && !by_id)
        return usage_error("webhook: unknown action \"%s\" (expected create, list, delete, "
                           "deliveries or replay)",
                           v);
    if (by_id) {
        if (optind >= argc)
            return usage_error("webhook %s: expected the webhook's id (whk_...; see tandem "
                               "webhook list)",
                               v);
        a->id = argv[optind++];
    }
    if (optind < argc)
        return usage_error("webhook %s: unexpected argument \"%s\" (see tandem webhook --help)", v,
                           argv[optind]);
    if ((create || list) && a->process == NULL)
        return usage_error("webhook %s: --process NAME is required", v);
    if (create && (a->endpoint == NULL || a->events == NULL))
        return usage_error("webhook create: --endpoint URL and --events EVENTS are required (see "
                           "tandem webhook --help)");
    if (!create && !list && a->process != NULL)
        return usage_error("webhook %s: --process goes with create and list", v);
    if (!create && (a->endpoint != NULL || a->events != NULL))
        return usage_error("webhook %s: --endpoint and --events go with create", v);
    if (!deliveries && a->state != NULL)
        return usage_error("webhook %s: --state goes with deliveries", v);
    if (!replay && a->delivery != NULL)
        return usage_error("webhook %s: --delivery goes with replay", v);
    if (a->json && !list && !deliveries)
        return usage_error("webhook %s: --json goes with list and deliveries", v);
    return cli_target_check(&a->target, "webhook");
}

/* {"url": ENDPOINT, "events": [...]} from the command line; NULL when out of memory. */
static char *create_body(const webhook_args *a)
{
    json_t *o = json_object(), *events = json_array();
    char *copy = strdup(a->events), *body = NULL;
    if (o != NULL && events != NULL && copy != NULL) {
        for (char *p = copy, *comma; p != NULL; p = comma ? comma + 1 : NULL) {
            comma = strchr(p, ',');
            if (comma != NULL)
                *comma = '\0';
            json_array_append_new(events, json_string(p));
        }
        json_object_set_new(o, "url", json_string(a->endpoint));
        json_object_set(o, "events", events);
        body = json_dumps(o, JSON_COMPACT);
    }
    json_decref(events);
    json_decref(o);
    free(copy);
    return body;
}

/* Builds "/v1/{what}/ESCAPED{suffix}" into *path (free() it). */
static int make_path(cli_client *c, const char *what, const char *name, const char *suffix,
                     char **path, tdm_error *err)
{
    char *esc = cli_client_escape(c, name);
    *path = NULL;
    if (esc == NULL || asprintf(path, "/v1/%s/%s%s", what, esc, suffix) < 0) {
        free(esc);
        *path = NULL;
        err->code = TDM_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return TDM_ENOMEM;
    }
    free(esc);
    return 0;
}

/* Runs the action, on the engine or through the server; *json is malloc'd. */
static int call(cli_client *c, const webhook_args *a, char **json, tdm_error *err)
{
    tdm_engine *e = cli_client_engine(c);
    const char *actor = a->target.actor; /* NULL: "api", as --help says */
    const char *v = a->verb;
    char *text = NULL, *path = NULL, *body = NULL;
    int rc;
    if (strcmp(v, "create") == 0) {
        if ((body = create_body(a)) == NULL) {
            err->code = TDM_ENOMEM;
            snprintf(err->message, sizeof err->message, "out of memory");
            return TDM_ENOMEM;
        }
        if (e != NULL)
            rc = tdm_engine_webhook_create(e, a->process, body, strlen(body), actor, &text, err);
        else if ((rc = make_path(c, "processes", a->process, "/webhooks", &path, err)) == 0)
            rc = cli_client_request(c, "POST", path, body, json, err);
    } else if (strcmp(v, "list") == 0) {
        if (e != NULL)
            rc = tdm_engine_webhook_list(e, a->process, &text, err);
        else if ((rc = make_path(c, "processes", a->process, "/webhooks", &path, err)) == 0)
            rc = cli_client_request(c, "GET", path, NULL, json, err);
    } else if (strcmp(v, "delete") == 0) {
        if (e != NULL)
            rc = tdm_engine_webhook_delete(e, a->id, actor, &text, err);
        else if ((rc = make_path(c, "webhooks", a->id, "", &path, err)) == 0)
            rc = cli_client_request(c, "DELETE", path, NULL, json, err);
    } else if (strcmp(v, "deliveries") == 0) {
        char suffix[160];
        snprintf(suffix, sizeof suffix, "/deliveries?limit=%llu%s%.32s",
                 (unsigned long long)a->limit, a->state ? "&state=" : "", a->state ? a->state : "");
        if (e != NULL)
            rc = tdm_engine_webhook_deliveries(e, a->id, a->state, (size_t)a->limit, &text, err);
        else if ((rc = make_path(c, "webhooks", a->id, suffix, &path, err)) == 0)
            rc = cli_client_request(c, "GET", path, NULL, json, err);
    } else {
        char *one = NULL;
        if (e != NULL) {
            rc = tdm_engine_webhook_replay(e, a->id, a->delivery, actor, &text, err);
        } else if (a->delivery != NULL && (one = cli_client_escape(c, a->delivery)) == NULL) {
            err->code = rc = TDM_ENOMEM;
            snprintf(err->message, sizeof err->message, "out of memory");
        } else {
            char suffix[256];
            snprintf(suffix, sizeof suffix, "%s%.200s/replay", one ? "/deliveries/" : "",
                     one ? one : "");
            if ((rc = make_path(c, "webhooks", a->id, suffix, &path, err)) == 0)
                rc = cli_client_request(c, "POST", path, NULL, json, err);
        }
        free(one);
    }
    if (e != NULL) {
        if (rc == 0)
            rc = cli_client_take(text, json, err);
        else
            tdm_free(text);
    }
    free(path);
    free(body);
    return rc;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void print_list(json_t *o)
{
    size_t i;
    json_t *w;
    printf("%-28s %-54s %7s %5s %s\n", "ID", "EVENTS", "PENDING", "DEAD", "URL");
    json_array_foreach(json_object_get(o, "webhooks"), i, w)
    {
        char events[256] = "";
        size_t k, used = 0;
        json_t *ev;
        json_array_foreach(json_object_get(w, "events"), k, ev) used +=
            (size_t)snprintf(events + used, used < sizeof events ? sizeof events - used : 0, "%s%s",
                             k ? "," : "", json_string_value(ev));
        printf("%-28s %-54s %7lld %5lld %s\n", str(w, "id"), events,
               (long long)json_integer_value(json_object_get(w, "pending")),
               (long long)json_integer_value(json_object_get(w, "dead")), str(w, "url"));
    }
}

static void print_deliveries(json_t *o)
{
    size_t i;
    json_t *d;
    printf("%-28s %-18s %-9s %8s %-24s %s\n", "ID", "EVENT", "STATE", "ATTEMPTS", "CREATED",
           "LAST");
    json_array_foreach(json_object_get(o, "deliveries"), i, d)
    {
        char last[96] = "";
        json_t *status = json_object_get(d, "last_status");
        const char *error = json_string_value(json_object_get(d, "last_error"));
        if (error != NULL)
            snprintf(last, sizeof last, "%.95s", error);
        else if (json_is_integer(status))
            snprintf(last, sizeof last, "HTTP %lld", (long long)json_integer_value(status));
        printf("%-28s %-18s %-9s %8lld %-24s %s\n", str(d, "id"), str(d, "event"), str(d, "state"),
               (long long)json_integer_value(json_object_get(d, "attempts")), str(d, "created_at"),
               last);
    }
}

int cli_webhook(int argc, char **argv)
{
    webhook_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    int reading = strcmp(a.verb, "list") == 0 || strcmp(a.verb, "deliveries") == 0;
    cli_client *c = NULL;
    if (cli_client_open(&a.target, reading, &c) != 0)
        return CLI_EXIT_FAIL;
    char *json = NULL;
    tdm_error err = {0};
    rc = call(c, &a, &json, &err);
    if (rc != 0) {
        cli_error("webhook %s: %s", a.verb, err.message[0] ? err.message : tdm_strerror(rc));
        cli_client_close(c);
        return CLI_EXIT_FAIL;
    }
    json_t *o = json_loads(json, 0, NULL);
    if (strcmp(a.verb, "create") == 0) {
        const char *secret = json_string_value(json_object_get(o, "secret"));
        if (secret != NULL) {
            printf("%s\n", secret);
            fprintf(stderr,
                    "tandem: webhook %s (%s -> %s) created; its signing secret is shown this "
                    "once\n",
                    str(o, "id"), a.process, a.endpoint);
        } else {
            cli_error("webhook create: the answer has no secret");
            rc = CLI_EXIT_FAIL;
        }
    } else if (strcmp(a.verb, "list") == 0 && !a.json) {
        print_list(o);
    } else if (strcmp(a.verb, "deliveries") == 0 && !a.json) {
        print_deliveries(o);
    } else {
        fputs(json, stdout);
        if (json[0] != '\0' && json[strlen(json) - 1] != '\n')
            fputc('\n', stdout);
    }
    json_decref(o);
    free(json);
    cli_client_close(c);
    return rc;
}
