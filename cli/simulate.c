/*
 * simulate.c — `tandem simulate`: replays labelled history through a process with simulated
 * reviewers, once per routing strategy, and reports automation, error and hours saved, as a
 * table, one JSON object, or a self-contained HTML report with SVG charts.
 *
 * The simulation itself is libtandem's (include/tandem/simulate.h, src/core/simulate.c);
 * this file reads the options and the files, and renders the answer.
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
#include "tandem/simulate.h"

static const char simulate_usage[] =
    "usage: tandem simulate --process FILE --data LABELLED [--history N]\n"
    "                       [--reviewer-error E] [--reviewer-minutes M] [--seed S]\n"
    "                       [--strategies LIST] [--json] [--html FILE]\n"
    "\n"
    "Replays labelled rows through a process on a throwaway store, with simulated\n"
    "reviewers, to see what a routing strategy would give before rollout. The first N rows\n"
    "of LABELLED train the process (--history N); the other rows (all of them, without it)\n"
    "are submitted one by one in a seeded random order. Each task is answered by a simulated\n"
    "reviewer who gives the row's true label, except with probability E another label drawn\n"
    "at random, and the model learns from the answer as it does in production (the engine's\n"
    "own code). Every strategy sees the same order and the same reviewer answers.\n"
    "\n"
    "Reports per strategy: items; ai_share, the share the AI decided alone; ai_error, the\n"
    "error of those decisions; final_error, the error of all final decisions (the\n"
    "reviewers' included); reviewer minutes; hours saved against the process's baseline;\n"
    "the first item the AI decided alone; the AI's share and error per block of 1,000\n"
    "items.\n"
    "\n"
    "options:\n"
    "  --process FILE        the process file (YAML, docs/process-file.md)\n"
    "  --data LABELLED       CSV with a header row (.csv) or JSON Lines (.jsonl): each step's\n"
    "                        inputs and its answer (the column its output names)\n"
    "  --history N           train on the first N rows first (default 0: start from nothing)\n"
    "  --reviewer-error E    the reviewers' error rate, 0 to below 1 (default 0.02)\n"
    "  --reviewer-minutes M  minutes a reviewer takes per task (default: the process's\n"
    "                        baseline.minutes_per_item)\n"
    "  --seed S              replay order, reviewer mistakes, audit samples (default 1)\n"
    "  --strategies LIST     comma-separated, in the order reported (default\n"
    "                        all-human,fixed:0.90,guaranteed):\n"
    "                          all-human   every item to a person (the AI decides nothing)\n"
    "                          fixed:T     the AI alone when its confidence is at least T,\n"
    "                                      0 < T <= 1, and no review rule holds the item\n"
    "                                      (no certificate, no audit sample)\n"
    "                          guaranteed  the process as written: tandem's certified\n"
    "                                      threshold, audit samples and review rules\n"
    "  --json                print one JSON object instead of the table\n"
    "  --html FILE           also write a self-contained HTML report with charts\n"
    "  --jobs N              strategies replayed at once, 1 to 16 (default: one per core)\n"
    "  --work-dir DIR        where the throwaway stores go (default $TMPDIR, else\n"
    "                        /dev/shm when it can be written, else /tmp); they are\n"
    "                        deleted at the end\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 done, 1 the data or the process file is wrong (the message names the\n"
    "file and line), 2 an option is wrong.\n";

/* ---- options ------------------------------------------------------------------------------ */

typedef struct sim_args {
    const char *process, *data, *html, *work_dir;
    const char *history, *reviewer_error, *reviewer_minutes, *seed, *strategies, *jobs;
    int json;
} sim_args;

