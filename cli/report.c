/*
 * report.c — `tandem report`: the return-on-investment report of one process over a window,
 * for leadership. It reads the metrics (tdm_engine_metrics on a database, or GET
 * /v1/processes/NAME/metrics through a server) and writes them as JSON (the answer as it is),
 * CSV (one row per period and metric) or HTML.
 *
 * The HTML is one self-contained file: inline CSS, charts as inline SVG drawn here, no script,
 * no font, image or style sheet from anywhere else, so it opens offline, can be mailed, and
 * prints on A4 (print rules keep sections and charts whole, and nothing depends on
 * background colours, which browsers leave out when printing). It opens with a summary in
 * plain language written from the numbers, then key figures, the baseline against the actual
 * for the three families (efficiency, quality, team), the trends per period, the AI's most
 * frequent errors and worst segments, the steps, the reviewers and the pauses, and ends with
 * what each number means. tests/e2e/report.test.mjs renders it in Chromium.
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

static const char report_usage[] =
    "usage: tandem report --process NAME [--from DATE] [--to DATE] [--by day|week|month]\n"
    "                     [--format html|csv|json] [--out FILE] [--segment FIELD]\n"
    "                     [--rate COST] [--currency TEXT] (--db PATH | --url URL)\n"
    "\n"
    "The return-on-investment report of a process over a window: the baseline against\n"
    "the actual for efficiency (items, the AI's share, time to decision, people's hours,\n"
    "hours and cost saved), quality (the AI's audited error against its budget, overrides,\n"
    "feedback, SLA breaches) and team (answers per reviewer, AI proposals accepted,\n"
    "escalations), with trends per period, the AI's most frequent errors and a summary in\n"
    "plain language. docs/api.md (GET /v1/processes/{name}/metrics) defines every number.\n"
    "\n"
    "options:\n"
    "  --process NAME        the process\n"
    "  --from DATE           the window's start: YYYY-MM-DD (midnight UTC) or an ISO 8601\n"
    "                        time with its zone (default: 30 days before --to)\n"
    "  --to DATE             its end: YYYY-MM-DD includes that day; a time is exclusive\n"
    "                        (default: now)\n"
    "  --by PERIOD           day, week (from Monday) or month: the trends' periods\n"
    "                        (default: day)\n"
    "  --format FORMAT       html (one self-contained file that prints well), csv (one row\n"
    "                        per period and metric) or json (the metrics as they are)\n"
    "                        (default: html)\n"
    "  --out FILE            write the report to FILE instead of standard output\n"
    "  --segment FIELD       split the AI's error and the overrides by an item field\n"
    "  --rate COST           the cost of a person's hour, for the cost figures (default:\n"
    "                        the process's baseline.cost_per_hour, if any)\n"
    "  --currency TEXT       written before amounts in the HTML, like EUR or $ (default:\n"
    "                        none)\n" CLI_TARGET_HELP "  -h, --help            show this help\n";

typedef enum report_format { FMT_HTML, FMT_CSV, FMT_JSON } report_format;

typedef struct report_args {
    const char *process, *from, *to, *by, *format, *out, *segment, *rate, *currency;
    report_format fmt;
    cli_target target;
} report_args;

static int parse_args(int argc, char **argv, report_args *a)
{
    enum {
        O_DB = 256,
        O_URL,
        O_PROCESS,
        O_FROM,
        O_TO,
        O_BY,
        O_FORMAT,
        O_OUT,
        O_SEGMENT,
        O_RATE,
        O_CURRENCY
    };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"process", required_argument, NULL, O_PROCESS},
        {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},
        {"by", required_argument, NULL, O_BY},
        {"format", required_argument, NULL, O_FORMAT},
        {"out", required_argument, NULL, O_OUT},
        {"segment", required_argument, NULL, O_SEGMENT},
        {"rate", required_argument, NULL, O_RATE},
        {"currency", required_argument, NULL, O_CURRENCY},
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
        case O_FROM:
            a->from = optarg;
            break;
        case O_TO:
            a->to = optarg;
            break;
        case O_BY:
            a->by = optarg;
            break;
        case O_FORMAT:
            a->format = optarg;
            break;
        case O_OUT:
            a->out = optarg;
            break;
        case O_SEGMENT:
            a->segment = optarg;
            break;
        case O_RATE:
            a->rate = optarg;
            break;
        case O_CURRENCY:
            a->currency = optarg;
            break;
        case 'h':
            fputs(report_usage, stdout);
            return -1;
        case ':':
            cli_error("report: option %s needs a value (see tandem report --help)",
                      argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("report: unknown option %s (see tandem report --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("report: unexpected argument \"%s\" (see tandem report --help)", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (a->process == NULL) {
        cli_error("report: --process is required (see tandem report --help)");
        return CLI_EXIT_USAGE;
    }
    if (a->format == NULL || strcmp(a->format, "html") == 0) {
        a->fmt = FMT_HTML;
    } else if (strcmp(a->format, "csv") == 0) {
        a->fmt = FMT_CSV;
    } else if (strcmp(a->format, "json") == 0) {
        a->fmt = FMT_JSON;
    } else {
        cli_error("report: --format: expected html, csv or json, got \"%s\"", a->format);
        return CLI_EXIT_USAGE;
    }
    if (a->by != NULL && strcmp(a->by, "day") != 0 && strcmp(a->by, "week") != 0 &&
        strcmp(a->by, "month") != 0) {
        cli_error("report: --by: expected day, week or month, got \"%s\"", a->by);
        return CLI_EXIT_USAGE;
    }
    if (a->currency != NULL && strlen(a->currency) > 8) {
        cli_error("report: --currency: at most 8 bytes, like EUR or $");
        return CLI_EXIT_USAGE;
    }
    return cli_target_check(&a->target, "report");
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the metrics                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Appends "&name=VALUE" (escaped) to the path in *path (malloc'd, replaced). */
static int add_query(cli_client *c, char **path, const char *name, const char *value)
{
    if (value == NULL)
        return 0;
    char *esc = cli_client_escape(c, value), *longer = NULL;
    if (esc == NULL ||
        asprintf(&longer, "%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', name, esc) < 0) {
        free(esc);
        return -1;
    }
    free(esc);
    free(*path);
    *path = longer;
    return 0;
}

static int fetch(cli_client *c, const report_args *a, double rate, char **json, tdm_error *err)
{
    tdm_metrics_query q;
    tdm_metrics_query_init(&q);
    q.from = a->from;
    q.to = a->to;
    q.by = a->by;
    q.segment = a->segment;
    if (a->rate != NULL)
        q.cost_per_hour = rate;
    tdm_engine *e = cli_client_engine(c);
    if (e != NULL) {
        char *text = NULL;
        int rc = tdm_engine_metrics(e, a->process, &q, &text, err);
        return rc != 0 ? rc : cli_client_take(text, json, err);
    }
    char *name = cli_client_escape(c, a->process), *path = NULL;
    if (name == NULL || asprintf(&path, "/v1/processes/%s/metrics", name) < 0) {
        free(name);
        snprintf(err->message, sizeof err->message, "out of memory");
        return err->code = TDM_ENOMEM;
    }
    free(name);
    if (add_query(c, &path, "from", a->from) != 0 || add_query(c, &path, "to", a->to) != 0 ||
        add_query(c, &path, "by", a->by) != 0 || add_query(c, &path, "segment", a->segment) != 0 ||
        add_query(c, &path, "rate", a->rate) != 0) {
        free(path);
        snprintf(err->message, sizeof err->message, "out of memory");
        return err->code = TDM_ENOMEM;
    }
    int rc = cli_client_request(c, "GET", path, NULL, json, err);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Numbers in words                                                                           */
/* ------------------------------------------------------------------------------------------ */

static json_t *at(json_t *o, const char *path)
{
    char key[64];
    while (o != NULL && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        o = json_object_get(o, key);
        path += n + (path[n] == '.');
    }
    return o;
}

static double num(json_t *o, const char *path)
{
    json_t *v = at(o, path);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(json_t *o, const char *path)
{
    const char *s = json_string_value(at(o, path));
    return s != NULL ? s : "";
}

/* 12400 as "12,400". */
static const char *count_text(double v, char *buf, size_t cap)
{
    if (isnan(v))
        return snprintf(buf, cap, "–"), buf;
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    size_t n = strlen(digits), o = 0;
    if (v < 0 && o + 1 < cap)
        buf[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* A share as a percentage: "71%", "2.1%", "0.35%". */
static const char *pct_text(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "–");
    else if (v == 0 || v >= 0.1 - 1e-12 || v * 100 == floor(v * 100))
        snprintf(buf, cap, "%.0f%%", v * 100);
    else if (v >= 0.01)
        snprintf(buf, cap, "%.1f%%", v * 100);
    else
        snprintf(buf, cap, "%.2f%%", v * 100);
    return buf;
}

/* A duration: "0 s", "45 s", "12 min", "4.2 h", "2.3 days". */
static const char *duration_text(double s, char *buf, size_t cap)
{
    if (isnan(s))
        snprintf(buf, cap, "–");
    else if (s < 60)
        snprintf(buf, cap, "%.0f s", s);
    else if (s < 3600)
        snprintf(buf, cap, "%.*f min", s < 600 ? 1 : 0, s / 60);
    else if (s < 172800)
        snprintf(buf, cap, "%.1f h", s / 3600);
    else
        snprintf(buf, cap, "%.1f days", s / 86400);
    return buf;
}

/* Hours: "210", "14.5", "0.75". */
static const char *hours_text(double h, char *buf, size_t cap)
{
    if (isnan(h))
        snprintf(buf, cap, "–");
    else if (h >= 100)
        return count_text(round(h), buf, cap);
    else if (h >= 10)
        snprintf(buf, cap, "%.0f", h);
    else if (h >= 1)
        snprintf(buf, cap, "%.1f", h);
    else
        snprintf(buf, cap, "%.2f", h);
    return buf;
}

/* An amount with the currency: "EUR 9,900", "$ 12.50". */
static const char *money_text(double v, const char *currency, char *buf, size_t cap)
{
    char n[48];
    if (isnan(v))
        snprintf(n, sizeof n, "–");
    else if (fabs(v) >= 100)
        count_text(round(v), n, sizeof n);
    else
        snprintf(n, sizeof n, "%.2f", v);
    snprintf(buf, cap, "%s%s%s", currency ? currency : "", currency && currency[0] ? " " : "", n);
    return buf;
}

/* Reads "YYYY-MM-DDTHH:MM:SS.mmmZ" into days since 1970 and ms within the day. */
static int parse_iso(const char *s, long long *day, long long *ms_of_day)
{
    int y, mo, d, h, mi, sec, ms;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &sec, &ms) != 7)
        return -1;
    /* days_from_civil, as in metrics.c. */
    long long yy = y - (mo <= 2);
    long long era = (yy >= 0 ? yy : yy - 399) / 400;
    long long yoe = yy - era * 400;
    long long doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
    *day = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    *ms_of_day = ((h * 60LL + mi) * 60 + sec) * 1000 + ms;
    return 0;
}

static const char *const month_names[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};

/* A day since 1970 as "1 March 2025". */
static void day_text(long long day, char *buf, size_t cap, int *month_out, long long *year_out)
{
    long long z = day + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
    long long y = yoe + era * 400 + (m <= 2);
    snprintf(buf, cap, "%d %s %lld", d, month_names[m - 1], y);
    if (month_out != NULL)
        *month_out = m;
    if (year_out != NULL)
        *year_out = y;
}

/* How window_text() put the window: a range, a calendar month or one day. */
typedef enum window_kind { W_RANGE, W_MONTH, W_DAY } window_kind;

/* A time as "1 March 2025", or "1 March 2025, 09:30 UTC" when it is not midnight. */
static void when_text(long long day, long long ms, char *buf, size_t cap, int *month,
                      long long *year)
{
    char d[40];
    day_text(day, d, sizeof d, month, year);
    if (ms == 0)
        snprintf(buf, cap, "%s", d);
    else
        snprintf(buf, cap, "%s, %02lld:%02lld UTC", d, ms / 3600000, ms / 60000 % 60);
}

/* The window in words: "March 2025", "3 March 2025", "1 March 2025 to 15 April 2025" (a
 * `to` at midnight names the last day in the window), with times where they are not
 * midnight. */
static window_kind window_text(json_t *m, char *buf, size_t cap)
{
    long long d0, t0, d1, t1, y0, y1, yn;
    int m0, m1, mn;
    const char *from = str(m, "from"), *to = str(m, "to");
    if (parse_iso(from, &d0, &t0) != 0 || parse_iso(to, &d1, &t1) != 0) {
        snprintf(buf, cap, "%s to %s", from, to);
        return W_RANGE;
    }
    char a[64], b[64], next[40];
    when_text(d0, t0, a, sizeof a, &m0, &y0);
    when_text(t1 == 0 ? d1 - 1 : d1, t1, b, sizeof b, &m1, &y1);
    if (t0 == 0 && t1 == 0) {
        day_text(d1, next, sizeof next, &mn, &yn);
        if (d1 - d0 == 1) {
            snprintf(buf, cap, "%s", a);
            return W_DAY;
        }
        if (a[0] == '1' && a[1] == ' ' && next[0] == '1' && next[1] == ' ' && m0 == m1 &&
            y0 == y1) {
            snprintf(buf, cap, "%s %lld", month_names[m0 - 1], y0);
            return W_MONTH;
        }
    }
    snprintf(buf, cap, "%s to %s", a, b);
    return W_RANGE;
}

/* A period's short name for a chart's axis: "3 Mar" or "Mar 2025". */
static void short_label(const char *label, const char *by, char *buf, size_t cap)
{
    static const char *const abbr[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y = 0, m = 0, d = 0;
    int n = sscanf(label, "%4d-%2d-%2d", &y, &m, &d);
    if (n < 2 || m < 1 || m > 12)
        snprintf(buf, cap, "%s", label);
    else if (strcmp(by, "month") == 0)
        snprintf(buf, cap, "%s %d", abbr[m - 1], y);
    else
        snprintf(buf, cap, "%d %s", d, abbr[m - 1]);
}

/* ------------------------------------------------------------------------------------------ */
/* HTML                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void esc(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* A label (an intent, a step, a name) that may break after _ . - @ on a narrow page. */
static void label(FILE *f, const char *s)
{
    for (const char *p = s; p != NULL && *p; p++) {
        char one[2] = {*p, '\0'};
        esc(f, one);
        if ((*p == '_' || *p == '.' || *p == '-' || *p == '@') && p[1] != '\0')
            fputs("<wbr>", f);
    }
}

static const char css[] =
    ":root{--fg:#1b1f24;--muted:#57606a;--line:#d6dbe1;--soft:#eef1f4;--ai:#2346a8;"
    "--people:#b35c00;--bad:#a3161b;--ok:#17653a}\n"
    "*{box-sizing:border-box}\n"
    "html{-webkit-text-size-adjust:100%}\n"
    "body{margin:0;color:var(--fg);background:#fff;font:14px/1.45 system-ui,-apple-system,"
    "\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}\n"
    "main{max-width:980px;margin:0 auto;padding:28px 32px 40px}\n"
    "header{border-bottom:2px solid var(--fg);padding-bottom:10px;margin-bottom:14px}\n"
    "h1{font-size:24px;margin:0 0 2px;letter-spacing:-.01em}\n"
    "h2{font-size:16px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}\n"
    "h3{font-size:14px;margin:14px 0 6px}\n"
    "p{margin:0 0 8px}\n"
    ".sub,.note{color:var(--muted)}\n"
    ".note{font-size:12px}\n"
    ".summary{font-size:15.5px;line-height:1.55;max-width:70em}\n"
    ".kpis{display:grid;grid-template-columns:repeat(3,1fr);gap:10px;margin:14px 0 0}\n"
    ".kpi{border:1px solid var(--line);border-left:4px solid var(--ai);border-radius:4px;"
    "padding:8px 12px}\n"
    ".kpi.people{border-left-color:var(--people)}\n"
    ".kpi.q{border-left-color:var(--fg)}\n"
    ".kpi .v{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}\n"
    ".kpi .l{color:var(--muted);font-size:12px}\n"
    "table{border-collapse:collapse;width:100%;font-size:13px}\n"
    "th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);"
    "vertical-align:top}\n"
    "thead th{border-bottom:1.5px solid var(--fg);font-size:12px;color:var(--muted);"
    "font-weight:600}\n"
    "tbody th{font-weight:500}\n"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\n"
    "td.n{white-space:nowrap;overflow-wrap:normal}\n"
    "td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".wide{overflow-x:auto}\n"
    "tr.family th{font-size:12px;text-transform:uppercase;letter-spacing:.06em;"
    "color:var(--muted);padding-top:12px}\n"
    ".ok{color:var(--ok);font-weight:600}\n"
    ".bad{color:var(--bad);font-weight:600}\n"
    ".charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}\n"
    "figure{margin:0;border:1px solid var(--line);border-radius:4px;padding:8px 10px 6px}\n"
    "figcaption{font-weight:600;font-size:13px;margin-bottom:2px}\n"
    "figure svg{display:block;width:100%;height:auto}\n"
    "svg text{font-family:inherit;font-size:10px;fill:var(--muted)}\n"
    "svg .grid{stroke:var(--soft);stroke-width:1}\n"
    "svg .axis{stroke:#8c959f;stroke-width:1}\n"
    ".two{display:grid;grid-template-columns:1fr 1fr;gap:18px}\n"
    ".two>div,.charts>figure{min-width:0}\n"
    "footer{margin-top:26px;border-top:1px solid var(--line);padding-top:8px}\n"
    "dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;"
    "font-size:12px;color:var(--muted)}\n"
    "dt{font-weight:600;color:var(--fg)}\n"
    "dd{margin:0}\n"
    "@media (max-width:860px){.charts,.two{grid-template-columns:1fr}}\n"
    "@media (max-width:600px){.kpis{grid-template-columns:1fr 1fr}main{padding:16px}}\n"
    "@page{size:A4;margin:14mm 12mm}\n"
    "@media print{body{font-size:11.5px}main{max-width:none;padding:0}"
    ".charts,.two{grid-template-columns:1fr 1fr}.kpis{grid-template-columns:repeat(3,1fr)}"
    ".summary{font-size:13px}.kpi .v{font-size:18px}h2{margin-top:16px;break-after:avoid}"
    "figure,tr,.kpis,dl,.summary{break-inside:avoid}h3{break-after:avoid}.charts{gap:8px}"
    "a{color:inherit;text-decoration:none}}\n";

/* ---- charts ---- */

typedef enum unit { U_COUNT, U_SHARE, U_SECONDS } unit;

#define CW 460.0 /* the chart's drawing, in its own units (it scales to the page) */
#define CH 210.0
#define PL 44.0 /* plot area: left, right, top and bottom margins */
#define PR 18.0
#define PT 26.0
#define PB 30.0

typedef struct chart {
    FILE *f;
    int id;          /* numbers the chart's clip path within the page */
    double legend_x; /* where the next legend entry goes */
    size_t n;
    char (*labels)[16];
    double top;         /* the value at the top of the y axis */
    double scale;       /* values are divided by this for the axis (durations) */
    const char *suffix; /* after tick values */
    unit u;
} chart;

static double px(const chart *c, size_t i)
{
    double w = CW - PL - PR;
    return PL + w * ((double)i + 0.5) / (double)(c->n ? c->n : 1);
}

static double py(const chart *c, double v)
{
    double h = CH - PT - PB;
    return CH - PB - h * (c->top > 0 ? v / c->top : 0);
}

/* A round step for about four ticks up to `max`. */
static double nice_step(double max)
{
    if (!(max > 0))
        return 1;
    double raw = max / 4, mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
}

/* Sets the axis for values up to `max`. */
static void chart_axis(chart *c, double max, unit u)
{
    c->u = u;
    c->scale = 1;
    c->suffix = "";
    if (u == U_SHARE) {
        c->suffix = "%";
        c->scale = 0.01;
        if (max > 0.25 || !(max > 0))
            max = 1;
    } else if (u == U_SECONDS) {
        c->suffix = " s";
        if (max >= 172800)
            c->scale = 86400, c->suffix = " d";
        else if (max >= 7200)
            c->scale = 3600, c->suffix = " h";
        else if (max >= 120)
            c->scale = 60, c->suffix = " min";
    }
    double step = nice_step(max / c->scale);
    if (u == U_COUNT && step < 1)
        step = 1;
    double top = ceil((max / c->scale) / step - 1e-9) * step;
    if (!(top > 0))
        top = step * 4;
    c->top = top * c->scale;
}

static void chart_open(chart *c, const char *title, const char *desc)
{
    fprintf(c->f, "<svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"", CW, CH);
    esc(c->f, title);
    fprintf(c->f, "\" xmlns=\"http://www.w3.org/2000/svg\"><title>");
    esc(c->f, title);
    fprintf(c->f, "</title><desc>");
    esc(c->f, desc);
    fprintf(c->f, "</desc>\n");
    double step = nice_step(c->top / c->scale) * c->scale;
    for (double v = 0; v <= c->top * (1 + 1e-9); v += step) {
        double y = py(c, v);
        fprintf(c->f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", PL,
                CW - PR, y, y);
        double shown = v / c->scale;
        char t[32];
        if (c->u == U_COUNT)
            count_text(shown, t, sizeof t);
        else
            snprintf(t, sizeof t, "%g", round(shown * 100) / 100);
        fprintf(c->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s%s</text>\n", PL - 5,
                y + 3.5, t, c->suffix);
    }
    fprintf(c->f, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", PL,
            CW - PR, CH - PB, CH - PB);
    /* What is drawn stays inside the plot: a bound far above the budget leaves by the top. */
    c->id++;
    c->legend_x = PL;
    fprintf(c->f,
            "<clipPath id=\"plot%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n",
            c->id, PL, PT - 3, CW - PL - PR, CH - PT - PB + 3);
    /* At most eight labels along the x axis, evenly spread, the last one always. */
    size_t every = c->n > 8 ? (c->n + 7) / 8 : 1;
    for (size_t i = 0; i < c->n; i++) {
        if ((c->n - 1 - i) % every != 0)
            continue;
        fprintf(c->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", px(c, i),
                CH - PB + 14);
        esc(c->f, c->labels[i]);
        fprintf(c->f, "</text>");
    }
    fputc('\n', c->f);
}

/* The next legend entry along the top. */
static void legend(chart *c, const char *color, int dashed, int bar, const char *name)
{
    double x = c->legend_x;
    c->legend_x += 15 + 5.2 * (double)strlen(name) + 16;
    if (bar)
        fprintf(c->f, "<rect x=\"%.1f\" y=\"6\" width=\"10\" height=\"10\" fill=\"%s\"/>", x,
                color);
    else
        fprintf(c->f,
                "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"11\" y2=\"11\" stroke=\"%s\" "
                "stroke-width=\"2\"%s/>",
                x - 2, x + 12, color, dashed ? " stroke-dasharray=\"4 3\"" : "");
    fprintf(c->f, "<text x=\"%.1f\" y=\"15\" style=\"fill:#1b1f24\">", x + 15);
    esc(c->f, name);
    fprintf(c->f, "</text>\n");
}

/* Two stacked bar series. */
static void bars(chart *c, const double *low, const double *high, const char *c_low,
                 const char *c_high)
{
    double w = (CW - PL - PR) / (double)(c->n ? c->n : 1) * 0.72;
    fprintf(c->f, "<g clip-path=\"url(#plot%d)\">", c->id);
    for (size_t i = 0; i < c->n; i++) {
        double a = isnan(low[i]) ? 0 : low[i], b = isnan(high[i]) ? 0 : high[i];
        double x = px(c, i) - w / 2, y0 = py(c, 0), y1 = py(c, a), y2 = py(c, a + b);
        if (a > 0)
            fprintf(c->f,
                    "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>", x,
                    y1, w, y0 - y1, c_low);
        if (b > 0)
            fprintf(c->f,
                    "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>", x,
                    y2, w, y1 - y2, c_high);
    }
    fprintf(c->f, "</g>\n");
}

/* A line through the values, broken where a value is missing (NaN); dots when few. */
static void line(chart *c, const double *v, const char *color, int dashed)
{
    int open = 0;
    fprintf(c->f,
            "<g clip-path=\"url(#plot%d)\"><path fill=\"none\" stroke=\"%s\" "
            "stroke-width=\"2\"%s d=\"",
            c->id, color, dashed ? " stroke-dasharray=\"4 3\"" : "");
    for (size_t i = 0; i < c->n; i++) {
        if (isnan(v[i])) {
            open = 0;
            continue;
        }
        fprintf(c->f, "%c%.2f %.2f ", open ? 'L' : 'M', px(c, i), py(c, v[i]));
        open = 1;
    }
    fprintf(c->f, "\"/>");
    if (c->n <= 40)
        for (size_t i = 0; i < c->n; i++)
            if (!isnan(v[i]))
                fprintf(c->f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.4\" fill=\"%s\"/>", px(c, i),
                        py(c, v[i]), color);
    fprintf(c->f, "</g>\n");
}

/* A horizontal reference line (a budget) across the plot. */
static void rule(chart *c, double v, const char *color)
{
    double y = py(c, v);
    fprintf(c->f,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
            "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
            PL, CW - PR, y, y, color);
}

static double max_of(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]) && v[i] > m)
            m = v[i];
    return m;
}

/* The series the charts draw, one value per period. */
typedef struct trends {
    size_t n;
    char (*labels)[16];
    double *ai, *people, *automation, *override, *err, *bound, *p50, *p90, *saved;
} trends;

static void trends_release(trends *t)
{
    free(t->labels);
    free(t->ai);
    free(t->people);
    free(t->automation);
    free(t->override);
    free(t->err);
    free(t->bound);
    free(t->p50);
    free(t->p90);
    free(t->saved);
}

static int trends_read(json_t *m, trends *t)
{
    json_t *periods = json_object_get(m, "periods");
    size_t n = json_array_size(periods);
    memset(t, 0, sizeof *t);
    t->n = n;
    size_t k = n ? n : 1;
    t->labels = calloc(k, sizeof *t->labels);
    double **all[] = {&t->ai,    &t->people, &t->automation, &t->override, &t->err,
                      &t->bound, &t->p50,    &t->p90,        &t->saved};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        *all[i] = calloc(k, sizeof **all[i]);
    if (t->labels == NULL || t->ai == NULL || t->people == NULL || t->automation == NULL ||
        t->override == NULL || t->err == NULL || t->bound == NULL || t->p50 == NULL ||
        t->p90 == NULL || t->saved == NULL)
        return -1;
    double confidence = num(m, "risk_budget.confidence");
    double cum_n = 0, cum_e = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(periods, i);
        short_label(str(p, "label"), str(m, "by"), t->labels[i], sizeof t->labels[i]);
        t->ai[i] = num(p, "efficiency.decided_by_ai");
        t->people[i] = num(p, "efficiency.decided_by_people");
        t->automation[i] = num(p, "efficiency.automation_rate");
        t->override[i] = num(p, "quality.override_rate");
        t->p50[i] = num(p, "efficiency.latency_seconds.p50");
        t->p90[i] = num(p, "efficiency.latency_seconds.p90");
        t->saved[i] = num(p, "efficiency.hours_saved");
        cum_n += num(p, "quality.audited");
        cum_e += num(p, "quality.audited_errors");
        /* The running audited error up to this period, and its bound. */
        t->err[i] = cum_n > 0 ? cum_e / cum_n : NAN;
        t->bound[i] =
            cum_n > 0 && confidence > 0
                ? tdm_binomial_upper_bound((uint64_t)cum_e, (uint64_t)cum_n, 1 - confidence)
                : NAN;
    }
    return 0;
}

