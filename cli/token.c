/*
 * token.c — `tandem token create|list|revoke`: API tokens, on a database directly (whoever
 * can open the file is its administrator) or through a running server with an admin token
 * in TANDEM_TOKEN. `create` prints the new token alone on standard output, for scripts.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "tandem/engine.h"

static const char token_usage[] =
    "usage: tandem token create --name NAME --role ROLE [--scope NAMES] (--db PATH | --url URL)\n"
    "       tandem token list (--db PATH | --url URL) [--json]\n"
    "       tandem token revoke ID (--db PATH | --url URL)\n"
    "\n"
    "API tokens: every call of the HTTP API needs one (Authorization: Bearer TOKEN). A token\n"
    "has a name (the actor on the audit trail), a role and, for some roles, a scope:\n"
    "\n"
    "  admin     everything, tokens included\n"
    "  owner     the processes named in its scope: apply, train, submit, work their tasks,\n"
    "            give feedback; read everything but tokens\n"
    "  reviewer  the queues named in its scope: claim and complete their tasks, give\n"
    "            feedback on their decisions; read everything but tokens and the audit trail\n"
    "  viewer    read everything but tokens\n"
    "  service   submit items (to the processes in its scope, all when it has none) and read\n"
    "            their results; nothing else\n"
    "\n"
    "create prints the token alone on standard output, once: tandem keeps only its hash.\n"
    "list prints id, name, role, scope and state (--json: the API's answer). revoke stops a\n"
    "token at once, on its next request.\n"
    "\n"
    "options:\n"
    "  --name NAME           1 to 128 characters of A-Z a-z 0-9 . _ @ -\n"
    "  --role ROLE           admin, owner, reviewer, viewer or service\n"
    "  --scope NAMES         comma-separated process names (owner, service) or queue names\n"
    "                        (reviewer); * means all\n" CLI_TARGET_HELP
    "  --json                list: print the JSON answer\n"
    "  -h, --help            show this help\n";

typedef struct token_args {
    const char *verb;
    const char *id;
    const char *name;
    const char *role;
    const char *scope;
    int json;
    cli_target target;
} token_args;

static int parse_args(int argc, char **argv, token_args *a)
{
    enum { O_DB = 256, O_URL, O_NAME, O_ROLE, O_SCOPE, O_JSON };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"name", required_argument, NULL, O_NAME},
        {"role", required_argument, NULL, O_ROLE},
        {"scope", required_argument, NULL, O_SCOPE},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
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
        case O_NAME:
            a->name = optarg;
            break;
        case O_ROLE:
            a->role = optarg;
            break;
        case O_SCOPE:
            a->scope = optarg;
            break;
        case O_JSON:
            a->json = 1;
            break;
        case 'h':
            fputs(token_usage, stdout);
            return -1;
        case ':':
            cli_error("token: option %s needs a value (see tandem token --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("token: unknown option %s (see tandem token --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("token: expected create, list or revoke (see tandem token --help)");
        return CLI_EXIT_USAGE;
    }
    a->verb = argv[optind++];
    if (strcmp(a->verb, "revoke") == 0) {
        if (optind >= argc) {
            cli_error("token revoke: expected the token's id (tok_...; see tandem token list)");
            return CLI_EXIT_USAGE;
        }
        a->id = argv[optind++];
    } else if (strcmp(a->verb, "create") != 0 && strcmp(a->verb, "list") != 0) {
        cli_error("token: unknown action \"%s\" (expected create, list or revoke)", a->verb);
        return CLI_EXIT_USAGE;
    }
    if (optind < argc) {
        cli_error("token %s: unexpected argument \"%s\" (see tandem token --help)", a->verb,
                  argv[optind]);
        return CLI_EXIT_USAGE;
    }
    int creating = strcmp(a->verb, "create") == 0;
    if (creating && (a->name == NULL || a->role == NULL)) {
        cli_error("token create: --name and --role are required (see tandem token --help)");
        return CLI_EXIT_USAGE;
    }
    if (!creating && (a->name != NULL || a->role != NULL || a->scope != NULL)) {
        cli_error("token %s: --name, --role and --scope go with create only", a->verb);
        return CLI_EXIT_USAGE;
    }
    return cli_target_check(&a->target, "token");
}

/* Splits "a,b,c" in place into `out`; empty parts are an error. Returns the count or -1. */
static int split_scope(char *s, const char **out, size_t cap)
{
    size_t n = 0;
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p == '\0' || n == cap)
            return -1;
        out[n++] = p;
        if (comma == NULL)
            return (int)n;
        p = comma + 1;
    }
}