static int parse_args(int argc, char **argv, sim_args *a)
{
    enum {
        O_PROCESS = 256,
        O_DATA,
        O_HISTORY,
        O_REVIEWER_ERROR,
        O_REVIEWER_MINUTES,
        O_SEED,
        O_STRATEGIES,
        O_JSON,
        O_HTML,
        O_JOBS,
        O_WORK_DIR,
    };
    static const struct option longopts[] = {
        {"process", required_argument, NULL, O_PROCESS},
        {"data", required_argument, NULL, O_DATA},
        {"history", required_argument, NULL, O_HISTORY},
        {"reviewer-error", required_argument, NULL, O_REVIEWER_ERROR},
        {"reviewer-minutes", required_argument, NULL, O_REVIEWER_MINUTES},
        {"seed", required_argument, NULL, O_SEED},
        {"strategies", required_argument, NULL, O_STRATEGIES},
        {"json", no_argument, NULL, O_JSON},
        {"html", required_argument, NULL, O_HTML},
        {"jobs", required_argument, NULL, O_JOBS},
        {"work-dir", required_argument, NULL, O_WORK_DIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_PROCESS:
            a->process = optarg;
            break;
        case O_DATA:
            a->data = optarg;
            break;
        case O_HISTORY:
            a->history = optarg;
            break;
        case O_REVIEWER_ERROR:
            a->reviewer_error = optarg;
            break;
        case O_REVIEWER_MINUTES:
            a->reviewer_minutes = optarg;
            break;
        case O_SEED:
            a->seed = optarg;
            break;
        case O_STRATEGIES:
            a->strategies = optarg;
            break;
        case O_JSON:
            a->json = 1;
            break;
        case O_HTML:
            a->html = optarg;
            break;
        case O_JOBS:
            a->jobs = optarg;
            break;
        case O_WORK_DIR:
            a->work_dir = optarg;
            break;
        case 'h':
            fputs(simulate_usage, stdout);
            return -1;
        case ':':
            cli_error("simulate: option %s needs a value (see tandem simulate --help)",
                      argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("simulate: unknown option %s (see tandem simulate --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("simulate: unexpected argument \"%s\" (the data goes with --data; see tandem "
                  "simulate --help)",
                  argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (a->process == NULL || a->data == NULL) {
        cli_error("simulate: give --process FILE and --data LABELLED (see tandem simulate "
                  "--help)");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/*
 * Parses "all-human,fixed:0.90,guaranteed" into strategies whose names are the words as
 * written. Prints what is wrong and returns -1. The names point into `list` (kept alive).
 */
static int parse_strategies(char *list, tdm_sim_strategy *out, size_t *n)
{
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        tdm_sim_strategy s = {0, 0, tok};
        if (strcmp(tok, "all-human") == 0) {
            s.kind = TDM_SIM_ALL_HUMAN;
        } else if (strcmp(tok, "guaranteed") == 0) {
            s.kind = TDM_SIM_GUARANTEED;
        } else if (strncmp(tok, "fixed:", 6) == 0) {
            char *e;
            errno = 0;
            s.kind = TDM_SIM_FIXED;
            s.threshold = strtod(tok + 6, &e);
            if (e == tok + 6 || *e != '\0' || errno != 0 ||
                !(s.threshold > 0 && s.threshold <= 1)) {
                cli_error("simulate: --strategies: \"%s\": a fixed threshold T must be a number "
                          "above 0 and at most 1 (like fixed:0.90)",
                          tok);
                return -1;
            }
        } else {
            cli_error("simulate: --strategies: unknown strategy \"%s\" (expected all-human, "
                      "fixed:T with 0 < T <= 1, or guaranteed, separated by commas)",
                      tok);
            return -1;
        }
        for (size_t i = 0; i < *n; i++) {
            if (strcmp(out[i].name, tok) == 0) {
                cli_error("simulate: --strategies: \"%s\" is named twice (name each strategy "
                          "once)",
                          tok);
                return -1;
            }
        }
        if (*n == TDM_SIM_MAX_STRATEGIES) {
            cli_error("simulate: --strategies: at most %d strategies", TDM_SIM_MAX_STRATEGIES);
            return -1;
        }
        out[(*n)++] = s;
    }
    if (*n == 0) {
        cli_error("simulate: --strategies: give at least one (all-human, fixed:T, guaranteed)");
        return -1;
    }
    return 0;
}

/* ---- numbers as people read them ---------------------------------------------------------- */

static void fmt_pct(char *buf, size_t cap, json_t *v, int decimals)
{
    if (json_is_number(v))
        snprintf(buf, cap, "%.*f%%", decimals, 100 * json_number_value(v));
    else
        snprintf(buf, cap, "-");
}

/* 13083 -> "13,083" */
static void fmt_count(char *buf, size_t cap, long long v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v);
    size_t n = strlen(digits), o = 0;
    if (v < 0 && o + 1 < cap)
        buf[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

static long long jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static double jnum(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void print_heading(FILE *out, json_t *r)
{
    char items[32], history[32];
    fmt_count(items, sizeof items, jint(r, "items"));
    fmt_count(history, sizeof history, jint(r, "history"));
    fprintf(out, "process %s: %s items replayed", json_string_value(json_object_get(r, "process")),
            items);
    if (jint(r, "history") > 0)
        fprintf(out, " after training on %s rows of history", history);
    else
        fprintf(out, " from no model at all (cold start)");
    fprintf(out,
            "\nreviewers err %.1f%% of the time and take %g min per task; baseline %g min "
            "per item; seed %lld\n",
            100 * jnum(r, "reviewer_error"), jnum(r, "reviewer_minutes"),
            jnum(r, "baseline_minutes"), jint(r, "seed"));
}

static void print_table(json_t *r)
{
    print_heading(stdout, r);
    json_t *strategies = json_object_get(r, "strategies");
    size_t w = 8, i;
    json_t *s;
    json_array_foreach(strategies, i, s)
    {
        size_t l = strlen(json_string_value(json_object_get(s, "name")));
        w = l > w ? l : w;
    }
    char tail_head[64], tail_n[32];
    fmt_count(tail_n, sizeof tail_n,
              jint(json_object_get(json_array_get(strategies, 0), "tail"), "items"));
    snprintf(tail_head, sizeof tail_head, "last %s: AI alone (error)", tail_n);
    printf("\n%-*s  %7s  %8s  %8s  %11s  %10s  %11s  %13s  %s\n", (int)w, "strategy", "items",
           "AI alone", "AI error", "final error", "reviewer h", "hours saved", "first AI item",
           tail_head);
    json_array_foreach(strategies, i, s)
    {
        char share[16], aerr[16], ferr[16], first[32], tshare[16], terr[16];
        fmt_pct(tshare, sizeof tshare, json_object_get(json_object_get(s, "tail"), "ai_share"), 1);
        fmt_pct(terr, sizeof terr, json_object_get(json_object_get(s, "tail"), "ai_error"), 2);
        fmt_pct(share, sizeof share, json_object_get(s, "ai_share"), 1);
        fmt_pct(aerr, sizeof aerr, json_object_get(s, "ai_error"), 2);
        fmt_pct(ferr, sizeof ferr, json_object_get(s, "final_error"), 2);
        json_t *fa = json_object_get(s, "first_ai_item");
        if (json_is_integer(fa))
            fmt_count(first, sizeof first, (long long)json_integer_value(fa));
        else
            snprintf(first, sizeof first, "never");
        printf("%-*s  %7lld  %8s  %8s  %11s  %10.1f  %11.1f  %13s  %s (%s)\n", (int)w,
               json_string_value(json_object_get(s, "name")), jint(s, "items"), share, aerr, ferr,
               jnum(s, "reviewer_minutes") / 60, jnum(s, "hours_saved"), first, tshare, terr);
    }
    char block[32];
    fmt_count(block, sizeof block, TDM_SIM_BLOCK);
    printf("\nAI alone (AI error) per block of %s items\n%7s", block, "end");
    size_t cw = 18;
    json_array_foreach(strategies, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        printf("  %-*s", i + 1 < json_array_size(strategies) ? (int)cw : 0, name);
    }
    putchar('\n');
    json_t *first_blocks = json_object_get(json_array_get(strategies, 0), "blocks");
    for (size_t b = 0; b < json_array_size(first_blocks); b++) {
        printf("%7lld", jint(json_array_get(first_blocks, b), "end"));
        json_array_foreach(strategies, i, s)
        {
            json_t *blk = json_array_get(json_object_get(s, "blocks"), b);
            char share[16], aerr[16], both[48];
            fmt_pct(share, sizeof share, json_object_get(blk, "ai_share"), 1);
            fmt_pct(aerr, sizeof aerr, json_object_get(blk, "ai_error"), 2);
            snprintf(both, sizeof both, "%s (%s)", share, aerr);
            printf("  %-*s", i + 1 < json_array_size(strategies) ? (int)cw : 0, both);
        }
        putchar('\n');
    }
}

/* ---- the HTML report ---------------------------------------------------------------------- */

static void html_text(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Colours and dash patterns that stay apart in grey on paper. */
static const char *const line_colour[] = {"#1b6ca8", "#c2410c", "#15803d", "#7e22ce",
                                          "#a16207", "#0f766e", "#be123c", "#4b5563"};
static const char *const line_dash[] = {"", "6 3", "2 3", "8 3 2 3"};

/*
 * One line chart: x the block ends (items replayed), y the value of `key` in each block
 * (0 to y_max), one polyline per strategy; a null value breaks the line.
 */
static void svg_chart(FILE *f, json_t *strategies, const char *key, double y_max, const char *title,
                      long long items)
{
    const double W = 640, H = 300, L = 56, R = 16, T = 28, B = 44;
    const double pw = W - L - R, ph = H - T - B;
    fprintf(f,
            "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\" "
            "aria-label=\"",
            W, H, W, H);
    html_text(f, title);
    fprintf(f, "\" xmlns=\"http://www.w3.org/2000/svg\">\n");
    fprintf(f, "<text x=\"%.0f\" y=\"18\" class=\"t\">", L);
    html_text(f, title);
    fprintf(f, "</text>\n");
    for (int g = 0; g <= 4; g++) {
        double y = T + ph - ph * g / 4.0;
        fprintf(f,
                "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>"
                "<text x=\"%.0f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%g%%</text>\n",
                L, L + pw, y, y, L - 6, y + 4, 100 * y_max * g / 4.0);
    }
    /* Ticks on the items axis at a round step (1, 2 or 5 times a power of ten), at most 6. */
    double x_max = items > 0 ? (double)items : 1;
    double step = 1;
    while (x_max / step > 5) {
        double d = step * 2;
        if (x_max / d > 5)
            d = step * 5;
        if (x_max / d > 5)
            d = step * 10;
        step = d;
    }
    for (double v = 0; v <= x_max + 1e-9; v += step) {
        char n[32];
        fmt_count(n, sizeof n, (long long)llround(v));
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" class=\"a\" text-anchor=\"middle\">%s</text>\n",
                L + pw * v / x_max, T + ph + 16, n);
    }
    char block[32];
    fmt_count(block, sizeof block, TDM_SIM_BLOCK);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.0f\" class=\"a\" text-anchor=\"middle\">items replayed (a "
            "point at the end of each block of %s)</text>\n",
            L + pw / 2, H - 6, block);
    fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" class=\"x\"/>\n", L, L + pw,
            T + ph, T + ph);
    size_t i;
    json_t *s;
    json_array_foreach(strategies, i, s)
    {
        const char *colour = line_colour[i % 8], *dash = line_dash[i % 4];
        json_t *blocks = json_object_get(s, "blocks");
        int open = 0;
        for (size_t b = 0; b < json_array_size(blocks); b++) {
            json_t *blk = json_array_get(blocks, b);
            json_t *v = json_object_get(blk, key);
            if (!json_is_number(v)) {
                if (open)
                    fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            double val = json_number_value(v);
            val = val > y_max ? y_max : val;
            double x = L + pw * (double)jint(blk, "end") / x_max;
            double y = T + ph - ph * val / y_max;
            if (!open)
                fprintf(f,
                        "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                        "stroke-dasharray=\"%s\" points=\"",
                        colour, dash);
            fprintf(f, "%s%.1f,%.1f", open ? " " : "", x, y);
            open = 1;
        }
        if (open)
            fputs("\"/>\n", f);
        for (size_t b = 0; b < json_array_size(blocks); b++) {
            json_t *blk = json_array_get(blocks, b);
            json_t *v = json_object_get(blk, key);
            if (!json_is_number(v))
                continue;
            double val = json_number_value(v);
            val = val > y_max ? y_max : val;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    L + pw * (double)jint(blk, "end") / x_max, T + ph - ph * val / y_max, colour);
        }
    }
    fputs("</svg>\n", f);
}

static void html_legend(FILE *f, json_t *strategies)
{
    size_t i;
    json_t *s;
    fputs("<p class=\"legend\">", f);
    json_array_foreach(strategies, i, s)
    {
        fprintf(f,
                "<span><svg width=\"36\" height=\"10\" aria-hidden=\"true\"><line x1=\"0\" "
                "x2=\"36\" y1=\"5\" y2=\"5\" stroke=\"%s\" stroke-width=\"2\" "
                "stroke-dasharray=\"%s\"/></svg> ",
                line_colour[i % 8], line_dash[i % 4]);
        html_text(f, json_string_value(json_object_get(s, "name")));
        fputs("</span>", f);
    }
    fputs("</p>\n", f);
}

static const char html_style[] =
    "body{font:15px/1.45 system-ui,sans-serif;color:#111;max-width:72rem;margin:2rem auto;"
    "padding:0 1rem}"
    "h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}"
    "table{border-collapse:collapse;margin:.5rem 0}"
    "th,td{padding:.25rem .6rem;border-bottom:1px solid #ccc;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".pair{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}"
    ".pair svg{max-width:100%;height:auto}"
    ".legend span{margin-right:1.2rem;white-space:nowrap}"
    "svg .t{font-size:14px;font-weight:600}svg .a{font-size:11px;fill:#333}"
    "svg .g{stroke:#e2e2e2}svg .x{stroke:#333}"
    ".note{color:#444;font-size:.9rem}.lead{white-space:pre-line}"
    "@media print{body{margin:0;max-width:none}.pair{break-inside:avoid}"
    "table{break-inside:avoid}}";

static int write_html(const char *path, json_t *r)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        cli_error("simulate: --html %s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    json_t *strategies = json_object_get(r, "strategies");
    const char *process = json_string_value(json_object_get(r, "process"));
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    fputs("tandem simulate: ", f);
    html_text(f, process);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>Simulation: ", html_style);
    html_text(f, process);
    fputs("</h1>\n<p class=\"lead\">", f);
    char *heading = NULL;
    size_t hl = 0;
    FILE *m = open_memstream(&heading, &hl);
    if (m != NULL) {
        print_heading(m, r);
        fclose(m);
        html_text(f, heading);
        free(heading);
    }
    fputs("</p>\n<h2>Strategies</h2>\n<table>\n<thead><tr><th>strategy</th><th>items</th>"
          "<th>AI alone</th><th>AI error</th><th>final error</th><th>reviewer hours</th>"
          "<th>hours saved</th><th>first AI item</th><th>AI alone (AI error) at the end</th>"
          "</tr></thead>\n<tbody>\n",
          f);
    size_t i;
    json_t *s;
    json_array_foreach(strategies, i, s)
    {
        char share[16], aerr[16], ferr[16], first[32], items[32], tshare[16], terr[16], tn[32];
        json_t *tail = json_object_get(s, "tail");
        fmt_pct(tshare, sizeof tshare, json_object_get(tail, "ai_share"), 1);
        fmt_pct(terr, sizeof terr, json_object_get(tail, "ai_error"), 2);
        fmt_count(tn, sizeof tn, jint(tail, "items"));
        fmt_pct(share, sizeof share, json_object_get(s, "ai_share"), 1);
        fmt_pct(aerr, sizeof aerr, json_object_get(s, "ai_error"), 2);
        fmt_pct(ferr, sizeof ferr, json_object_get(s, "final_error"), 2);
        fmt_count(items, sizeof items, jint(s, "items"));
        json_t *fa = json_object_get(s, "first_ai_item");
        if (json_is_integer(fa))
            fmt_count(first, sizeof first, (long long)json_integer_value(fa));
        else
            snprintf(first, sizeof first, "never");
        fputs("<tr><td>", f);
        html_text(f, json_string_value(json_object_get(s, "name")));
        fprintf(f,
                "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.1f</td><td>%.1f</td>"
                "<td>%s</td><td>%s (%s) over the last %s</td></tr>\n",
                items, share, aerr, ferr, jnum(s, "reviewer_minutes") / 60, jnum(s, "hours_saved"),
                first, tshare, terr, tn);
    }
    fputs("</tbody>\n</table>\n", f);

    /* The error chart's scale: the first of 2%, 5%, 10%, 20%, 50%, 100% at or above the
     * highest block error. */
    double e_max = 0.02;
    json_array_foreach(strategies, i, s)
    {
        json_t *blocks = json_object_get(s, "blocks");
        for (size_t b = 0; b < json_array_size(blocks); b++) {
            json_t *v = json_object_get(json_array_get(blocks, b), "ai_error");
            if (json_is_number(v) && json_number_value(v) > e_max)
                e_max = json_number_value(v);
        }
    }
    static const double scales[] = {0.02, 0.05, 0.1, 0.2, 0.5, 1.0};
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        if (e_max <= scales[k] + 1e-12) {
            e_max = scales[k];
            break;
        }
    }
    long long items = jint(r, "items");
    static const struct {
        const char *key, *title, *heading;
    } charts[] = {
        {"ai_share", "Share decided by the AI alone, per block", "Automation"},
        {"ai_error", "Error of the AI-alone decisions, per block", "Error of the AI alone"},
    };
    for (size_t c = 0; c < 2; c++) {
        fprintf(f, "<h2>%s</h2>\n", charts[c].heading);
        html_legend(f, strategies);
        fputs("<div class=\"pair\">\n", f);
        svg_chart(f, strategies, charts[c].key, c == 0 ? 1.0 : e_max, charts[c].title, items);
        fprintf(f, "<table>\n<thead><tr><th>block end</th>");
        json_array_foreach(strategies, i, s)
        {
            fputs("<th>", f);
            html_text(f, json_string_value(json_object_get(s, "name")));
            fputs("</th>", f);
        }
        fputs("</tr></thead>\n<tbody>\n", f);
        json_t *blocks0 = json_object_get(json_array_get(strategies, 0), "blocks");
        for (size_t b = 0; b < json_array_size(blocks0); b++) {
            char end[32];
            fmt_count(end, sizeof end, jint(json_array_get(blocks0, b), "end"));
            fprintf(f, "<tr><td>%s</td>", end);
            json_array_foreach(strategies, i, s)
            {
                char v[16];
                fmt_pct(
                    v, sizeof v,
                    json_object_get(json_array_get(json_object_get(s, "blocks"), b), charts[c].key),
                    c == 0 ? 1 : 2);
                fprintf(f, "<td>%s</td>", v);
            }
            fputs("</tr>\n", f);
        }
        fputs("</tbody>\n</table>\n</div>\n", f);
    }
    fprintf(f, "<p class=\"note\">Each strategy replays the same items in the same order, with the "
               "same reviewer answers, on an engine of its own (tandem simulate). AI error counts "
               "the items the AI decided alone whose decision differs from the data's label; final "
               "error counts every item, the reviewers' answers included. A block with no AI-alone "
               "decision has no error (a break in its line).</p>\n</body>\n</html>\n");
    if (fclose(f) != 0) {
        cli_error("simulate: --html %s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the command -------------------------------------------------------------------------- */

/* The option an engine error is about, for errors of the command line. */
static const char *option_of(const char *field)
{
    static const char *const map[][2] = {
        {"history", "--history"},
        {"reviewer_error", "--reviewer-error"},
        {"reviewer_minutes", "--reviewer-minutes"},
        {"strategies", "--strategies"},
        {"data", "--data"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(field, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

int cli_simulate(int argc, char **argv)
{
    sim_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    tdm_sim_opts o;
    tdm_sim_opts_init(&o);
    o.reviewer_error = 0.02;
    uint64_t u;
    if (a.history != NULL) {
        if (cli_parse_u64("--history", a.history, 0, (uint64_t)1 << 40, &u) != 0)
            return CLI_EXIT_USAGE;
        o.history = (size_t)u;
    }
    if (a.reviewer_error != NULL &&
        (cli_parse_double("--reviewer-error", a.reviewer_error, 0, 1, &o.reviewer_error) != 0 ||
         o.reviewer_error >= 1)) {
        if (o.reviewer_error >= 1)
            cli_error("--reviewer-error: a rate below 1 is needed (0.02 is 2%%)");
        return CLI_EXIT_USAGE;
    }
    if (a.reviewer_minutes != NULL && cli_parse_double("--reviewer-minutes", a.reviewer_minutes, 0,
                                                       1e6, &o.reviewer_minutes) != 0)
        return CLI_EXIT_USAGE;
    if (a.seed != NULL) {
        if (cli_parse_u64("--seed", a.seed, 0, INT64_MAX, &u) != 0)
            return CLI_EXIT_USAGE;
        o.seed = u;
    }
    if (a.jobs != NULL) {
        if (cli_parse_u64("--jobs", a.jobs, 1, TDM_SIM_MAX_STRATEGIES, &u) != 0)
            return CLI_EXIT_USAGE;
        o.threads = (unsigned)u;
    }
    char *list = strdup(a.strategies ? a.strategies : "all-human,fixed:0.90,guaranteed");
    tdm_sim_strategy strategies[TDM_SIM_MAX_STRATEGIES];
    size_t n_strategies = 0;
    if (list == NULL || parse_strategies(list, strategies, &n_strategies) != 0) {
        free(list);
        return CLI_EXIT_USAGE;
    }
    o.strategies = strategies;
    o.n_strategies = n_strategies;
    o.work_dir = a.work_dir;

    char *yaml = NULL;
    size_t yaml_len = 0;
    tdm_table *table = NULL;
    tdm_error err = {0};
    if (cli_read_file(a.process, (size_t)1 << 20, &yaml, &yaml_len) != 0) {
        free(list);
        return CLI_EXIT_FAIL;
    }
    if (tdm_table_read_file(a.data, TDM_FORMAT_AUTO, NULL, &table, &err) != 0) {
        cli_error("%s", err.message);
        free(yaml);
        free(list);
        return CLI_EXIT_FAIL;
    }
    o.process_yaml = yaml;
    o.process_len = yaml_len;
    o.process_file = a.process;
    o.data = table;
    char *json = NULL;
    rc = tdm_simulate(&o, &json, &err);
    tdm_table_free(table);
    free(yaml);
    if (rc != 0) {
        const char *opt = rc == TDM_EINVAL ? option_of(err.field) : NULL;
        if (opt != NULL) {
            cli_error("simulate: %s: %s", opt, err.message);
            free(list);
            return CLI_EXIT_USAGE;
        }
        cli_error("%s", err.message);
        free(list);
        return CLI_EXIT_FAIL;
    }
    json_t *r = json_loads(json, 0, NULL);
    int out = 0;
    if (r == NULL) {
        cli_error("simulate: cannot read the simulation's answer");
        out = CLI_EXIT_FAIL;
    } else {
        if (a.json)
            printf("%s\n", json);
        else
            print_table(r);
        if (a.html != NULL && write_html(a.html, r) != 0)
            out = CLI_EXIT_FAIL;
    }
    if (fflush(stdout) != 0) {
        cli_error("simulate: cannot write the results to standard output");
        out = CLI_EXIT_FAIL;
    }
    json_decref(r);
    tdm_free(json);
    free(list);
    return out;
}