static void charts_html(FILE *f, json_t *m, const trends *t)
{
    chart c = {.f = f, .n = t->n, .labels = t->labels};
    fprintf(f, "<section><h2>Trends by %s</h2><div class=\"charts\">\n", str(m, "by"));

    double *sum = calloc(t->n ? t->n : 1, sizeof *sum);
    for (size_t i = 0; sum != NULL && i < t->n; i++)
        sum[i] = (isnan(t->ai[i]) ? 0 : t->ai[i]) + (isnan(t->people[i]) ? 0 : t->people[i]);
    fprintf(f, "<figure><figcaption>Decisions: by the AI alone and by people</figcaption>\n");
    chart_axis(&c, sum != NULL ? max_of(sum, t->n) : 0, U_COUNT);
    free(sum);
    chart_open(&c, "Decisions per period: by the AI alone and by people",
               "Stacked bars: the AI's decisions below, people's above.");
    bars(&c, t->ai, t->people, "#2346a8", "#e0a060");
    legend(&c, "#2346a8", 0, 1, "AI alone");
    legend(&c, "#e0a060", 0, 1, "people");
    fprintf(f, "</svg></figure>\n");

    fprintf(f, "<figure><figcaption>The AI's share, and people overriding it</figcaption>\n");
    chart_axis(&c, fmax(max_of(t->automation, t->n), max_of(t->override, t->n)), U_SHARE);
    chart_open(&c, "Automation rate and override rate per period",
               "Lines: the share of decisions the AI made alone, and the share of reviews in "
               "which people overrode it.");
    line(&c, t->automation, "#2346a8", 0);
    line(&c, t->override, "#b35c00", 0);
    legend(&c, "#2346a8", 0, 0, "decided by the AI alone");
    legend(&c, "#b35c00", 0, 0, "overridden by people");
    fprintf(f, "</svg></figure>\n");

    double budget = num(m, "risk_budget.max_error");
    fprintf(f, "<figure><figcaption>The AI's audited error against its budget</figcaption>\n");
    if (isnan(budget)) {
        fprintf(f, "<p class=\"note\">No step of this process lets the AI decide alone, so there "
                   "is no audited error to show.</p></figure>\n");
    } else {
        /* Scaled to the budget, the error and the bound as it ends; the bound, high while
         * the samples are few, leaves the plot by its top before that. */
        double last_bound = t->n > 0 && !isnan(t->bound[t->n - 1]) ? t->bound[t->n - 1] : 0;
        chart_axis(&c,
                   fmax(fmax(max_of(t->err, t->n) * 1.25, budget * 3), fmin(last_bound * 1.6, 1)),
                   U_SHARE);
        chart_open(&c, "Audited error of the AI so far, its upper bound and the budget",
                   "Lines: the running share of audit samples the AI got wrong, its upper "
                   "bound at the step's confidence, and the risk budget as a dashed line.");
        rule(&c, budget, "#a3161b");
        line(&c, t->bound, "#8c959f", 1);
        line(&c, t->err, "#2346a8", 0);
        legend(&c, "#2346a8", 0, 0, "audited error so far");
        legend(&c, "#8c959f", 1, 0, "its upper bound");
        legend(&c, "#a3161b", 1, 0, "budget");
        fprintf(f, "</svg></figure>\n");
    }

    fprintf(f, "<figure><figcaption>Time from intake to decision</figcaption>\n");
    chart_axis(&c, fmax(max_of(t->p90, t->n), max_of(t->p50, t->n)), U_SECONDS);
    chart_open(&c, "Time from intake to decision per period: median and 90th percentile",
               "Lines: half of the items were decided within the lower line, nine in ten "
               "within the upper one.");
    line(&c, t->p90, "#b35c00", 0);
    line(&c, t->p50, "#2346a8", 0);
    legend(&c, "#2346a8", 0, 0, "median");
    legend(&c, "#b35c00", 0, 0, "90th percentile");
    fprintf(f, "</svg></figure>\n");
    fprintf(f, "</div></section>\n");
}

