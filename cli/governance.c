/*
 * governance.c — `tandem step pause|resume` (the kill switch) and `tandem registry` (every
 * AI use case with its owner, budget and state), on a database or through a server.
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

static const char step_usage[] =
    "usage: tandem step pause --process NAME --step ID [--reason TEXT] (--db PATH | --url URL)\n"
    "       tandem step resume --process NAME --step ID (--db PATH | --url URL)\n"
    "\n"
    "The kill switch. pause stops the AI from deciding alone at a step: every item of the\n"
    "step then goes to a person, with the AI's proposal beside it. resume gives the AI back\n"
    "its autonomy (inside its risk budget, as before) and restarts the count of audit\n"
    "samples that can pause it again. Both are on the audit trail; through --url they need\n"
    "an owner token of the process, or an admin token, in TANDEM_TOKEN.\n"
    "\n"
    "options:\n"
    "  --process NAME        the process\n"
    "  --step ID             the step (an ai or hybrid step)\n"
    "  --reason TEXT         why (pause only; at most 255 bytes)\n" CLI_TARGET_HELP CLI_ACTOR_HELP
    "  -h, --help            show this help\n";

static const char registry_usage[] =
    "usage: tandem registry (--db PATH | --url URL) [--json]\n"
    "\n"
    "Lists every AI use case: each step where the AI proposes or decides, with its process,\n"
    "allocation, owner, linked KPIs, risk budget, current threshold, model version,\n"
    "automation rate, audited error and its bound, last audit sample, and whether it is\n"
    "paused. --json prints the API's answer (docs/api.md, GET /v1/registry).\n"
    "\n"
    "options:\n" CLI_TARGET_HELP "  --json                print the JSON answer\n"
    "  -h, --help            show this help\n";

typedef struct gov_args {
    const char *process, *step, *reason;
    int json;
    cli_target target;
} gov_args;

/* Parses the options of both commands; `cmd` names the command for messages. */
static int parse_args(int argc, char **argv, const char *cmd, const char *usage, gov_args *a)
{
    enum { O_DB = 256, O_URL, O_PROCESS, O_STEP, O_REASON, O_JSON, O_ACTOR };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"process", required_argument, NULL, O_PROCESS},
        {"step", required_argument, NULL, O_STEP},
        {"reason", required_argument, NULL, O_REASON},
        {"json", no_argument, NULL, O_JSON},
        {"actor", required_argument, NULL, O_ACTOR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DB:
            a->target.db = optarg;
            break;
        case O_URL:
            a->target.url = optarg;
            break;
        case O_PROCESS:
            a->process = optarg;
            break;
        case O_STEP:
            a->step = optarg;
            break;
        case O_REASON:
            a->reason = optarg;
            break;
        case O_JSON:
            a->json = 1;
            break;
        case O_ACTOR:
            a->target.actor = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        case ':':
            cli_error("%s: option %s needs a value (see tandem %s --help)", cmd, argv[optind - 1],
                      cmd);
            return CLI_EXIT_USAGE;
        default:
            cli_error("%s: unknown option %s (see tandem %s --help)", cmd, argv[optind - 1], cmd);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("%s: unexpected argument \"%s\" (see tandem %s --help)", cmd, argv[optind], cmd);
        return CLI_EXIT_USAGE;
    }
    return cli_target_check(&a->target, cmd);
}

