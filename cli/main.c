/*
 * main.c — the tandem command: dispatches to subcommands.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tandem/tandem.h"

static const char usage[] =
    "usage: tandem <command> [options]\n"
    "\n"
    "tandem runs human-AI partnerships: the AI decides alone only where its error is proven\n"
    "to stay under a risk budget; everything else goes to a person.\n"
    "\n"
    "commands:\n"
    "  eval      train on labelled data and measure accuracy, calibration and the\n"
    "            coverage certified at a target error (tandem eval --help)\n"
    "  serve     serve the HTTP API on a database (tandem serve --help)\n"
    "  process   validate process files, or apply them to a database or server\n"
    "            (tandem process --help)\n"
    "  train     train a process's steps from labelled history (tandem train --help)\n"
    "  submit    send items from CSV or JSON Lines to a process (tandem submit --help)\n"
    "  export    export decisions as CSV or JSON Lines (tandem export --help)\n"
    "  audit     verify the audit trail's hash chain (tandem audit --help)\n"
    "  token     create, list and revoke API tokens (tandem token --help)\n"
    "  step      pause or resume the AI's autonomy at a step: the kill switch\n"
    "            (tandem step --help)\n"
    "  registry  list every AI use case with its owner, budget and state\n"
    "            (tandem registry --help)\n"
    "  fairness  compare a step's outcomes across groups of items: favourable rates,\n"
    "            impact ratio, overrides, error rates (tandem fairness --help)\n"
    "  plan      audit a team's logged tasks: AI-only, hybrid or human-only, the split\n"
    "            against the 70-20-10 rule of thumb, process-file skeletons\n"
    "            (tandem plan --help)\n"
    "  simulate  replay labelled history through a process with simulated reviewers:\n"
    "            automation, error and hours saved per routing strategy\n"
    "            (tandem simulate --help)\n"
    "  webhook   signed webhooks: subscribe a receiver to a process's events, list,\n"
    "            delete, see deliveries and the dead letters, replay (tandem webhook --help)\n"
    "  report    the return-on-investment report of a process over a window: baseline\n"
    "            against actual, trends, the AI's errors, as HTML, CSV or JSON\n"
    "            (tandem report --help)\n"
    "\n"
    "  process apply, train, submit, export, audit, token, step, registry and fairness\n"
    "  work on a database (--db PATH) or through a running server (--url\n"
    "  http://HOST:PORT, with a token in TANDEM_TOKEN).\n"

    "\n"
    "options:\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n";

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tandem: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= lo && v <= hi)) {
        cli_error("%s: expected a number from %g to %g, got \"%s\"", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || s[0] == '-' || v < lo || v > hi) {
        cli_error("%s: expected a whole number from %llu to %llu, got \"%s\"", opt,
                  (unsigned long long)lo, (unsigned long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tandem %s\n", tdm_version());
        return 0;
    }
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"eval", cli_eval},         {"serve", cli_serve},       {"process", cli_process},
        {"train", cli_train},       {"submit", cli_submit},     {"export", cli_export},
        {"audit", cli_audit},       {"token", cli_token},       {"step", cli_step},
        {"registry", cli_registry}, {"fairness", cli_fairness}, {"plan", cli_plan},
        {"simulate", cli_simulate}, {"webhook", cli_webhook},   {"report", cli_report},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    cli_error("unknown command \"%s\" (try tandem --help)", cmd);
    return CLI_EXIT_USAGE;
}