/* ---- the summary ---- */

static void summary_html(FILE *f, json_t *m, const char *currency)
{
    json_t *t = json_object_get(m, "totals");
    char w[160], b[9][64];
    window_kind kind = window_text(m, w, sizeof w);
    double items = num(t, "efficiency.items"), ai = num(t, "efficiency.decided_by_ai");
    double people = num(t, "efficiency.decided_by_people");
    fprintf(f, "<p class=\"summary\">%s ", kind == W_MONTH ? "In" : kind == W_DAY ? "On" : "From");
    esc(f, w);
    fprintf(f, ", <b>");
    esc(f, str(m, "process"));
    if (!(items > 0)) {
        fprintf(f, "</b> received no items");
        if (ai + people > 0)
            fprintf(f, ", and %s decisions were made on earlier ones",
                    count_text(ai + people, b[0], sizeof b[0]));
        fprintf(f, ".");
    } else {
        fprintf(f, "</b> received %s items.", count_text(items, b[0], sizeof b[0]));
    }
    if (ai + people > 0) {
        fprintf(f, " The AI decided <b>%s</b> of the %s decisions alone (%s)",
                pct_text(ai / (ai + people), b[1], sizeof b[1]),
                count_text(ai + people, b[2], sizeof b[2]), count_text(ai, b[3], sizeof b[3]));
        fprintf(f, " and people decided %s.", count_text(people, b[4], sizeof b[4]));
        double saved = num(t, "efficiency.hours_saved");
        double minutes = num(m, "baseline.minutes_per_item");
        fprintf(f,
                " Against the %g minutes a person spent per item before AI, that saved about "
                "<b>%s hours</b> of people's time",
                minutes, hours_text(saved, b[5], sizeof b[5]));
        double cost = num(t, "efficiency.cost.saved"), rate = num(m, "cost_per_hour");
        if (!isnan(cost))
            fprintf(f, " (about %s at %s an hour)", money_text(cost, currency, b[6], sizeof b[6]),
                    money_text(rate, currency, b[7], sizeof b[7]));
        fprintf(f, ".");
    }
    double audited = num(t, "quality.audited"), err = num(t, "quality.audited_error");
    double bound = num(t, "quality.audited_error_bound");
    double budget = num(m, "risk_budget.max_error"), conf = num(m, "risk_budget.confidence");
    if (!isnan(budget)) {
        if (audited > 0) {
            fprintf(f,
                    " Its audited error was <b>%s</b> on %s audit samples (at most %s with %s "
                    "confidence), ",
                    pct_text(err, b[0], sizeof b[0]), count_text(audited, b[1], sizeof b[1]),
                    pct_text(bound, b[2], sizeof b[2]), pct_text(conf, b[3], sizeof b[3]));
            double lower = tdm_binomial_lower_bound((uint64_t)num(t, "quality.audited_errors"),
                                                    (uint64_t)audited, 1 - conf);
            if (bound <= budget)
                fprintf(f, "<span class=\"ok\">proven within its budget of %s</span>.",
                        pct_text(budget, b[4], sizeof b[4]));
            else if (lower > budget)
                fprintf(f, "<span class=\"bad\">proven over its budget of %s</span>.",
                        pct_text(budget, b[4], sizeof b[4]));
            else if (err <= budget)
                fprintf(f,
                        "under its budget of %s, though too few samples yet to prove it "
                        "stays there.",
                        pct_text(budget, b[4], sizeof b[4]));
            else
                fprintf(f,
                        "<span class=\"bad\">above its budget of %s</span> on these samples, "
                        "though too few to prove it is over.",
                        pct_text(budget, b[4], sizeof b[4]));
        } else {
            fprintf(f,
                    " No audit sample was answered in the period, so the AI's error against its "
                    "budget of %s has no audited estimate here.",
                    pct_text(budget, b[4], sizeof b[4]));
        }
    }
    double reviews = num(t, "quality.reviews"), overrides = num(t, "quality.overrides");
    if (reviews > 0)
        fprintf(f, " People overrode the AI in %s of their %s reviews.",
                pct_text(overrides / reviews, b[0], sizeof b[0]),
                count_text(reviews, b[1], sizeof b[1]));
    double p50 = num(t, "efficiency.latency_seconds.p50"),
           p90 = num(t, "efficiency.latency_seconds.p90");
    if (!isnan(p50) && p50 < 1)
        fprintf(f, " Half the items were decided the moment they arrived, nine in ten within %s.",
                duration_text(p90, b[1], sizeof b[1]));
    else if (!isnan(p50))
        fprintf(f, " Half the items were decided within %s of arriving, nine in ten within %s.",
                duration_text(p50, b[0], sizeof b[0]), duration_text(p90, b[1], sizeof b[1]));
    double timed = num(t, "efficiency.timed_answers"),
           seconds = num(t, "efficiency.reviewer_seconds");
    if (timed > 0)
        fprintf(f,
                " People spent %s on the %s answers timed from their claim (%s each on "
                "average).",
                duration_text(seconds, b[0], sizeof b[0]), count_text(timed, b[1], sizeof b[1]),
                duration_text(seconds / timed, b[2], sizeof b[2]));
    double breaches = num(t, "quality.sla_breaches"), esc_n = num(t, "team.escalations");
    double pauses = num(t, "quality.pauses");
    if (breaches > 0 || esc_n > 0)
        fprintf(f, " %s %s passed %s SLA and %s %s escalated.", count_text(breaches, b[0], 64),
                breaches == 1 ? "task" : "tasks", breaches == 1 ? "its" : "their",
                count_text(esc_n, b[1], 64), esc_n == 1 ? "was" : "were");
    if (pauses > 0)
        fprintf(f, " The AI's autonomy was paused %s.",
                pauses == 1 ? "once" : (snprintf(b[2], 64, "%.0f times", pauses), b[2]));
    fprintf(f, "</p>\n");
}

