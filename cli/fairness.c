/*
 * fairness.c — `tandem fairness`: a step's fairness report, on a database (read-only) or
 * through a running server. Prints a table, or with --json the engine's answer as it is.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "tandem/engine.h"

static const char fairness_usage[] =
    "usage: tandem fairness --process NAME --group FIELD [--bins E1,E2,...] [--step ID]\n"
    "                       (--db PATH | --url URL) [--json]\n"
    "\n"
    "Compares the outcomes of a step across groups of items: per group, the share of\n"
    "favourable AI proposals and of favourable final decisions, the impact ratio to the\n"
    "group with the highest final rate (and whether it passes the four-fifths rule), how\n"
    "often people overrode the AI, and where the true outcome is known the AI's true and\n"
    "false positive rates; then the equalized-odds gaps (the spread of those rates).\n"
    "docs/api.md (GET /v1/processes/{name}/fairness) defines every number.\n"
    "\n"
    "options:\n"
    "  --process NAME        the process\n"
    "  --group FIELD         the item field that makes the groups, like age\n"
    "  --bins E1,E2,...      numeric groups: strictly increasing edges; 25 makes <=25 and\n"
    "                        >25, 25,40 makes <=25, 25<..<=40 and >40 (default: one group\n"
    "                        per value)\n"
    "  --step ID             the step (default: the first that declares "
    "output.favourable)\n" CLI_TARGET_HELP
    "  --json                print the JSON answer instead of the table\n"
    "  -h, --help            show this help\n";

typedef struct fairness_args {
    const char *process, *group, *bins, *step;
    int json;
    cli_target target;
} fairness_args;

static int parse_args(int argc, char **argv, fairness_args *a)
{
    enum { O_DB = 256, O_URL, O_PROCESS, O_GROUP, O_BINS, O_STEP, O_JSON };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"process", required_argument, NULL, O_PROCESS},
        {"group", required_argument, NULL, O_GROUP},
        {"bins", required_argument, NULL, O_BINS},
        {"step", required_argument, NULL, O_STEP},
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
        case O_PROCESS:
            a->process = optarg;
            break;
        case O_GROUP:
            a->group = optarg;
            break;
        case O_BINS:
            a->bins = optarg;
            break;
        case O_STEP:
            a->step = optarg;
            break;
        case O_JSON:
            a->json = 1;
            break;
        case 'h':
            fputs(fairness_usage, stdout);
            return -1;
        case ':':
            cli_error("fairness: option %s needs a value (see tandem fairness --help)",
                      argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("fairness: unknown option %s (see tandem fairness --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("fairness: unexpected argument \"%s\" (see tandem fairness --help)",
                  argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (a->process == NULL || a->group == NULL) {
        cli_error("fairness: --process and --group are required (see tandem fairness --help)");
        return CLI_EXIT_USAGE;
    }
    return cli_target_check(&a->target, "fairness");
}

/* Parses "25,40,60" into edges; prints what is wrong and returns -1 on a malformed list. The
 * engine checks the count and the order. */
static int parse_bins(const char *s, double *out, size_t cap, size_t *n)
{
    *n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || errno != 0 || p[0] == ' ' ||
            !isfinite(v)) {
            cli_error("fairness: --bins \"%s\": expected comma-separated numbers like 25,40,60", s);
            return -1;
        }
        if (*n == cap) {
            cli_error("fairness: --bins \"%s\": at most %zu edges", s, cap);
            return -1;
        }
        out[(*n)++] = v;
        if (*end == '\0')
            return 0;
        p = end + 1;
    }
}

/* A rate or ratio for the table: "-" for null. */
static const char *cell(json_t *v, char *buf, size_t cap)
{
    if (json_is_number(v))
        snprintf(buf, cap, "%.4f", json_number_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(buf, cap, "-");
    return buf;
}

static void print_table(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *groups = json_object_get(o, "groups"), *g;
    size_t i;
    int width = 5;
    json_array_foreach(groups, i, g)
    {
        int len = (int)strlen(json_string_value(json_object_get(g, "group")));
        if (len > width)
            width = len > 40 ? 40 : len;
    }
    const char *fav = json_string_value(json_object_get(o, "favourable"));
    printf("process %s, step %s, favourable outcome \"%s\", grouped by %s\n\n",
           json_string_value(json_object_get(o, "process")),
           json_string_value(json_object_get(o, "step")), fav ? fav : "",
           json_string_value(json_object_get(o, "field")));
    printf("%-*s %8s %9s %9s %9s %6s %9s %9s %9s\n", width, "GROUP", "COUNT", "AI FAV", "FINAL FAV",
           "IMPACT", "4/5 OK", "OVERRIDE", "TPR", "FPR");
    json_array_foreach(groups, i, g)
    {
        char b[7][32];
        printf("%-*s %8lld %9s %9s %9s %6s %9s %9s %9s\n", width,
               json_string_value(json_object_get(g, "group")),
               (long long)json_integer_value(json_object_get(g, "count")),
               cell(json_object_get(g, "ai_favourable_rate"), b[0], sizeof b[0]),
               cell(json_object_get(g, "final_favourable_rate"), b[1], sizeof b[1]),
               cell(json_object_get(g, "impact_ratio"), b[2], sizeof b[2]),
               cell(json_object_get(g, "four_fifths_ok"), b[3], sizeof b[3]),
               cell(json_object_get(g, "override_rate"), b[4], sizeof b[4]),
               cell(json_object_get(g, "tpr"), b[5], sizeof b[5]),
               cell(json_object_get(g, "fpr"), b[6], sizeof b[6]));
    }
    if (json_array_size(groups) == 0)
        printf("(no items reached the step)\n");
    json_t *eo = json_object_get(o, "equalized_odds");
    char t[32], f[32];
    printf("\nequalized odds: TPR gap %s, FPR gap %s\n",
           cell(json_object_get(eo, "tpr_gap"), t, sizeof t),
           cell(json_object_get(eo, "fpr_gap"), f, sizeof f));
    json_decref(o);
}

int cli_fairness(int argc, char **argv)
{
    fairness_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    double bins[TDM_FAIRNESS_MAX_BINS];
    size_t n_bins = 0;
    if (a.bins != NULL && parse_bins(a.bins, bins, TDM_FAIRNESS_MAX_BINS, &n_bins) != 0)
        return CLI_EXIT_USAGE;

    cli_client *c = NULL;
    if (cli_client_open(&a.target, 1, &c) != 0)
        return CLI_EXIT_FAIL;
    char *json = NULL;
    tdm_error err = {0};
    rc = cli_client_fairness(c, a.process, a.step, a.group, bins, n_bins, &json, &err);
    cli_client_close(c);
    if (rc != 0) {
        cli_error("fairness: %s", err.message[0] ? err.message : tdm_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    if (a.json) {
        fputs(json, stdout);
        if (json[0] != '\0' && json[strlen(json) - 1] != '\n')
            fputc('\n', stdout);
    } else {
        print_table(json);
    }
    free(json);
    if (fflush(stdout) != 0) {
        cli_error("cannot write to standard output: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return 0;
}