int cli_step(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(step_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : 0;
    }
    const char *verb = argv[1];
    int pause = strcmp(verb, "pause") == 0;
    if (!pause && strcmp(verb, "resume") != 0) {
        cli_error("step: unknown action \"%s\" (expected pause or resume)", verb);
        return CLI_EXIT_USAGE;
    }
    gov_args a;
    memset(&a, 0, sizeof a);
    optind = 2;
    int rc = parse_args(argc, argv, "step", step_usage, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (a.process == NULL || a.step == NULL) {
        cli_error("step %s: --process and --step are required (see tandem step --help)", verb);
        return CLI_EXIT_USAGE;
    }
    if (!pause && a.reason != NULL) {
        cli_error("step resume: --reason goes with pause only");
        return CLI_EXIT_USAGE;
    }
    if (a.json) {
        cli_error("step %s: --json goes with tandem registry only", verb);
        return CLI_EXIT_USAGE;
    }
    cli_client *c = NULL;
    if (cli_client_open(&a.target, 0, &c) != 0)
        return CLI_EXIT_FAIL;
    char *json = NULL;
    tdm_error err = {0};
    rc = cli_client_pause_step(c, a.process, a.step, pause, a.reason, &json, &err);
    if (rc != 0) {
        cli_error("step %s: %s", verb, err.message[0] ? err.message : tdm_strerror(rc));
        rc = CLI_EXIT_FAIL;
    } else {
        json_t *o = json_loads(json, 0, NULL);
        int changed = json_is_true(json_object_get(o, "changed"));
        printf("%s/%s: %s%s\n", a.process, a.step,
               pause ? "paused: every item goes to a person"
                     : "resumed: the AI decides alone again inside its budget",
               changed ? "" : " (it already was)");
        json_decref(o);
    }
    tdm_free(json);
    cli_client_close(c);
    return rc;
}

/* A number or "-" for null. */
static void cell(char *buf, size_t cap, json_t *v, const char *fmt, double scale)
{
    if (json_is_number(v))
        snprintf(buf, cap, fmt, json_number_value(v) * scale);
    else
        snprintf(buf, cap, "-");
}

static void print_registry(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *list = json_object_get(o, "use_cases"), *u;
    size_t i;
    printf("%-24s %-14s %-7s %-26s %7s %9s %6s %10s %14s %-7s\n", "PROCESS/STEP", "ALLOCATION",
           "BUDGET", "OWNER", "MODEL", "THRESHOLD", "AUTO", "AUDITED", "ERROR (BOUND)", "STATE");
    json_array_foreach(list, i, u)
    {
        char name[256], budget[16], threshold[16], automation[16], err[16], bound[16], what[40];
        snprintf(name, sizeof name, "%s/%s", json_string_value(json_object_get(u, "process")),
                 json_string_value(json_object_get(u, "step")));
        json_t *rb = json_object_get(u, "risk_budget");
        cell(budget, sizeof budget, json_object_get(rb, "max_error"), "%.1f%%", 100);
        cell(threshold, sizeof threshold, json_object_get(u, "threshold"), "%.3f", 1);
        cell(automation, sizeof automation, json_object_get(u, "automation_rate"), "%.0f%%", 100);
        cell(err, sizeof err, json_object_get(u, "audited_error"), "%.1f%%", 100);
        cell(bound, sizeof bound, json_object_get(u, "audited_error_bound"), "%.1f%%", 100);
        snprintf(what, sizeof what, "%s (%s)", err, bound);
        printf("%-24s %-14s %-7s %-26s %7lld %9s %6s %10lld %14s %-7s\n", name,
               json_string_value(json_object_get(u, "allocation")), budget,
               json_string_value(json_object_get(u, "owner")),
               (long long)json_integer_value(json_object_get(u, "model_version")), threshold,
               automation, (long long)json_integer_value(json_object_get(u, "audited")), what,
               json_is_true(json_object_get(u, "paused")) ? "paused" : "active");
    }
    if (json_array_size(list) == 0)
        printf("(no AI use case: no process has an ai or hybrid step)\n");
    json_decref(o);
}

int cli_registry(int argc, char **argv)
{
    gov_args a;
    memset(&a, 0, sizeof a);
    optind = 1;
    int rc = parse_args(argc, argv, "registry", registry_usage, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (a.process != NULL || a.step != NULL || a.reason != NULL || a.target.actor != NULL) {
        cli_error("registry: takes only --db or --url, and --json (see tandem registry --help)");
        return CLI_EXIT_USAGE;
    }
    cli_client *c = NULL;
    if (cli_client_open(&a.target, 1, &c) != 0)
        return CLI_EXIT_FAIL;
    char *json = NULL;
    tdm_error err = {0};
    rc = cli_client_registry(c, &json, &err);
    if (rc != 0) {
        cli_error("registry: %s", err.message[0] ? err.message : tdm_strerror(rc));
        rc = CLI_EXIT_FAIL;
    } else if (a.json) {
        fputs(json, stdout);
        if (json[0] != '\0' && json[strlen(json) - 1] != '\n')
            fputc('\n', stdout);
    } else {
        print_registry(json);
    }
    tdm_free(json);
    cli_client_close(c);
    return rc;
}