/* ---- key figures ---- */

static void kpi(FILE *f, const char *cls, const char *value, const char *label)
{
    fprintf(f, "<div class=\"kpi%s%s\"><div class=\"v\">", cls[0] ? " " : "", cls);
    esc(f, value);
    fprintf(f, "</div><div class=\"l\">");
    esc(f, label);
    fprintf(f, "</div></div>\n");
}

static void kpis_html(FILE *f, json_t *m, const char *currency)
{
    json_t *t = json_object_get(m, "totals");
    char v[64], l[128];
    fprintf(f, "<div class=\"kpis\">\n");
    kpi(f, "", count_text(num(t, "efficiency.items"), v, sizeof v), "items received");
    pct_text(num(t, "efficiency.automation_rate"), v, sizeof v);
    kpi(f, "", v, "of decisions made by the AI alone");
    double cost = num(t, "efficiency.cost.saved");
    if (!isnan(cost)) {
        char h[32];
        snprintf(l, sizeof l, "saved: %s hours of people's time",
                 hours_text(num(t, "efficiency.hours_saved"), h, sizeof h));
        kpi(f, "", money_text(cost, currency, v, sizeof v), l);
    } else {
        hours_text(num(t, "efficiency.hours_saved"), v, sizeof v);
        strcat(v, " h");
        kpi(f, "", v, "of people's time saved against the baseline");
    }
    double err = num(t, "quality.audited_error"), budget = num(m, "risk_budget.max_error");
    if (!isnan(err)) {
        char bud[32];
        snprintf(l, sizeof l, "audited error of the AI (budget %s)",
                 pct_text(budget, bud, sizeof bud));
        kpi(f, "q", pct_text(err, v, sizeof v), l);
    } else {
        kpi(f, "q", "–", "audited error of the AI (no audit samples)");
    }
    kpi(f, "q", pct_text(num(t, "quality.override_rate"), v, sizeof v),
        "of reviews overrode the AI");
    kpi(f, "people", duration_text(num(t, "efficiency.latency_seconds.p50"), v, sizeof v),
        "median time from intake to decision");
    fprintf(f, "</div>\n");
}