static void print_list(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *tokens = json_object_get(o, "tokens"), *t;
    size_t i;
    printf("%-28s %-24s %-9s %-9s %s\n", "ID", "NAME", "ROLE", "STATE", "SCOPE");
    json_array_foreach(tokens, i, t)
    {
        char *scope = json_dumps(json_object_get(t, "scope"), JSON_COMPACT);
        printf("%-28s %-24s %-9s %-9s %s\n", json_string_value(json_object_get(t, "id")),
               json_string_value(json_object_get(t, "name")),
               json_string_value(json_object_get(t, "role")),
               json_is_null(json_object_get(t, "revoked_at")) ? "active" : "revoked",
               scope != NULL ? scope : "[]");
        free(scope);
    }
    json_decref(o);
}

int cli_token(int argc, char **argv)
{
    token_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    const char *scope[TDM_SCOPE_MAX];
    int n_scope = 0;
    char *scope_copy = NULL;
    tdm_role role = 0;
    if (a.role != NULL && tdm_role_parse(a.role, &role) != 0) {
        cli_error("token create: --role \"%s\": expected admin, owner, reviewer, viewer or "
                  "service",
                  a.role);
        return CLI_EXIT_USAGE;
    }
    if (a.scope != NULL) {
        scope_copy = strdup(a.scope);
        if (scope_copy == NULL) {
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
        n_scope = split_scope(scope_copy, scope, TDM_SCOPE_MAX);
        if (n_scope < 0) {
            cli_error("token create: --scope \"%s\": expected 1 to %d comma-separated names, "
                      "none empty",
                      a.scope, TDM_SCOPE_MAX);
            free(scope_copy);
            return CLI_EXIT_USAGE;
        }
    }

    cli_client *c = NULL;
    if (cli_client_open(&a.target, strcmp(a.verb, "list") == 0, &c) != 0) {
        free(scope_copy);
        return CLI_EXIT_FAIL;
    }
    char *json = NULL;
    tdm_error err = {0};
    if (strcmp(a.verb, "create") == 0)
        rc = cli_client_token_create(c, a.name, role, scope, (size_t)n_scope, &json, &err);
    else if (strcmp(a.verb, "list") == 0)
        rc = cli_client_token_list(c, &json, &err);
    else
        rc = cli_client_token_revoke(c, a.id, &json, &err);
    if (rc != 0) {
        cli_error("token %s: %s", a.verb, err.message[0] ? err.message : tdm_strerror(rc));
        rc = CLI_EXIT_FAIL;
    } else if (strcmp(a.verb, "create") == 0) {
        json_t *o = json_loads(json, 0, NULL);
        const char *token = json_string_value(json_object_get(o, "token"));
        if (token != NULL) {
            printf("%s\n", token);
            fprintf(stderr, "tandem: token %s (%s, %s) created; it is shown this once\n",
                    json_string_value(json_object_get(o, "id")), a.name, a.role);
        } else {
            cli_error("token create: the answer has no token");
            rc = CLI_EXIT_FAIL;
        }
        json_decref(o);
    } else if (strcmp(a.verb, "list") == 0 && !a.json) {
        print_list(json);
    } else {
        fputs(json, stdout);
        if (json[0] != '\0' && json[strlen(json) - 1] != '\n')
            fputc('\n', stdout);
    }
    tdm_free(json);
    cli_client_close(c);
    free(scope_copy);
    return rc;
}