/* ---- baseline against actual ---- */

static void row3(FILE *f, const char *what, const char *baseline, const char *actual,
                 const char *diff)
{
    fprintf(f, "<tr><th scope=\"row\">");
    esc(f, what);
    fprintf(f, "</th><td class=\"r\">%s</td><td class=\"r\">%s</td><td class=\"r\">%s</td></tr>\n",
            baseline, actual, diff);
}

static void compare_html(FILE *f, json_t *m, const char *currency)
{
    json_t *t = json_object_get(m, "totals");
    char a[256], b[256], c[256], x[64], y[64], z[32];
    double minutes = num(m, "baseline.minutes_per_item");
    fprintf(f, "<section><h2>Baseline against actual</h2>\n<table><thead><tr><th></th>"
               "<th class=\"r\">Baseline: people alone</th><th class=\"r\">With the AI</th>"
               "<th class=\"r\">Difference</th></tr></thead><tbody>\n");
    fprintf(f, "<tr class=\"family\"><th colspan=\"4\">Efficiency</th></tr>\n");
    double items = num(t, "efficiency.items"), ai = num(t, "efficiency.decided_by_ai");
    double people = num(t, "efficiency.decided_by_people");
    snprintf(a, sizeof a, "%s (0%%)", count_text(0, x, sizeof x));
    snprintf(b, sizeof b, "%s (%s)", count_text(ai, x, sizeof x),
             pct_text(num(t, "efficiency.automation_rate"), y, sizeof y));
    row3(f, "Decisions by the AI alone", a, b, "");
    snprintf(a, sizeof a, "%s", count_text(items, x, sizeof x));
    snprintf(b, sizeof b, "%s", count_text(people, x, sizeof x));
    row3(f, "Decisions by people", a, b, "");
    double base_h = num(t, "efficiency.baseline_hours"), est_h = num(t, "efficiency.reviewer_hours_"
                                                                        "estimated");
    snprintf(a, sizeof a, "%s h", hours_text(base_h, x, sizeof x));
    snprintf(b, sizeof b, "%s h", hours_text(est_h, x, sizeof x));
    snprintf(c, sizeof c, "%s h saved", hours_text(num(t, "efficiency.hours_saved"), x, sizeof x));
    row3(f, "People's time (at the baseline's minutes per item)", a, b, c);
    double timed = num(t, "efficiency.timed_answers");
    snprintf(b, sizeof b, "%s h on %s timed answers",
             hours_text(num(t, "efficiency.reviewer_hours"), x, sizeof x),
             count_text(timed, y, sizeof y));
    row3(f, "People's time, measured from claim to answer", "–", b, "");
    if (!isnan(num(t, "efficiency.cost.saved"))) {
        money_text(num(t, "efficiency.cost.baseline"), currency, a, sizeof a);
        money_text(num(t, "efficiency.cost.people_estimated"), currency, b, sizeof b);
        money_text(num(t, "efficiency.cost.saved"), currency, x, sizeof x);
        snprintf(c, sizeof c, "%s saved", x);
        row3(f, "Cost of people's time", a, b, c);
    }
    snprintf(b, sizeof b, "%s / %s",
             duration_text(num(t, "efficiency.latency_seconds.p50"), x, sizeof x),
             duration_text(num(t, "efficiency.latency_seconds.p90"), y, sizeof y));
    row3(f, "Time to decision, median / 90th percentile", "–", b, "");

    fprintf(f, "<tr class=\"family\"><th colspan=\"4\">Quality</th></tr>\n");
    double base_err = num(m, "baseline.error_rate"), err = num(t, "quality.audited_error");
    double bound = num(t, "quality.audited_error_bound");
    pct_text(base_err, a, sizeof a);
    if (!isnan(err)) {
        snprintf(b, sizeof b, "%s (at most %s)", pct_text(err, x, sizeof x),
                 pct_text(bound, y, sizeof y));
        double d = (err - base_err) * 100;
        snprintf(c, sizeof c, "%+.1f points", d);
    } else {
        snprintf(b, sizeof b, "no audit samples");
        snprintf(c, sizeof c, "–");
    }
    row3(f, "Error rate (the AI's: audited, on decisions it makes alone)", a, b, c);
    double budget = num(m, "risk_budget.max_error");
    if (!isnan(budget)) {
        snprintf(b, sizeof b, "%s", pct_text(budget, x, sizeof x));
        double lower = isnan(err)
                           ? NAN
                           : tdm_binomial_lower_bound((uint64_t)num(t, "quality.audited_errors"),
                                                      (uint64_t)num(t, "quality.audited"),
                                                      1 - num(m, "risk_budget.confidence"));
        const char *verdict = isnan(bound)      ? "–"
                              : bound <= budget ? "<span class=\"ok\">proven within</span>"
                              : lower > budget  ? "<span class=\"bad\">proven over</span>"
                              : err > budget    ? "<span class=\"bad\">above, not proven</span>"
                                                : "within, not yet proven";
        row3(f, "Risk budget of the AI", "–", b, verdict);
    }
    snprintf(b, sizeof b, "%s of %s reviews (%s)",
             count_text(num(t, "quality.overrides"), x, sizeof x),
             count_text(num(t, "quality.reviews"), y, sizeof y),
             pct_text(num(t, "quality.override_rate"), z, sizeof z));
    row3(f, "Overrides of the AI", "–", b, "");
    snprintf(b, sizeof b, "%s accurate, %s inaccurate",
             count_text(num(t, "quality.feedback.accurate"), x, sizeof x),
             count_text(num(t, "quality.feedback.inaccurate"), y, sizeof y));
    row3(f, "Feedback on decisions", "–", b, "");
    snprintf(b, sizeof b, "%s", count_text(num(t, "quality.sla_breaches"), x, sizeof x));
    row3(f, "Tasks past their SLA", "–", b, "");
    snprintf(b, sizeof b, "%s", count_text(num(t, "quality.pauses"), x, sizeof x));
    row3(f, "Pauses of the AI's autonomy", "–", b, "");

    fprintf(f, "<tr class=\"family\"><th colspan=\"4\">Team</th></tr>\n");
    double reviewers = num(t, "team.reviewers");
    snprintf(b, sizeof b, "%s", count_text(reviewers, x, sizeof x));
    row3(f, "People who answered", "–", b, "");
    if (reviewers > 0) {
        snprintf(a, sizeof a, "%s", count_text(round(items / reviewers), x, sizeof x));
        snprintf(b, sizeof b, "%s",
                 count_text(round(num(t, "team.answers_per_reviewer")), x, sizeof x));
        row3(f, "Items per person", a, b, "");
    }
    snprintf(b, sizeof b, "%s of %s (%s)",
             count_text(num(t, "team.proposals_accepted"), x, sizeof x),
             count_text(num(t, "team.proposals"), y, sizeof y),
             pct_text(num(t, "team.acceptance_rate"), z, sizeof z));
    row3(f, "AI proposals accepted by people", "–", b, "");
    snprintf(b, sizeof b, "%s", count_text(num(t, "team.escalations"), x, sizeof x));
    row3(f, "Escalations", "–", b, "");
    fprintf(f,
            "</tbody></table>\n<p class=\"note\">Baseline: every item handled by a person "
            "taking %g minutes, with the process's error rate before AI. Measured time counts "
            "answers given by the person holding the task's claim, from the claim to the "
            "answer.</p></section>\n",
            minutes);
}

/* ---- errors, steps, people ---- */

static void errors_html(FILE *f, json_t *m)
{
    json_t *conf = json_object_get(m, "confusions"), *segments = json_object_get(m, "segments");
    fprintf(f, "<section><h2>Where the AI goes wrong</h2><div class=\"two\"><div>\n"
               "<h3>Most frequent corrections</h3>\n");
    if (json_array_size(conf) == 0) {
        fprintf(f, "<p class=\"note\">People corrected no proposal or decision of the AI in "
                   "the period.</p>\n");
    } else {
        fprintf(f, "<table><thead><tr><th>The AI said</th><th>People said</th><th "
                   "class=\"n\">Times</th></tr></thead><tbody>\n");
        size_t i;
        json_t *c;
        json_array_foreach(conf, i, c)
        {
            char n[32];
            fprintf(f, "<tr><td>");
            label(f, str(c, "proposed"));
            fprintf(f, "</td><td>");
            label(f, str(c, "actual"));
            fprintf(f, "</td><td class=\"n\">%s</td></tr>\n",
                    count_text(num(c, "count"), n, sizeof n));
        }
        fprintf(f, "</tbody></table>\n");
    }
    fprintf(f, "</div><div>\n");
    if (!json_is_object(segments)) {
        fprintf(f, "<h3>Worst segments</h3><p class=\"note\">Give a segment field (--segment "
                   "FIELD) to see the AI's error and the overrides per value of an item "
                   "field.</p>\n");
    } else {
        json_t *groups = json_object_get(segments, "groups");
        fprintf(f, "<h3>Worst segments by ");
        esc(f, str(segments, "field"));
        fprintf(f, "</h3>\n");
        /* The groups people reviewed, by override rate, then by reviews. */
        size_t n = json_array_size(groups), shown = 0;
        size_t *order = calloc(n ? n : 1, sizeof *order);
        for (size_t i = 0; order != NULL && i < n; i++)
            if (num(json_array_get(groups, i), "reviews") > 0)
                order[shown++] = i;
        for (size_t i = 1; order != NULL && i < shown; i++)
            for (size_t k = i; k > 0; k--) {
                json_t *x = json_array_get(groups, order[k - 1]),
                       *y = json_array_get(groups, order[k]);
                double rx = num(x, "override_rate"), ry = num(y, "override_rate");
                if (rx > ry || (rx == ry && num(x, "reviews") >= num(y, "reviews")))
                    break;
                size_t tmp = order[k - 1];
                order[k - 1] = order[k];
                order[k] = tmp;
            }
        if (shown == 0) {
            fprintf(f, "<p class=\"note\">No segment had reviews of the AI in the period.</p>\n");
        } else {
            fprintf(f, "<div class=\"wide\"><table><thead><tr><th>Value</th><th "
                       "class=\"n\">Decisions</th><th "
                       "class=\"n\">AI alone</th><th class=\"n\">Overridden</th><th "
                       "class=\"n\">Audited error</th></tr></thead><tbody>\n");
            for (size_t i = 0; i < shown && i < 8; i++) {
                json_t *g = json_array_get(groups, order[i]);
                char d[32], a[32], o[48], e[48], r[32];
                count_text(num(g, "decided_by_ai") + num(g, "decided_by_people"), d, sizeof d);
                pct_text(num(g, "automation_rate"), a, sizeof a);
                snprintf(o, sizeof o, "%s of %s", pct_text(num(g, "override_rate"), r, sizeof r),
                         count_text(num(g, "reviews"), d + 16, 16));
                if (num(g, "audited") > 0)
                    snprintf(e, sizeof e, "%s of %.0f",
                             pct_text(num(g, "audited_error"), r, sizeof r), num(g, "audited"));
                else
                    snprintf(e, sizeof e, "–");
                fprintf(f, "<tr><td>");
                label(f, str(g, "value"));
                fprintf(
                    f,
                    "</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td "
                    "class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                    count_text(num(g, "decided_by_ai") + num(g, "decided_by_people"), r, sizeof r),
                    a, o, e);
            }
            fprintf(f, "</tbody></table></div>\n");
        }
        free(order);
    }
    fprintf(f, "</div></div></section>\n");
}

static void steps_html(FILE *f, json_t *m)
{
    json_t *steps = json_object_get(m, "steps"), *s;
    size_t i;
    fprintf(f, "<section><h2>Steps</h2><div class=\"wide\"><table><thead><tr><th>Step</th>"
               "<th>Who decides</th>"
               "<th class=\"n\">Items</th><th class=\"n\">AI alone</th><th class=\"n\">Audited "
               "error</th><th class=\"n\">Budget</th><th class=\"n\">Overridden</th><th "
               "class=\"n\">Median time</th><th>State</th></tr></thead><tbody>\n");
    json_array_foreach(steps, i, s)
    {
        json_t *t = json_object_get(s, "totals");
        char v[8][96];
        const char *alloc = str(s, "allocation");
        int human = strcmp(alloc, "human") == 0;
        fprintf(f, "<tr><th scope=\"row\">");
        label(f, str(s, "step"));
        fprintf(f, "</th><td>%s</td>",
                human                      ? "people"
                : strcmp(alloc, "ai") == 0 ? "the AI, within its budget"
                                           : "people, with the AI's proposal");
        count_text(num(t, "efficiency.items"), v[0], sizeof v[0]);
        pct_text(num(t, "efficiency.automation_rate"), v[1], sizeof v[1]);
        if (num(t, "quality.audited") > 0) {
            char e[24], b[24];
            snprintf(v[2], sizeof v[2], "%s (≤ %s)",
                     pct_text(num(t, "quality.audited_error"), e, sizeof e),
                     pct_text(num(t, "quality.audited_error_bound"), b, sizeof b));
        } else {
            snprintf(v[2], sizeof v[2], "–");
        }
        pct_text(num(s, "max_error"), v[3], sizeof v[3]);
        pct_text(num(t, "quality.override_rate"), v[4], sizeof v[4]);
        duration_text(num(t, "efficiency.latency_seconds.p50"), v[5], sizeof v[5]);
        fprintf(f,
                "<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td "
                "class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td>",
                v[0], v[1], v[2], v[3], v[4], v[5]);
        if (json_is_true(json_object_get(s, "paused"))) {
            fprintf(f, "<span class=\"bad\">paused</span> ");
            esc(f, str(s, "pause_reason"));
        } else {
            fprintf(f, "%s", human ? "–" : "running");
        }
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</tbody></table></div></section>\n");
}

static void people_html(FILE *f, json_t *m)
{
    json_t *reviewers = json_object_get(m, "reviewers"), *r;
    json_t *pauses = json_object_get(m, "pauses"), *p;
    size_t i;
    fprintf(f, "<section><h2>People and pauses</h2><div class=\"two\"><div><h3>Who "
               "answered</h3>\n");
    if (json_array_size(reviewers) == 0) {
        fprintf(f, "<p class=\"note\">Nobody answered a task in the period.</p>\n");
    } else {
        fprintf(f, "<table><thead><tr><th>Person</th><th class=\"n\">Answers</th><th "
                   "class=\"n\">Time per timed answer</th><th class=\"n\">AI proposals "
                   "kept</th></tr></thead><tbody>\n");
        json_array_foreach(reviewers, i, r)
        {
            if (i == 12)
                break;
            char a[32], t[32], k[32];
            double timed = num(r, "timed_answers");
            fprintf(f, "<tr><td>");
            label(f, str(r, "reviewer"));
            fprintf(f,
                    "</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td "
                    "class=\"n\">%s</td></tr>\n",
                    count_text(num(r, "answers"), a, sizeof a),
                    timed > 0 ? duration_text(num(r, "reviewer_seconds") / timed, t, sizeof t)
                              : "–",
                    pct_text(num(r, "acceptance_rate"), k, sizeof k));
        }
        fprintf(f, "</tbody></table>\n");
        if (json_array_size(reviewers) > 12)
            fprintf(f, "<p class=\"note\">and %zu more.</p>\n", json_array_size(reviewers) - 12);
    }
    fprintf(f, "</div><div><h3>Pauses of the AI's autonomy</h3>\n");
    if (json_array_size(pauses) == 0) {
        fprintf(f, "<p class=\"note\">The AI's autonomy was not paused or resumed in the "
                   "period.</p>\n");
    } else {
        fprintf(f, "<table><thead><tr><th>When (UTC)</th><th>Step</th><th>What</th>"
                   "</tr></thead><tbody>\n");
        json_array_foreach(pauses, i, p)
        {
            if (i == 20)
                break;
            fprintf(f, "<tr><td class=\"n\">%.16s</td><td>", str(p, "at"));
            label(f, str(p, "step"));
            fprintf(f, "</td><td>%s by ",
                    strcmp(str(p, "event"), "paused") == 0 ? "paused" : "resumed");
            esc(f, str(p, "actor"));
            const char *why = json_string_value(json_object_get(p, "reason"));
            if (why != NULL) {
                fprintf(f, ": ");
                esc(f, why);
            }
            fprintf(f, "</td></tr>\n");
        }
        fprintf(f, "</tbody></table>\n");
    }
    fprintf(f, "</div></div></section>\n");
}

static void definitions_html(FILE *f)
{
    fprintf(f,
            "<footer><dl>\n"
            "<dt>Decisions</dt><dd>At every step of the process; an item submitted again is "
            "decided again. The AI decides alone only where its certified error stays under its "
            "budget; everything else goes to a person with its proposal.</dd>\n"
            "<dt>Hours saved</dt><dd>Decisions the AI made alone × the baseline's minutes per "
            "item. People's time at the baseline is every item × those minutes.</dd>\n"
            "<dt>Measured time</dt><dd>From a person claiming a task to their answer, for answers "
            "given by the person holding the claim; answers without a claim and four-eyes "
            "confirmations are not timed.</dd>\n"
            "<dt>Audited error</dt><dd>Audit samples are decisions the AI would have made alone, "
            "drawn at random and given to people; the error is the share where their answer "
            "differed, and the bound its Clopper–Pearson upper limit at the step's "
            "confidence.</dd>\n"
            "<dt>Overrides</dt><dd>Answers that differ from the AI's proposal, and feedback "
            "“inaccurate” on decisions it made alone, out of all such reviews.</dd>\n"
            "<dt>Time to decision</dt><dd>From an item's intake to its decision at the last "
            "step; median and 90th percentile.</dd>\n"
            "</dl><p class=\"note\">Made by tandem %s from the store's records; every number is "
            "defined in docs/api.md (GET /v1/processes/{name}/metrics).</p></footer>\n",
            tdm_version());
}

static int render_html(json_t *m, const char *currency, FILE *f)
{
    trends t;
    if (trends_read(m, &t) != 0) {
        trends_release(&t);
        return -1;
    }
    char w[160];
    window_text(m, w, sizeof w);
    fprintf(f, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<title>");
    esc(f, str(m, "process"));
    fprintf(f, " · report · ");
    esc(f, w);
    fprintf(f, "</title>\n<style>\n%s</style></head>\n<body><main>\n<header><h1>", css);
    esc(f, str(m, "process"));
    fprintf(f, "</h1><div class=\"sub\">Report for ");
    esc(f, w);
    fprintf(f, " · owner ");
    esc(f, str(m, "owner"));
    fprintf(f, " · by %s · made %.16s UTC</div>", str(m, "by"), str(m, "generated_at"));
    if (str(m, "description")[0] != '\0') {
        fprintf(f, "<p class=\"note\" style=\"margin-top:6px\">");
        esc(f, str(m, "description"));
        fprintf(f, "</p>");
    }
    fprintf(f, "</header>\n<section><h2>Summary</h2>\n");
    summary_html(f, m, currency);
    kpis_html(f, m, currency);
    fprintf(f, "</section>\n");
    compare_html(f, m, currency);
    charts_html(f, m, &t);
    errors_html(f, m);
    steps_html(f, m);
    people_html(f, m);
    definitions_html(f);
    fprintf(f, "</main></body></html>\n");
    trends_release(&t);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* CSV                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* One row per number of a family object, its nested keys joined by dots. */
static void csv_family(FILE *f, const char *scope, const char *period, const char *start,
                       const char *end, const char *family, const char *prefix, json_t *o)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        char name[128];
        snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (json_is_object(v)) {
            csv_family(f, scope, period, start, end, family, name, v);
            continue;
        }
        char value[40] = "";
        if (json_is_integer(v))
            snprintf(value, sizeof value, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(value, sizeof value, "%.10g", json_real_value(v));
        const char *cells[] = {scope, period, start, end, family, name};
        for (size_t i = 0; i < 6; i++) {
            csv_field(f, cells[i]);
            fputc(',', f);
        }
        fprintf(f, "%s\r\n", value);
    }
}

static void csv_series(FILE *f, const char *scope, json_t *holder, const char *from, const char *to)
{
    static const char *const families[] = {"efficiency", "quality", "team"};
    json_t *totals = json_object_get(holder, "totals"), *periods, *p;
    for (size_t k = 0; k < 3; k++)
        csv_family(f, scope, "total", from, to, families[k], "",
                   json_object_get(totals, families[k]));
    periods = json_object_get(holder, "periods");
    size_t i;
    json_array_foreach(periods, i, p)
    {
        for (size_t k = 0; k < 3; k++)
            csv_family(f, scope, str(p, "label"), str(p, "start"), str(p, "end"), families[k], "",
                       json_object_get(p, families[k]));
    }
}

static int render_csv(json_t *m, FILE *f)
{
    fprintf(f, "scope,period,start,end,family,metric,value\r\n");
    char scope[300];
    snprintf(scope, sizeof scope, "process:%s", str(m, "process"));
    csv_series(f, scope, m, str(m, "from"), str(m, "to"));
    json_t *steps = json_object_get(m, "steps"), *s;
    size_t i;
    json_array_foreach(steps, i, s)
    {
        snprintf(scope, sizeof scope, "step:%s", str(s, "step"));
        csv_series(f, scope, s, str(m, "from"), str(m, "to"));
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The command                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* The command's name for a query parameter the engine or the server named. */
static const char *option_of(const char *field)
{
    static const char *const known[][2] = {{"from", "--from"},
                                           {"to", "--to"},
                                           {"by", "--by"},
                                           {"segment", "--segment"},
                                           {"rate", "--rate"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(field, known[i][0]) == 0)
            return known[i][1];
    return NULL;
}

int cli_report(int argc, char **argv)
{
    report_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    double rate = -1;
    if (a.rate != NULL && cli_parse_double("report: --rate", a.rate, 1e-9, 1e6, &rate) != 0)
        return CLI_EXIT_USAGE;

    cli_client *c = NULL;
    if (cli_client_open(&a.target, 1, &c) != 0)
        return CLI_EXIT_FAIL;
    char *json = NULL;
    tdm_error err = {0};
    rc = fetch(c, &a, rate, &json, &err);
    cli_client_close(c);
    if (rc != 0) {
        const char *opt = option_of(err.field), *msg = err.message[0] ? err.message : "";
        size_t n = strlen(err.field);
        if (opt != NULL && n > 0 && strncmp(msg, err.field, n) == 0 &&
            strncmp(msg + n, ": ", 2) == 0)
            msg += n + 2; /* "from: ..." under --from */
        cli_error("report: %s%s%s", opt ? opt : "", opt ? ": " : "",
                  msg[0] ? msg : tdm_strerror(rc));
        return rc == TDM_EPARSE || rc == TDM_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    json_t *m = a.fmt != FMT_JSON ? json_loads(json, 0, NULL) : NULL;
    int bad = mem == NULL || (a.fmt != FMT_JSON && !json_is_object(m));
    if (!bad) {
        if (a.fmt == FMT_JSON)
            fprintf(mem, "%s%s", json, json[0] && json[strlen(json) - 1] == '\n' ? "" : "\n");
        else if (a.fmt == FMT_CSV)
            bad = render_csv(m, mem) != 0;
        else
            bad = render_html(m, a.currency, mem) != 0;
    }
    if (mem != NULL && fclose(mem) != 0)
        bad = 1;
    json_decref(m);
    free(json);
    if (bad) {
        free(out);
        cli_error("report: out of memory, or the metrics could not be read");
        return CLI_EXIT_FAIL;
    }
    FILE *dest = a.out != NULL ? fopen(a.out, "wb") : stdout;
    if (dest == NULL) {
        cli_error("report: --out %s: cannot write: %s", a.out, strerror(errno));
        free(out);
        return CLI_EXIT_FAIL;
    }
    int ok = fwrite(out, 1, len, dest) == len;
    ok = (a.out != NULL ? fclose(dest) == 0 : fflush(dest) == 0) && ok;
    free(out);
    if (!ok) {
        cli_error("report: cannot write %s: %s", a.out ? a.out : "to standard output",
                  strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return 0;
}
