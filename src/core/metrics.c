/*
 * metrics.c — what the partnership of people and AI achieves, in numbers: per process and per
 * step, over a window of time cut into UTC days, weeks or months (tdm_engine_metrics: GET
 * /v1/processes/{name}/metrics and `tandem report`), and the same numbers over all time in
 * Prometheus's text format for a monitoring system to scrape (tdm_engine_prometheus: GET
 * /metrics). Three families: efficiency (how much is decided, by whom, how fast, at what
 * cost in people's time), quality (the AI's audited error against its budget, overrides,
 * feedback, SLA breaches, pauses) and team (the people: answers, acceptance of the AI's
 * proposals, escalations).
 *
 * NOTES ON THE DESIGN OF THE METRICS
 *
 * Computed from the store, on request, not kept in counters. Everything these numbers count
 * is already a row of the store (items, decisions, tasks, feedback, the audit trail), written
 * durably by the engine as it runs; rows are only ever added (a task changes state, but the
 * columns read here for a done task no longer change). Reading them on request is therefore
 * exact, the same after a restart, the same whichever process (a server, `tandem ... --db`)
 * wrote them, and the same numbers the dashboard and the registry show, because the
 * definitions are shared (below). Counters in memory would have to be rebuilt from the store
 * at start anyway, would start from zero in every other process that opens the database, and
 * would be a second truth to keep in step with the first. The price is a read of the
 * history per request. bench/metrics, on a database of 10,000 items (about 670 tasks
 * answered by people, 200 feedback verdicts), measured GET /metrics at a median of 28 ms
 * (35 ms in a second run), against 36 ms (46 ms) for the dashboard and 0.2 ms (0.3 ms) for
 * GET /healthz in the same runs, on this 2-core machine while other builds kept its load
 * average near 4: a scrape every 15 s costs about 0.2% of a core. Most of it is SQLite
 * reading the items and decisions tables (12 ms for the decisions with their tasks and
 * items, 5 ms for the items, in the sqlite3 shell). The read grows with the history, about
 * linearly: `bench/metrics --items 100000` measured 185 ms (the dashboard 234 ms), 1.2% of
 * a core at a scrape every 15 s. A store of millions of decisions would want the all-time
 * sums kept incrementally instead (decisions.seq and feedback's rowid only grow: a cursor
 * per table would do) — not needed yet.
 *
 * One reader for both answers. Each source is read once, row by row, and every row is added
 * to the counts of its process and its step, in its period and in the window's totals (an
 * accumulator per process: (periods + 1) × (steps + 1) families of counts). The Prometheus
 * answer is the same reader over one window that holds all time, with no periods, for every
 * process the caller may see; the JSON answer reads one process. Rows are placed in time by
 * the column named in brackets below, and only rows inside [from, to) are read.
 *
 * What counts, exactly (docs/api.md, "GET /v1/processes/{name}/metrics", says it for users;
 * the terms the dashboard also has are counted as src/core/dashboard.c defines them):
 *   - items: the process's items, each once [items.received_at]; at a step, the items routed
 *     to it: decisions the AI made alone there plus tasks made there.
 *   - decided_by_ai, decided_by_people, automation_rate, human_answers, overrides, reviews,
 *     override_rate, hours_saved: as the dashboard [decisions.created_at; feedback.created_at
 *     for feedback], at every step of the process.
 *   - queued: tasks made [tasks.created_at].
 *   - latency (time from intake to decision): a decision's time minus the time its item's
 *     version came in. Version 1 came in at items.received_at; a later version (an item
 *     submitted again) at its first decision or task, which intake writes in the transaction
 *     that stores it. At the process level only the decisions of the last step count: the
 *     item is decided when its last step is. p50 and p90 are nearest-rank quantiles (the
 *     value at rank ceil(p × n) of the sorted times); Prometheus gets a histogram.
 *   - reviewer_seconds (measured): over answers to tasks (accept or correct), the decision's
 *     time minus tasks.claimed_at, when the person who answered held the claim (claimed_by =
 *     completed_by). Answers given without a claim, after someone else's lapsed claim, or
 *     confirmed under four eyes (the first person's answer time is kept only on the audit
 *     trail) are not timed; timed_answers says how many were. reviewer_hours_estimated is the
 *     baseline's estimate instead: human_answers × baseline.minutes_per_item / 60.
 *   - baseline_hours: items × baseline.minutes_per_item / 60, the people's time without AI.
 *   - cost (only with a rate: ?rate=, or the process's baseline.cost_per_hour): each of those
 *     hours times the rate, and hours_saved times the rate.
 *   - audited, audited_errors, audited_error and its bound: answers to audit-sample tasks
 *     (tasks.why = audit_sample), and those whose answer differs from the AI's proposal
 *     [decisions.created_at]; the Clopper-Pearson upper bound at the step's confidence (for
 *     the process, the highest confidence among its AI steps). The registry's audited error
 *     counts the same samples since training or the last resume; here they count by window.
 *   - proposals, proposals_accepted, acceptance_rate: answers to tasks that carried an AI
 *     proposal, and those that kept it (accept, or correct to the same value).
 *   - feedback accurate / inaccurate: verdicts on any decision [feedback.created_at].
 *   - sla_breaches: tasks not done by their due time [tasks.due_at]: still not done now, or
 *     done (answered, or voided by a new version of the item) after it.
 *   - escalations: task.escalated entries of the audit trail [audit.at]; pauses:
 *     automation.paused entries (by a person or by the drift check) [audit.at]. Both are
 *     found through the partial indexes of schema 6.
 *   - reviewers: the distinct people who answered; per reviewer their answers, timed time
 *     and accepted proposals.
 *   - segments (?segment=FIELD): the process's numbers per value of an item field, read from
 *     the item's current fields and named as the fairness report names groups.
 *   Steps no longer declared by the process count in the process's numbers only.
 *
 * Periods are aligned to UTC (a day at midnight, a week on Monday, a month on its 1st),
 * clipped to the window: the first starts at `from`, the last ends at `to`. Every period is
 * present, empty or not, so charts have no gaps.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

#define DAY_MS  86400000LL
#define MISSING "(missing)"

/* The upper edges of the latency histogram, in seconds (and +Inf). */
static const double latency_edges[] = {1,    10,    60,    300,   900,    1800,  3600,
                                       7200, 14400, 28800, 86400, 172800, 604800};
#define N_EDGES (sizeof latency_edges / sizeof latency_edges[0])

/* ------------------------------------------------------------------------------------------ */
/* Time                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum period_kind { BY_DAY, BY_WEEK, BY_MONTH } period_kind;

/* Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The date of a day since 1970-01-01 (civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

#define WHEN_FORMS                                                                                 \
    "expected YYYY-MM-DD, or an ISO 8601 time with its zone like 2025-03-01T09:30:00Z or "         \
    "2025-03-01T09:30:00+01:00"

/*
 * Parses a date (YYYY-MM-DD: its midnight UTC, or for `to` the next midnight, so that the
 * day is in the window) or an ISO 8601 time with seconds optional, a fraction optional and
 * a zone required (Z or an offset). Returns 0, or TDM_EPARSE naming `name`.
 */
static int parse_when(const char *name, const char *s, int is_to, int64_t *ms, tdm_error *err)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, zone = 0;
    const char *why = NULL;
    if (read_digits(&p, 4, &y) != 0 || *p++ != '-' || read_digits(&p, 2, &mo) != 0 || *p++ != '-' ||
        read_digits(&p, 2, &d) != 0)
        why = "not a date";
    else if (mo < 1 || mo > 12)
        why = "there is no such month";
    else if (d < 1 || d > days_in_month(y, mo))
        why = "there is no such day in that month";
    else if (*p == '\0') {
        *ms = (days_from_civil(y, mo, d) + (is_to ? 1 : 0)) * DAY_MS;
        if (*ms < 0)
            why = "before 1970";
        else
            return 0;
    } else if (*p != 'T' && *p != 't') {
        why = "a time must follow the date after a T";
    } else {
        p++;
        if (read_digits(&p, 2, &h) != 0 || *p++ != ':' || read_digits(&p, 2, &mi) != 0)
            why = "expected the time as HH:MM or HH:MM:SS";
        else if (*p == ':' && (p++, read_digits(&p, 2, &sec) != 0))
            why = "expected two digits of seconds";
        else if (h > 23 || mi > 59 || sec > 59)
            why = "the time is out of range";
        if (why == NULL && *p == '.') {
            p++;
            int n = 0;
            for (; isdigit((unsigned char)*p); p++, n++)
                if (n < 3)
                    frac = frac * 10 + (*p - '0');
            for (int k = n; k < 3; k++)
                frac *= 10;
            if (n == 0 || n > 9)
                why = "expected 1 to 9 digits of a fraction of a second";
        }
        if (why == NULL) {
            if (*p == 'Z' || *p == 'z') {
                p++;
            } else if (*p == '+' || *p == '-') {
                int sign = *p++ == '-' ? -1 : 1, oh, om;
                if (read_digits(&p, 2, &oh) != 0 || (*p == ':' && *++p == '\0') ||
                    read_digits(&p, 2, &om) != 0 || oh > 23 || om > 59)
                    why = "expected an offset like +01:00";
                else
                    zone = sign * (oh * 60 + om);
            } else if (*p == ' ') {
                why = "a space where the zone belongs: in a URL, write the + of an offset as %2B";
            } else if (*p == '\0') {
                why = "the time needs its zone: add Z for UTC, or an offset like +01:00";
            } else {
                why = "expected Z or an offset like +01:00 after the time";
            }
        }
        if (why == NULL && *p != '\0')
            why = "unexpected characters after the zone";
        if (why == NULL) {
            *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - zone) * 60000LL + sec * 1000LL +
                  frac;
            if (*ms < 0)
                why = "before 1970";
            else
                return 0;
        }
    }
    return tdm__error_field(err, TDM_EPARSE, name, "%s: \"%.64s\": %s (" WHEN_FORMS ")", name, s,
                            why);
}

/* The start of the period holding `ms`. */
static int64_t period_floor(period_kind kind, int64_t ms)
{
    int64_t day = ms / DAY_MS;
    if (kind == BY_DAY)
        return day * DAY_MS;
    if (kind == BY_WEEK)
        return (day - (day + 3) % 7) * DAY_MS; /* 1970-01-05 was a Monday: (4 + 3) % 7 = 0 */
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    return days_from_civil(y, m, 1) * DAY_MS;
}

/* The start of the period after the one starting at `start`. */
static int64_t period_next(period_kind kind, int64_t start)
{
    if (kind == BY_DAY)
        return start + DAY_MS;
    if (kind == BY_WEEK)
        return start + 7 * DAY_MS;
    int64_t y;
    int m, d;
    civil_from_days(start / DAY_MS, &y, &m, &d);
    return days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * DAY_MS;
}

/* A period's name: its day (the Monday of a week) as YYYY-MM-DD, a month as YYYY-MM. */
static void period_label(period_kind kind, int64_t start, char *buf, size_t cap)
{
    int64_t y;
    int m, d;
    civil_from_days(start / DAY_MS, &y, &m, &d);
    if (kind == BY_MONTH)
        snprintf(buf, cap, "%04d-%02d", (int)y, m);
    else
        snprintf(buf, cap, "%04d-%02d-%02d", (int)y, m, d);
}

/* ------------------------------------------------------------------------------------------ */
/* Counts                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* One person's answers. */
typedef struct reviewer {
    char *name; /* first: see named() */
    int64_t answers, timed, work_ms, proposals, accepted;
} reviewer;

/* The process's numbers for one value of the segment field. */
typedef struct segment {
    char *name; /* first: see named() */
    int64_t items, by_ai, by_people, audited, audit_errors, reviews, overrides;
} segment;

/* The counts of one family of numbers: a process or a step, in a period or the window. */
typedef struct fam {
    int64_t items, by_ai, by_people, queued;
    int64_t answers, timed, work_ms, proposals, accepted;
    int64_t reviews, overrides, audited, audit_errors;
    int64_t fb_accurate, fb_inaccurate, sla_breaches, escalations, pauses;
    int64_t hist[N_EDGES + 1]; /* decisions by latency bucket (not cumulative) */
    int64_t lat_n, lat_sum_ms;
    int64_t *lat; /* latencies in ms, kept for quantiles (periods only, JSON only) */
    size_t n_lat, cap_lat;
    reviewer *rv; /* sorted by name */
    size_t n_rv, cap_rv;
} fam;

/* The accumulator of one process. */
typedef struct pm {
    proc_state *ps;
    const char *name;
    size_t n_steps;
    fam *fams; /* [k * (n_steps + 1) + s]: k a period or n_periods (the window), s a step or
                  n_steps (the process) */
    segment *seg;
    size_t n_seg, cap_seg;
    json_t *pauses; /* the window's pause and resume events (JSON answer only) */
} pm;

typedef struct run {
    int64_t from, to, now;
    period_kind kind;
    size_t n_periods; /* 0: the window only (Prometheus) */
    int64_t *start;   /* n_periods + 1 boundaries: period k is [start[k], start[k + 1]) */
    int keep;         /* keep latencies for quantiles */
    const char *segment;
    pm *pm; /* sorted by name */
    size_t n_pm;
} run;

#define MAX_SEGMENTS  1000
#define MAX_REVIEWERS 100000

/*
 * Finds or adds the element named `name` in a sorted array of structs whose first member is
 * `char *name` (`size` bytes each). Returns it, or NULL when out of memory or when adding
 * would pass `max` (*full then set).
 */
static void *named(void **arr, size_t *n, size_t *cap, size_t size, const char *name, size_t max,
                   int *full)
{
    char *base = *arr;
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(*(char **)(void *)(base + mid * size), name);
        if (c == 0)
            return base + mid * size;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (*n >= max) {
        *full = 1;
        return NULL;
    }
    if (*n == *cap) {
        size_t want = *cap ? *cap * 2 : 8;
        char *grown = realloc(base, want * size);
        if (grown == NULL)
            return NULL;
        *arr = base = grown;
        *cap = want;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return NULL;
    memmove(base + (lo + 1) * size, base + lo * size, (*n - lo) * size);
    memset(base + lo * size, 0, size);
    *(char **)(void *)(base + lo * size) = copy;
    (*n)++;
    return base + lo * size;
}

static void fam_release(fam *f)
{
    free(f->lat);
    for (size_t i = 0; i < f->n_rv; i++)
        free(f->rv[i].name);
    free(f->rv);
}

static void run_release(run *r)
{
    for (size_t i = 0; i < r->n_pm; i++) {
        pm *m = &r->pm[i];
        size_t n = (r->n_periods + 1) * (m->n_steps + 1);
        for (size_t k = 0; m->fams != NULL && k < n; k++)
            fam_release(&m->fams[k]);
        free(m->fams);
        for (size_t k = 0; k < m->n_seg; k++)
            free(m->seg[k].name);
        free(m->seg);
        json_decref(m->pauses);
    }
    free(r->pm);
    free(r->start);
}

static int by_pm_name(const void *a, const void *b)
{
    return strcmp(((const pm *)a)->name, ((const pm *)b)->name);
}

/* Sets up the window and its periods (n_periods 0 when `periods` is 0) and one accumulator
 * per process of `procs` (references borrowed). */
static int run_init(run *r, proc_state **procs, size_t n, int periods, tdm_error *err)
{
    if (periods) {
        size_t count = 0;
        for (int64_t t = r->from; t < r->to; t = period_next(r->kind, period_floor(r->kind, t)))
            count++;
        r->n_periods = count;
        r->start = malloc((count + 1) * sizeof *r->start);
        if (r->start == NULL)
            return tdm__error_code(err, TDM_ENOMEM);
        size_t k = 0;
        for (int64_t t = r->from; t < r->to; t = period_next(r->kind, period_floor(r->kind, t)))
            r->start[k++] = t;
        r->start[k] = r->to;
    }
    r->pm = calloc(n ? n : 1, sizeof *r->pm);
    if (r->pm == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    r->n_pm = n;
    for (size_t i = 0; i < n; i++) {
        pm *m = &r->pm[i];
        m->ps = procs[i];
        m->name = tdm_process_name(procs[i]->p);
        m->n_steps = procs[i]->n_steps;
        m->fams = calloc((r->n_periods + 1) * (m->n_steps + 1), sizeof *m->fams);
        m->pauses = json_array();
        if (m->fams == NULL || m->pauses == NULL)
            return tdm__error_code(err, TDM_ENOMEM);
    }
    if (n > 0)
        qsort(r->pm, n, sizeof *r->pm, by_pm_name);
    return 0;
}

static pm *find_pm(run *r, const char *name)
{
    if (name == NULL)
        return NULL;
    pm key = {.name = name};
    return bsearch(&key, r->pm, r->n_pm, sizeof *r->pm, by_pm_name);
}

/* The period holding `t` (which is inside the window). */
static size_t period_of(const run *r, int64_t t)
{
    size_t lo = 0, hi = r->n_periods;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->start[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Where a row counts: the process and (when it is still declared) the step, each in the
 * window and in the row's period. */
typedef struct where {
    fam *f[4];
    int at_step[4]; /* f[i] is a step's, not the process's */
    size_t n;
    size_t step;                       /* the step's index, or n_steps */
    fam *period_step, *period_process; /* for latencies; NULL without periods */
} where;

static void add_target(where *w, fam *f, int at_step)
{
    w->f[w->n] = f;
    w->at_step[w->n++] = at_step;
}

static void locate(const run *r, pm *m, int64_t t, const char *step, where *w)
{
    size_t width = m->n_steps + 1, total = r->n_periods;
    w->n = 0;
    w->period_step = w->period_process = NULL;
    if (step == NULL || tdm_process_step_index(m->ps->p, step, &w->step) != 0)
        w->step = m->n_steps;
    int known = w->step < m->n_steps;
    add_target(w, &m->fams[total * width + m->n_steps], 0);
    if (known)
        add_target(w, &m->fams[total * width + w->step], 1);
    if (r->n_periods > 0) {
        size_t k = period_of(r, t);
        w->period_process = &m->fams[k * width + m->n_steps];
        add_target(w, w->period_process, 0);
        if (known) {
            w->period_step = &m->fams[k * width + w->step];
            add_target(w, w->period_step, 1);
        }
    }
}

static int push_latency(fam *f, int64_t ms)
{
    if (f->n_lat == f->cap_lat) {
        size_t want = f->cap_lat ? f->cap_lat * 2 : 64;
        int64_t *grown = realloc(f->lat, want * sizeof *grown);
        if (grown == NULL)
            return -1;
        f->lat = grown;
        f->cap_lat = want;
    }
    f->lat[f->n_lat++] = ms;
    return 0;
}

static void add_histogram(fam *f, int64_t ms)
{
    size_t b = 0;
    while (b < N_EDGES && (double)ms > latency_edges[b] * 1000)
        b++;
    f->hist[b]++;
    f->lat_n++;
    f->lat_sum_ms += ms;
}

/* Bytes of a segment's name at the most: a longer value (a text field) is cut, at a UTF-8
 * character's start, and ends in "...", so that 1000 segments stay small. */
#define SEGMENT_NAME_MAX 200

/*
 * The segment a row belongs to, from the column the segment expression made: NULL for a
 * missing or null value, else a one-letter type and the value (s text, i integer, r real,
 * l anything else as JSON). Named as the fairness report names groups. Writes into buf
 * (SEGMENT_NAME_MAX + 4 bytes) when it has to.
 */
static const char *segment_name(const char *col, char *buf, size_t cap)
{
    if (col == NULL || col[0] == '\0')
        return MISSING;
    if (col[0] == 'r') {
        tdm__format_number(strtod(col + 1, NULL), buf, cap);
        return buf;
    }
    size_t n = strlen(col + 1);
    if (n <= SEGMENT_NAME_MAX)
        return col + 1;
    n = SEGMENT_NAME_MAX;
    while (n > 0 && ((unsigned char)col[1 + n] & 0xC0) == 0x80)
        n--; /* back to the first byte of the character that would be cut */
    snprintf(buf, cap, "%.*s...", (int)n, col + 1);
    return buf;
}

/* Adds a row's counts to its segment. */
static int segment_add(pm *m, const char *col, const segment *delta, tdm_error *err)
{
    char buf[SEGMENT_NAME_MAX + 4];
    int full = 0;
    segment *s = named((void **)&m->seg, &m->n_seg, &m->cap_seg, sizeof *m->seg,
                       segment_name(col, buf, sizeof buf), MAX_SEGMENTS, &full);
    if (s == NULL)
        return full ? tdm__error_field(err, TDM_ETOOBIG, "segment",
                                       "segment: the field has more than %d values in the "
                                       "window; segment by a field with fewer values",
                                       MAX_SEGMENTS)
                    : tdm__error_code(err, TDM_ENOMEM);
    s->items += delta->items;
    s->by_ai += delta->by_ai;
    s->by_people += delta->by_people;
    s->audited += delta->audited;
    s->audit_errors += delta->audit_errors;
    s->reviews += delta->reviews;
    s->overrides += delta->overrides;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the store                                                                          */
/* ------------------------------------------------------------------------------------------ */

/*
 * Every statement takes ?1 the process (NULL: every process), ?2 and ?3 the window [from, to)
 * in ms, and those that read segments ?4 the segment field. SEGMENT(fields) is the field's
 * value as segment_name() reads it.
 */
#define SEGMENT(fields)                                                                            \
    "(SELECT CASE type WHEN 'null' THEN NULL WHEN 'text' THEN 's' || value WHEN 'integer' THEN "   \
    "'i' || value WHEN 'real' THEN 'r' || value WHEN 'true' THEN 'ltrue' WHEN 'false' THEN "       \
    "'lfalse' ELSE 'l' || value END FROM json_each(" fields ") WHERE key = ?4)"

#define ITEMS_SQL(segment)                                                                         \
    "SELECT process, received_at, " segment " FROM items WHERE (?1 IS NULL OR process = ?1) "      \
    "AND received_at >= ?2 AND received_at < ?3"

/* Columns: process, step, time, by the AI alone, an answer to a task, with a proposal, that
 * kept it, an audit sample, the time from claim to answer, the latency, who answered, the
 * segment. A version after the first came in with its first decision or task. */
#define DECISIONS_SQL(segment)                                                                     \
    "SELECT d.process, d.step, d.created_at, d.autonomous <> 0, d.task_id IS NOT NULL, "           \
    "d.task_id IS NOT NULL AND d.proposal IS NOT NULL, d.task_id IS NOT NULL AND d.proposal IS "   \
    "NOT NULL AND d.value = d.proposal, t.why IS 'audit_sample', CASE WHEN t.claimed_at IS NOT "   \
    "NULL AND t.claimed_by = t.completed_by AND t.claimed_at <= d.created_at THEN d.created_at "   \
    "- t.claimed_at END, d.created_at - CASE WHEN d.item_version = 1 THEN i.received_at ELSE "     \
    "min((SELECT min(created_at) FROM decisions WHERE item_id = d.item_id AND item_version = "     \
    "d.item_version), coalesce((SELECT min(created_at) FROM tasks WHERE item_id = d.item_id AND "  \
    "item_version = d.item_version), 9223372036854775807)) END, t.completed_by, " segment          \
    " FROM decisions d LEFT JOIN tasks t ON t.id = d.task_id LEFT JOIN items i ON i.id = "         \
    "d.item_id WHERE (?1 IS NULL OR d.process = ?1) AND d.created_at >= ?2 AND d.created_at < ?3"

/* Columns: process, step, time, accurate, on a decision the AI made alone, the segment. */
#define FEEDBACK_SQL(segment, join)                                                                \
    "SELECT d.process, d.step, f.created_at, f.verdict = 'accurate', d.autonomous <> 0, " segment  \
    " FROM feedback f JOIN decisions d ON d.id = f.decision_id " join                              \
    " WHERE (?1 IS NULL OR d.process = ?1) AND f.created_at >= ?2 AND f.created_at < ?3"

static const char *const items_sql[2] = {ITEMS_SQL("NULL"), ITEMS_SQL(SEGMENT("fields"))};
static const char *const decisions_sql[2] = {DECISIONS_SQL("NULL"),
                                             DECISIONS_SQL(SEGMENT("i.fields"))};
static const char *const feedback_sql[2] = {
    FEEDBACK_SQL("NULL", ""),
    FEEDBACK_SQL(SEGMENT("i.fields"), "LEFT JOIN items i ON i.id = d.item_id")};

/* Tasks made in the window, and tasks whose due time in the window passed before they were
 * done (?4: now). Columns: process, step, created_at, due_at when it was breached. */
static const char tasks_sql[] =
    "SELECT process, step, created_at, CASE WHEN due_at < ?4 AND (state <> 'done' OR "
    "updated_at > due_at) THEN due_at END FROM tasks WHERE (?1 IS NULL OR process = ?1) AND "
    "((created_at >= ?2 AND created_at < ?3) OR (due_at >= ?2 AND due_at < ?3))";

/* Through the partial index audit_escalations. */
static const char escalations_sql[] =
    "SELECT t.process, t.step, a.at FROM audit a JOIN tasks t ON t.id = a.subject WHERE "
    "a.event = 'task.escalated' AND a.at >= ?2 AND a.at < ?3 AND (?1 IS NULL OR t.process = ?1)";

/* Through the partial index audit_automation; the subject is PROCESS/STEP. */
static const char pauses_sql[] =
    "SELECT a.subject, a.at, a.event, a.actor, json_extract(a.data, '$.reason') FROM audit a "
    "WHERE a.event IN ('automation.paused', 'automation.resumed') AND a.at >= ?2 AND a.at < ?3 "
    "AND (?1 IS NULL OR substr(a.subject, 1, length(?1) + 1) = ?1 || '/') ORDER BY a.seq";

static const char *text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* A row reader: counts one row of its statement into `r`. */
typedef int (*row_fn)(run *r, sqlite3_stmt *st, tdm_error *err);

static int items_row(run *r, sqlite3_stmt *st, tdm_error *err)
{
    pm *m = find_pm(r, text(st, 0));
    if (m == NULL)
        return 0;
    where w;
    locate(r, m, sqlite3_column_int64(st, 1), NULL, &w);
    for (size_t i = 0; i < w.n; i++)
        w.f[i]->items++;
    if (r->segment == NULL)
        return 0;
    segment d = {.items = 1};
    return segment_add(m, text(st, 2), &d, err);
}

static int decisions_row(run *r, sqlite3_stmt *st, tdm_error *err)
{
    pm *m = find_pm(r, text(st, 0));
    if (m == NULL)
        return 0;
    where w;
    locate(r, m, sqlite3_column_int64(st, 2), text(st, 1), &w);
    int ai = sqlite3_column_int(st, 3), answer = sqlite3_column_int(st, 4);
    int proposal = sqlite3_column_int(st, 5), kept = sqlite3_column_int(st, 6);
    int audit = answer && proposal && sqlite3_column_int(st, 7);
    int timed = sqlite3_column_type(st, 8) != SQLITE_NULL;
    int64_t work = timed ? sqlite3_column_int64(st, 8) : 0;
    int has_latency = sqlite3_column_type(st, 9) != SQLITE_NULL;
    int64_t latency = has_latency ? sqlite3_column_int64(st, 9) : 0;
    const char *who = text(st, 10);
    int last = w.step + 1 == m->n_steps;
    for (size_t i = 0; i < w.n; i++) {
        fam *f = w.f[i];
        f->items += ai && w.at_step[i]; /* a step's items: those routed to it */
        f->by_ai += ai;
        f->by_people += !ai;
        f->answers += answer;
        f->proposals += proposal;
        f->accepted += kept;
        f->reviews += proposal;
        f->overrides += proposal && !kept;
        f->audited += audit;
        f->audit_errors += audit && !kept;
        f->timed += timed;
        f->work_ms += work;
        if (has_latency && (w.at_step[i] || last))
            add_histogram(f, latency);
        if (answer && who != NULL) {
            int full = 0;
            reviewer *rv = named((void **)&f->rv, &f->n_rv, &f->cap_rv, sizeof *f->rv, who,
                                 MAX_REVIEWERS, &full);
            if (rv == NULL)
                return full ? tdm__error(err, TDM_ETOOBIG, "more than %d reviewers", MAX_REVIEWERS)
                            : tdm__error_code(err, TDM_ENOMEM);
            rv->answers++;
            rv->timed += timed;
            rv->work_ms += work;
            rv->proposals += proposal;
            rv->accepted += kept;
        }
    }
    if (r->keep && has_latency) {
        if ((w.period_step != NULL && push_latency(w.period_step, latency) != 0) ||
            (last && w.period_process != NULL && push_latency(w.period_process, latency) != 0))
            return tdm__error_code(err, TDM_ENOMEM);
    }
    if (r->segment == NULL)
        return 0;
    segment d = {.by_ai = ai,
                 .by_people = !ai,
                 .audited = audit,
                 .audit_errors = audit && !kept,
                 .reviews = proposal,
                 .overrides = proposal && !kept};
    return segment_add(m, text(st, 11), &d, err);
}

static int feedback_row(run *r, sqlite3_stmt *st, tdm_error *err)
{
    pm *m = find_pm(r, text(st, 0));
    if (m == NULL)
        return 0;
    where w;
    locate(r, m, sqlite3_column_int64(st, 2), text(st, 1), &w);
    int accurate = sqlite3_column_int(st, 3), on_ai = sqlite3_column_int(st, 4);
    for (size_t i = 0; i < w.n; i++) {
        w.f[i]->fb_accurate += accurate;
        w.f[i]->fb_inaccurate += !accurate;
        w.f[i]->reviews += on_ai;
        w.f[i]->overrides += on_ai && !accurate;
    }
    if (r->segment == NULL)
        return 0;
    segment d = {.reviews = on_ai, .overrides = on_ai && !accurate};
    return segment_add(m, text(st, 5), &d, err);
}

static int tasks_row(run *r, sqlite3_stmt *st, tdm_error *err)
{
    (void)err;
    pm *m = find_pm(r, text(st, 0));
    if (m == NULL)
        return 0;
    where w;
    int64_t made = sqlite3_column_int64(st, 2);
    if (made >= r->from && made < r->to) {
        locate(r, m, made, text(st, 1), &w);
        for (size_t i = 0; i < w.n; i++) {
            w.f[i]->queued++;
            w.f[i]->items += w.at_step[i]; /* a step's items: those routed to it */
        }
    }
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
        int64_t due = sqlite3_column_int64(st, 3);
        if (due >= r->from && due < r->to) {
            locate(r, m, due, text(st, 1), &w);
            for (size_t i = 0; i < w.n; i++)
                w.f[i]->sla_breaches++;
        }
    }
    return 0;
}

static int escalations_row(run *r, sqlite3_stmt *st, tdm_error *err)
{
    (void)err;
    pm *m = find_pm(r, text(st, 0));
    if (m == NULL)
        return 0;
    where w;
    locate(r, m, sqlite3_column_int64(st, 2), text(st, 1), &w);
    for (size_t i = 0; i < w.n; i++)
        w.f[i]->escalations++;
    return 0;
}

static int pauses_row(run *r, sqlite3_stmt *st, tdm_error *err)
{
    const char *subject = text(st, 0), *slash = subject ? strchr(subject, '/') : NULL;
    if (slash == NULL || (size_t)(slash - subject) > TDM_SCOPE_NAME_MAX)
        return 0;
    char process[TDM_SCOPE_NAME_MAX + 1];
    snprintf(process, sizeof process, "%.*s", (int)(slash - subject), subject);
    pm *m = find_pm(r, process);
    if (m == NULL)
        return 0;
    int64_t at = sqlite3_column_int64(st, 1);
    int paused = strcmp(text(st, 2), "automation.paused") == 0;
    where w;
    locate(r, m, at, slash + 1, &w);
    for (size_t i = 0; i < w.n; i++)
        w.f[i]->pauses += paused;
    const char *reason = text(st, 4);
    json_t *e =
        json_pack("{s:o, s:s, s:s, s:s, s:o}", "at", tdm__json_time(at), "step", slash + 1, "event",
                  paused ? "paused" : "resumed", "actor", text(st, 3) ? text(st, 3) : "", "reason",
                  reason != NULL ? json_string(reason) : json_null());
    if (e == NULL || json_array_append_new(m->pauses, e) != 0)
        return tdm__error_code(err, TDM_ENOMEM);
    return 0;
}

/* Runs one statement over the window and counts its rows. */
static int read_rows(sqlite3 *db, run *r, const char *process, const char *sql, row_fn row,
                     tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = tdm__db_kept(db, sql, &st, err);
    if (rc != 0)
        return rc;
    if (process != NULL)
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->from);
    sqlite3_bind_int64(st, 3, r->to);
    if (sql == tasks_sql)
        sqlite3_bind_int64(st, 4, r->now);
    else if (r->segment != NULL && sqlite3_bind_parameter_count(st) >= 4)
        sqlite3_bind_text(st, 4, r->segment, -1, SQLITE_STATIC);
    int s;
    while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW)
        rc = row(r, st, err);
    if (rc == 0 && s != SQLITE_DONE)
        rc = tdm__db_error(db, s, err, "reading the metrics");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Reads every source over the window (for one process, or for all when NULL). */
static int read_all(sqlite3 *db, run *r, const char *process, tdm_error *err)
{
    int seg = r->segment != NULL;
    int rc = read_rows(db, r, process, items_sql[seg], items_row, err);
    if (rc == 0)
        rc = read_rows(db, r, process, decisions_sql[seg], decisions_row, err);
    if (rc == 0)
        rc = read_rows(db, r, process, feedback_sql[seg], feedback_row, err);
    if (rc == 0)
        rc = read_rows(db, r, process, tasks_sql, tasks_row, err);
    if (rc == 0)
        rc = read_rows(db, r, process, escalations_sql, escalations_row, err);
    if (rc == 0)
        rc = read_rows(db, r, process, pauses_sql, pauses_row, err);
    return rc;
}

/* Runs `fn` inside a read transaction on a pooled connection, so that one answer's numbers
 * come from one snapshot of the store. */
static int in_snapshot(tdm_engine *e, int (*fn)(sqlite3 *db, void *arg, tdm_error *err), void *arg,
                       tdm_error *err)
{
    sqlite3 *db = NULL;
    int rc = tdm__reader_get(e, &db, err);
    if (rc == 0)
        rc = tdm__db_exec(db, "BEGIN", err);
    if (rc == 0) {
        rc = fn(db, arg, err);
        if (tdm__db_exec(db, "COMMIT", NULL) != 0 && !sqlite3_get_autocommit(db))
            tdm__db_exec(db, "ROLLBACK", NULL);
    }
    if (db != NULL)
        tdm__reader_put(e, db);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The JSON answer                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* What turns counts into hours, money and bounds. */
typedef struct scale {
    double minutes;    /* baseline.minutes_per_item */
    double cost;       /* per hour; 0: no rate */
    double confidence; /* of the bound; 0: no AI, no bound */
} scale;

static json_t *ratio(int64_t num, int64_t den)
{
    return den > 0 ? json_real((double)num / (double)den) : json_null();
}

static int by_ms(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank quantile pct/100 of n sorted values, in seconds. */
static json_t *quantile(const int64_t *v, size_t n, size_t pct)
{
    if (n == 0)
        return json_null();
    size_t rank = (pct * n + 99) / 100;
    return json_real((double)v[rank > 0 ? rank - 1 : 0] / 1000.0);
}

static json_t *hours(int64_t count, double minutes)
{
    return json_real((double)count * minutes / 60.0);
}

/* A family's three groups of numbers. `lat` holds its latencies, sorted (n_lat of them). */
static json_t *fam_json(const fam *f, const scale *sc, const int64_t *lat, size_t n_lat)
{
    double saved = (double)f->by_ai * sc->minutes / 60.0;
    json_t *cost = json_null();
    if (sc->cost > 0)
        cost = json_pack("{s:f, s:f, s:f, s:f, s:f}", "per_hour", sc->cost, "baseline",
                         (double)f->items * sc->minutes / 60.0 * sc->cost, "people_measured",
                         (double)f->work_ms / 3600000.0 * sc->cost, "people_estimated",
                         (double)f->answers * sc->minutes / 60.0 * sc->cost, "saved",
                         saved * sc->cost);
    json_t *bound = json_null();
    if (f->audited > 0 && sc->confidence > 0)
        bound = json_real(tdm_binomial_upper_bound((uint64_t)f->audit_errors, (uint64_t)f->audited,
                                                   1 - sc->confidence));
    json_t *efficiency = json_pack(
        "{s:I, s:I, s:I, s:o, s:I, s:{s:I, s:o, s:o}, s:f, s:I, s:f, s:o, s:o, s:f, s:o}", "items",
        (json_int_t)f->items, "decided_by_ai", (json_int_t)f->by_ai, "decided_by_people",
        (json_int_t)f->by_people, "automation_rate", ratio(f->by_ai, f->by_ai + f->by_people),
        "queued", (json_int_t)f->queued, "latency_seconds", "count", (json_int_t)n_lat, "p50",
        quantile(lat, n_lat, 50), "p90", quantile(lat, n_lat, 90), "reviewer_seconds",
        (double)f->work_ms / 1000.0, "timed_answers", (json_int_t)f->timed, "reviewer_hours",
        (double)f->work_ms / 3600000.0, "reviewer_hours_estimated", hours(f->answers, sc->minutes),
        "baseline_hours", hours(f->items, sc->minutes), "hours_saved", saved, "cost", cost);
    json_t *quality =
        json_pack("{s:I, s:I, s:o, s:o, s:I, s:I, s:o, s:{s:I, s:I}, s:I, s:I}", "audited",
                  (json_int_t)f->audited, "audited_errors", (json_int_t)f->audit_errors,
                  "audited_error", ratio(f->audit_errors, f->audited), "audited_error_bound", bound,
                  "reviews", (json_int_t)f->reviews, "overrides", (json_int_t)f->overrides,
                  "override_rate", ratio(f->overrides, f->reviews), "feedback", "accurate",
                  (json_int_t)f->fb_accurate, "inaccurate", (json_int_t)f->fb_inaccurate,
                  "sla_breaches", (json_int_t)f->sla_breaches, "pauses", (json_int_t)f->pauses);
    json_t *team =
        json_pack("{s:I, s:I, s:o, s:I, s:I, s:o, s:I}", "reviewers", (json_int_t)f->n_rv,
                  "human_answers", (json_int_t)f->answers, "answers_per_reviewer",
                  ratio(f->answers, (int64_t)f->n_rv), "proposals", (json_int_t)f->proposals,
                  "proposals_accepted", (json_int_t)f->accepted, "acceptance_rate",
                  ratio(f->accepted, f->proposals), "escalations", (json_int_t)f->escalations);
    return json_pack("{s:o, s:o, s:o}", "efficiency", efficiency, "quality", quality, "team", team);
}

/* The window's latencies of a process or step: every period's, merged and sorted. */
static int64_t *merged_latencies(const run *r, const pm *m, size_t s, size_t *n)
{
    size_t width = m->n_steps + 1, total = 0;
    for (size_t k = 0; k < r->n_periods; k++)
        total += m->fams[k * width + s].n_lat;
    int64_t *all = malloc((total ? total : 1) * sizeof *all);
    if (all == NULL)
        return NULL;
    size_t at = 0;
    for (size_t k = 0; k < r->n_periods; k++) {
        const fam *f = &m->fams[k * width + s];
        if (f->n_lat > 0)
            memcpy(all + at, f->lat, f->n_lat * sizeof *all);
        at += f->n_lat;
    }
    if (total > 0)
        qsort(all, total, sizeof *all, by_ms);
    *n = total;
    return all;
}

/* The totals and the periods of a process (s = n_steps) or of one step. */
static int series_json(const run *r, pm *m, size_t s, const scale *sc, json_t *into)
{
    size_t width = m->n_steps + 1, n = 0;
    int64_t *all = merged_latencies(r, m, s, &n);
    json_t *periods = json_array();
    json_t *totals = all != NULL ? fam_json(&m->fams[r->n_periods * width + s], sc, all, n) : NULL;
    free(all);
    for (size_t k = 0; periods != NULL && k < r->n_periods; k++) {
        fam *f = &m->fams[k * width + s];
        if (f->n_lat > 0)
            qsort(f->lat, f->n_lat, sizeof *f->lat, by_ms);
        char label[16];
        period_label(r->kind, period_floor(r->kind, r->start[k]), label, sizeof label);
        json_t *p = fam_json(f, sc, f->lat, f->n_lat);
        if (p == NULL || json_object_set_new(p, "label", json_string(label)) != 0 ||
            json_object_set_new(p, "start", tdm__json_time(r->start[k])) != 0 ||
            json_object_set_new(p, "end", tdm__json_time(r->start[k + 1])) != 0 ||
            json_array_append_new(periods, p) != 0) {
            json_decref(p);
            json_decref(periods);
            periods = NULL;
        }
    }
    if (totals == NULL || periods == NULL || json_object_set_new(into, "totals", totals) != 0 ||
        json_object_set_new(into, "periods", periods) != 0) {
        json_decref(totals);
        json_decref(periods);
        return TDM_ENOMEM;
    }
    return 0;
}

/* A step's guardrails and state, as the registry has them (null where nothing applies). */
static json_t *step_head(proc_state *ps, size_t i)
{
    const tdm_step_info *si = tdm_process_step(ps->p, i);
    if (si->allocation == TDM_ALLOC_HUMAN)
        return json_pack("{s:s, s:s, s:s, s:s, s:n, s:n, s:n, s:b, s:n, s:n}", "step", si->id,
                         "allocation", tdm_allocation_name(si->allocation), "owner", si->owner,
                         "queue", si->queue, "max_error", "confidence", "threshold", "paused", 0,
                         "pause_reason", "model_version");
    step_model *sm = ps->steps[i];
    pthread_rwlock_rdlock(&sm->lock);
    json_t *threshold = sm->found ? json_real(sm->threshold) : json_null();
    int paused = sm->paused;
    json_t *reason = paused ? json_string(sm->pause_reason) : json_null();
    uint64_t version = sm->version;
    pthread_rwlock_unlock(&sm->lock);
    return json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:o, s:b, s:o, s:I}", "step", si->id,
                     "allocation", tdm_allocation_name(si->allocation), "owner", si->owner, "queue",
                     si->queue, "max_error", si->max_error, "confidence", si->confidence,
                     "threshold", threshold, "paused", paused, "pause_reason", reason,
                     "model_version", (json_int_t)version);
}

/* The strictest budget among a process's AI steps: the lowest max_error, the highest
 * confidence (both 0 when it has none). */
static void strictest(const tdm_process *p, double *max_error, double *confidence)
{
    *max_error = *confidence = 0;
    for (size_t i = 0; i < tdm_process_step_count(p); i++) {
        const tdm_step_info *si = tdm_process_step(p, i);
        if (si->allocation == TDM_ALLOC_HUMAN)
            continue;
        if (*confidence == 0 || si->max_error < *max_error)
            *max_error = si->max_error;
        if (si->confidence > *confidence)
            *confidence = si->confidence;
    }
}

static int by_answers(const void *a, const void *b)
{
    const reviewer *x = a, *y = b;
    if (x->answers != y->answers)
        return x->answers < y->answers ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int by_volume(const void *a, const void *b)
{
    const segment *x = a, *y = b;
    int64_t vx = x->by_ai + x->by_people, vy = y->by_ai + y->by_people;
    if (vx != vy)
        return vx < vy ? 1 : -1;
    if (x->items != y->items)
        return x->items < y->items ? 1 : -1;
    return strcmp(x->name, y->name);
}

static json_t *reviewers_json(fam *f)
{
    if (f->n_rv > 0)
        qsort(f->rv, f->n_rv, sizeof *f->rv, by_answers);
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < f->n_rv; i++) {
        const reviewer *v = &f->rv[i];
        json_t *o =
            json_pack("{s:s, s:I, s:I, s:f, s:I, s:I, s:o}", "reviewer", v->name, "answers",
                      (json_int_t)v->answers, "timed_answers", (json_int_t)v->timed,
                      "reviewer_seconds", (double)v->work_ms / 1000.0, "proposals",
                      (json_int_t)v->proposals, "proposals_accepted", (json_int_t)v->accepted,
                      "acceptance_rate", ratio(v->accepted, v->proposals));
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

static json_t *segments_json(pm *m, const char *field, size_t top, double confidence)
{
    if (field == NULL)
        return json_null();
    if (m->n_seg > 0)
        qsort(m->seg, m->n_seg, sizeof *m->seg, by_volume);
    json_t *groups = json_array();
    for (size_t i = 0; groups != NULL && i < m->n_seg && i < top; i++) {
        const segment *s = &m->seg[i];
        json_t *bound = s->audited > 0 && confidence > 0
                            ? json_real(tdm_binomial_upper_bound(
                                  (uint64_t)s->audit_errors, (uint64_t)s->audited, 1 - confidence))
                            : json_null();
        json_t *o =
            json_pack("{s:s, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:o}", "value",
                      s->name, "items", (json_int_t)s->items, "decided_by_ai", (json_int_t)s->by_ai,
                      "decided_by_people", (json_int_t)s->by_people, "automation_rate",
                      ratio(s->by_ai, s->by_ai + s->by_people), "audited", (json_int_t)s->audited,
                      "audited_errors", (json_int_t)s->audit_errors, "audited_error",
                      ratio(s->audit_errors, s->audited), "audited_error_bound", bound, "reviews",
                      (json_int_t)s->reviews, "overrides", (json_int_t)s->overrides,
                      "override_rate", ratio(s->overrides, s->reviews));
        if (o == NULL || json_array_append_new(groups, o) != 0) {
            json_decref(groups);
            groups = NULL;
        }
    }
    return json_pack("{s:s, s:o, s:I}", "field", field, "groups", groups, "more",
                     (json_int_t)(m->n_seg > top ? m->n_seg - top : 0));
}

/* Sets `key` of `o` to `v`, which it takes over (NULL: out of memory). -1 on failure. */
static int put(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return -1;
    return json_object_set_new(o, key, v) != 0 ? -1 : 0;
}

typedef struct metrics_job {
    run r;
    const char *process;
    const char *by;
    size_t top;
    double rate; /* < 0: the process's own */
    json_t *answer;
} metrics_job;

static int metrics_read(sqlite3 *db, void *arg, tdm_error *err)
{
    metrics_job *j = arg;
    run *r = &j->r;
    int rc = read_all(db, r, j->process, err);
    json_t *confusions = NULL;
    if (rc == 0)
        rc = tdm__confusions(db, j->process, r->from, r->to, &confusions, err);
    if (rc != 0)
        return rc;
    pm *m = &r->pm[0];
    const tdm_process *p = m->ps->p;
    double max_error, confidence;
    strictest(p, &max_error, &confidence);
    double own = tdm_process_baseline_cost(p);
    scale sc = {tdm_process_baseline_minutes(p), j->rate >= 0 ? j->rate : own, confidence};
    json_t *steps = json_array(), *answer = json_object();
    rc = steps != NULL && answer != NULL ? series_json(r, m, m->n_steps, &sc, answer) : TDM_ENOMEM;
    for (size_t i = 0; rc == 0 && i < m->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(p, i);
        scale ssc = sc;
        ssc.confidence = si->allocation == TDM_ALLOC_HUMAN ? 0 : si->confidence;
        json_t *s = step_head(m->ps, i);
        rc = s != NULL ? series_json(r, m, i, &ssc, s) : TDM_ENOMEM;
        if (rc == 0 && json_array_append_new(steps, s) != 0)
            rc = TDM_ENOMEM;
        else if (rc != 0)
            json_decref(s);
    }
    fam *window = &m->fams[r->n_periods * (m->n_steps + 1) + m->n_steps];
    json_t *head = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:{s:f, s:f, s:o}, s:o, s:o}", "process", m->name,
        "owner", tdm_process_owner(p), "description", tdm_process_description(p), "generated_at",
        tdm__json_time(r->now), "from", tdm__json_time(r->from), "to", tdm__json_time(r->to), "by",
        j->by, "baseline", "minutes_per_item", sc.minutes, "error_rate",
        tdm_process_baseline_error(p), "cost_per_hour", own > 0 ? json_real(own) : json_null(),
        "cost_per_hour", sc.cost > 0 ? json_real(sc.cost) : json_null(), "risk_budget",
        confidence > 0 ? json_pack("{s:f, s:f}", "max_error", max_error, "confidence", confidence)
                       : json_null());
    /* Each value is handed over exactly once, whatever fails. */
    int bad = head == NULL || json_object_update_new(answer, head) != 0;
    bad |= put(answer, "steps", steps);
    bad |= put(answer, "reviewers", rc == 0 ? reviewers_json(window) : NULL);
    bad |=
        put(answer, "segments", rc == 0 ? segments_json(m, r->segment, j->top, confidence) : NULL);
    bad |= put(answer, "confusions", confusions);
    bad |= put(answer, "pauses", json_incref(m->pauses));
    if (rc == 0 && !bad) {
        j->answer = answer;
        return 0;
    }
    json_decref(answer);
    return rc != 0 && rc != TDM_ENOMEM ? rc : tdm__error_code(err, TDM_ENOMEM);
}

void tdm_metrics_query_init(tdm_metrics_query *q)
{
    memset(q, 0, sizeof *q);
    q->cost_per_hour = -1;
}

int tdm_engine_metrics(tdm_engine *e, const char *process, const tdm_metrics_query *q, char **json,
                       tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || q == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_metrics: missing argument");
    *json = NULL;
    metrics_job j;
    memset(&j, 0, sizeof j);
    run *r = &j.r;
    r->now = tdm__now_ms();
    j.by = q->by != NULL ? q->by : "day";
    if (strcmp(j.by, "day") == 0)
        r->kind = BY_DAY;
    else if (strcmp(j.by, "week") == 0)
        r->kind = BY_WEEK;
    else if (strcmp(j.by, "month") == 0)
        r->kind = BY_MONTH;
    else
        return tdm__error_field(err, TDM_EPARSE, "by",
                                "by: expected day, week or month, got \"%.64s\"", q->by);
    r->to = r->now;
    if (q->to != NULL && parse_when("to", q->to, 1, &r->to, err) != 0)
        return err->code;
    r->from = (r->to - 1) / DAY_MS * DAY_MS - (int64_t)(TDM_METRICS_DEFAULT_DAYS - 1) * DAY_MS;
    if (r->from < 0)
        r->from = 0;
    if (q->from != NULL && parse_when("from", q->from, 0, &r->from, err) != 0)
        return err->code;
    if (r->from >= r->to) {
        char a[32], b[32];
        tdm__format_time(r->from, a, sizeof a);
        tdm__format_time(r->to, b, sizeof b);
        return tdm__error_field(err, TDM_EINVAL, "to", "to (%s) must be after from (%s)", b, a);
    }
    size_t count = 0;
    for (int64_t t = r->from; t < r->to && count <= TDM_METRICS_MAX_PERIODS;
         t = period_next(r->kind, period_floor(r->kind, t)))
        count++;
    if (count > TDM_METRICS_MAX_PERIODS)
        return tdm__error_field(err, TDM_EINVAL, "by",
                                "by: the window holds more than %d periods of a %s; choose a "
                                "longer period (week or month) or a shorter window",
                                TDM_METRICS_MAX_PERIODS, j.by);
    if (q->segment != NULL) {
        json_t *probe = json_string(q->segment); /* NULL when it is not UTF-8 */
        int utf8 = probe != NULL;
        json_decref(probe);
        if (q->segment[0] == '\0' || strlen(q->segment) > TDM_FAIRNESS_FIELD_MAX || !utf8)
            return tdm__error_field(err, TDM_EINVAL, "segment",
                                    "segment: expected the name of an item field, 1 to %d bytes "
                                    "of UTF-8",
                                    TDM_FAIRNESS_FIELD_MAX);
    }
    if (!(q->cost_per_hour < 0) && !(q->cost_per_hour > 0 && q->cost_per_hour <= 1e6))
        return tdm__error_field(err, TDM_EINVAL, "rate",
                                "rate: expected the cost of a person's hour, more than 0 and at "
                                "most 1000000");
    if (q->top > TDM_METRICS_MAX_TOP)
        return tdm__error_field(err, TDM_EINVAL, "top", "top: at most %d", TDM_METRICS_MAX_TOP);
    r->keep = 1;
    r->segment = q->segment;
    j.process = process;
    j.top = q->top > 0 ? q->top : TDM_METRICS_DEFAULT_TOP;
    j.rate = q->cost_per_hour;
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    rc = run_init(r, &ps, 1, 1, err);
    if (rc == 0)
        rc = in_snapshot(e, metrics_read, &j, err);
    run_release(r);
    tdm__proc_put(e, ps);
    if (rc != 0)
        return rc;
    return tdm__answer(j.answer, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* The Prometheus answer                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* A step's state for the gauges: the registry's audit numbers and the kill switch. */
typedef struct step_state {
    int ai;
    int64_t audited, audit_errors;
    int found;
    double threshold;
    int paused;
    uint64_t version;
    uint64_t fit_examples;
} step_state;

typedef struct prom_job {
    run r;
    step_state **steps;         /* per process (in r.pm's order), per step */
    tdm__queue_counts **queues; /* per process, per queue of queue_names */
    const char ***queue_names;
    size_t *n_queues;
} prom_job;

/* The queues a process's steps name, each once, in step order (as the dashboard lists them). */
static size_t queue_list(const tdm_process *p, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < tdm_process_step_count(p); i++) {
        const tdm_step_info *si = tdm_process_step(p, i);
        const char *named_queues[2] = {si->queue, si->escalation_queue};
        for (size_t k = 0; k < 2; k++) {
            if (named_queues[k] == NULL)
                continue;
            size_t j = 0;
            while (j < n && strcmp(out[j], named_queues[k]) != 0)
                j++;
            if (j == n)
                out[n++] = named_queues[k];
        }
    }
    return n;
}

static int prom_read(sqlite3 *db, void *arg, tdm_error *err)
{
    prom_job *j = arg;
    run *r = &j->r;
    int rc = read_all(db, r, NULL, err);
    for (size_t i = 0; rc == 0 && i < r->n_pm; i++) {
        pm *m = &r->pm[i];
        for (size_t s = 0; rc == 0 && s < m->n_steps; s++) {
            const tdm_step_info *si = tdm_process_step(m->ps->p, s);
            step_state *st = &j->steps[i][s];
            st->ai = si->allocation != TDM_ALLOC_HUMAN;
            if (!st->ai)
                continue;
            rc = tdm__audit_numbers(db, m->name, si->id, &st->audited, &st->audit_errors, err);
            step_model *sm = m->ps->steps[s];
            pthread_rwlock_rdlock(&sm->lock);
            st->found = sm->found;
            st->threshold = sm->threshold;
            st->paused = sm->paused;
            st->version = sm->version;
            st->fit_examples = sm->fit_examples;
            pthread_rwlock_unlock(&sm->lock);
        }
        for (size_t q = 0; rc == 0 && q < j->n_queues[i]; q++)
            rc = tdm__queue_counts_read(db, m->name, j->queue_names[i][q], r->now, &j->queues[i][q],
                                        err);
    }
    return rc;
}

/* Writes a label value with the exposition format's escapes (backslash, quote, newline). */
static void label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: name{process="P"[,step="S"][,key="value"]} value. */
static void sample(FILE *f, const char *name, const char *process, const char *step_key,
                   const char *step, const char *key, const char *value_label, double v)
{
    char num[40];
    if (isinf(v))
        snprintf(num, sizeof num, "%s", v > 0 ? "+Inf" : "-Inf");
    else
        tdm__format_number(v, num, sizeof num);
    fprintf(f, "%s{process=\"", name);
    label_value(f, process);
    if (step != NULL) {
        fprintf(f, "\",%s=\"", step_key);
        label_value(f, step);
    }
    if (key != NULL) {
        fprintf(f, "\",%s=\"", key);
        label_value(f, value_label);
    }
    fprintf(f, "\"} %s\n", num);
}

/* A step-level gauge computed from a family: a value, or NaN to leave the sample out. */
typedef double (*fam_value)(const fam *f);

static double v_automation(const fam *f)
{
    return f->by_ai + f->by_people > 0 ? (double)f->by_ai / (double)(f->by_ai + f->by_people) : NAN;
}
static double v_override_ratio(const fam *f)
{
    return f->reviews > 0 ? (double)f->overrides / (double)f->reviews : NAN;
}
static double v_reviewers(const fam *f)
{
    return (double)f->n_rv;
}

/* The gauges of an AI step's state (NaN: no sample). */
typedef double (*state_value)(const step_state *s, const tdm_step_info *si);

static double s_audited(const step_state *s, const tdm_step_info *si)
{
    (void)si;
    return (double)s->audited;
}
static double s_error(const step_state *s, const tdm_step_info *si)
{
    (void)si;
    return s->audited > 0 ? (double)s->audit_errors / (double)s->audited : NAN;
}
static double s_bound(const step_state *s, const tdm_step_info *si)
{
    return s->audited > 0 ? tdm_binomial_upper_bound((uint64_t)s->audit_errors,
                                                     (uint64_t)s->audited, 1 - si->confidence)
                          : NAN;
}
static double s_budget(const step_state *s, const tdm_step_info *si)
{
    (void)s;
    return si->max_error;
}
static double s_confidence(const step_state *s, const tdm_step_info *si)
{
    (void)s;
    return si->confidence;
}
static double s_threshold(const step_state *s, const tdm_step_info *si)
{
    (void)si;
    return s->found ? s->threshold : NAN;
}
static double s_paused(const step_state *s, const tdm_step_info *si)
{
    (void)si;
    return (double)(s->paused != 0);
}
static double s_version(const step_state *s, const tdm_step_info *si)
{
    (void)si;
    return (double)s->version;
}

static double s_fit_examples(const step_state *s, const tdm_step_info *si)
{
    (void)si;
    return (double)s->fit_examples;
}

/*
 * A metric labelled by process and step, read from one of three places: an int64_t count of
 * the step's family (`field`, FIELD(member); times `scale`, 1 when 0), a function of the
 * family, or a function of the step's state. `ai_only` leaves human steps out; every state
 * metric is the AI's.
 */
#define FIELD(member) (offsetof(fam, member) + 1)
typedef struct step_family {
    const char *name, *type, *help;
    size_t field;
    double scale;
    int ai_only;
    fam_value fv;
    state_value sv;
} step_family;

static const step_family step_families[] = {
    {"tandem_tasks_total", "counter", "Tasks made for people at the step.", .field = FIELD(queued)},
    {"tandem_automation_ratio", "gauge",
     "Share of the step's decisions the AI made alone (decided by AI / all decided).",
     .fv = v_automation},
    {"tandem_human_answers_total", "counter",
     "Tasks answered by people with accept or correct (one decision each).",
     .field = FIELD(answers)},
    {"tandem_ai_proposals_total", "counter", "Answers to tasks that carried an AI proposal.",
     .field = FIELD(proposals)},
    {"tandem_ai_proposals_accepted_total", "counter",
     "Answers to tasks that kept the AI's proposal.", .field = FIELD(accepted)},
    {"tandem_reviews_total", "counter",
     "Reviews of the AI: answers to tasks with a proposal, and feedback on decisions the AI "
     "made alone.",
     .field = FIELD(reviews)},
    {"tandem_overrides_total", "counter",
     "Reviews that overrode the AI: an answer other than its proposal, or feedback "
     "inaccurate on its decision.",
     .field = FIELD(overrides)},
    {"tandem_override_ratio", "gauge", "Overrides / reviews of the AI.", .fv = v_override_ratio},
    {"tandem_audit_samples_total", "counter",
     "Audit samples answered by people (decisions the AI would have made alone).",
     .field = FIELD(audited), .ai_only = 1},
    {"tandem_audit_errors_total", "counter",
     "Audit samples whose answer differed from the AI's proposal.", .field = FIELD(audit_errors),
     .ai_only = 1},
    {"tandem_audited_samples", "gauge",
     "Audit samples since training or the last resume (the registry's count).", .sv = s_audited},
    {"tandem_audited_error_ratio", "gauge",
     "Share of the audit samples since training or the last resume that the AI got wrong.",
     .sv = s_error},
    {"tandem_audited_error_bound_ratio", "gauge",
     "Clopper-Pearson upper bound on the audited error, at the step's confidence.", .sv = s_bound},
    {"tandem_risk_budget_ratio", "gauge",
     "The step's risk budget: the highest error allowed on decisions the AI makes alone.",
     .sv = s_budget},
    {"tandem_risk_confidence_ratio", "gauge", "The confidence of the step's error bound.",
     .sv = s_confidence},
    {"tandem_confidence_threshold", "gauge",
     "The AI decides alone at or above this confidence (certified threshold).", .sv = s_threshold},
    {"tandem_step_paused", "gauge",
     "1 while the AI's autonomy at the step is paused (kill switch or drift check).",
     .sv = s_paused},
    {"tandem_model_version", "gauge", "The step's model version in use.", .sv = s_version},
    {"tandem_model_fit_examples", "gauge",
     "Examples the step's model was last fitted on, by a train or a refit (0: online only).",
     .sv = s_fit_examples},
    {"tandem_reviewer_seconds_total", "counter",
     "Measured reviewer time: from claiming a task to answering it, over timed answers.",
     .field = FIELD(work_ms), .scale = 0.001},
    {"tandem_reviewer_timed_answers_total", "counter",
     "Answers timed from the answering person's own claim.", .field = FIELD(timed)},
    {"tandem_reviewers", "gauge", "Distinct people who have answered the step's tasks.",
     .fv = v_reviewers},
    {"tandem_sla_breaches_total", "counter",
     "Tasks not done by their due time (placed at the due time).", .field = FIELD(sla_breaches)},
    {"tandem_escalations_total", "counter", "Tasks escalated.", .field = FIELD(escalations)},
    {"tandem_pauses_total", "counter",
     "Times the AI's autonomy at the step was paused (by a person or by the drift check).",
     .field = FIELD(pauses), .ai_only = 1},
};

/* A step-level metric's value at step `si` (NaN: no sample). */
static double step_value(const step_family *sf, const fam *x, const step_state *st,
                         const tdm_step_info *si)
{
    if ((sf->ai_only || sf->sv != NULL) && !st->ai)
        return NAN;
    if (sf->sv != NULL)
        return sf->sv(st, si);
    if (sf->fv != NULL)
        return sf->fv(x);
    int64_t v;
    memcpy(&v, (const char *)x + sf->field - 1, sizeof v);
    return (double)v * (sf->scale != 0 ? sf->scale : 1);
}

static void prom_write(prom_job *j, FILE *f)
{
    run *r = &j->r;
    head(f, "tandem_items_total", "counter", "Items received by the process (each once).");
    for (size_t i = 0; i < r->n_pm; i++)
        sample(f, "tandem_items_total", r->pm[i].name, NULL, NULL, NULL, NULL,
               (double)r->pm[i].fams[r->pm[i].n_steps].items);
    head(f, "tandem_saved_seconds", "gauge",
         "People's time saved against the baseline: decisions the AI made alone times "
         "baseline.minutes_per_item, in seconds.");
    for (size_t i = 0; i < r->n_pm; i++) {
        const pm *m = &r->pm[i];
        sample(f, "tandem_saved_seconds", m->name, NULL, NULL, NULL, NULL,
               (double)m->fams[m->n_steps].by_ai * tdm_process_baseline_minutes(m->ps->p) * 60);
    }
    head(f, "tandem_saved_cost", "gauge",
         "The saved time at baseline.cost_per_hour (processes that declare it).");
    for (size_t i = 0; i < r->n_pm; i++) {
        const pm *m = &r->pm[i];
        double rate = tdm_process_baseline_cost(m->ps->p);
        if (rate > 0)
            sample(f, "tandem_saved_cost", m->name, NULL, NULL, NULL, NULL,
                   (double)m->fams[m->n_steps].by_ai * tdm_process_baseline_minutes(m->ps->p) / 60 *
                       rate);
    }
    head(f, "tandem_decisions_total", "counter",
         "Decisions at the step, by the AI alone (by=\"ai\") or by a person (by=\"person\").");
    for (size_t i = 0; i < r->n_pm; i++)
        for (size_t s = 0; s < r->pm[i].n_steps; s++) {
            const fam *x = &r->pm[i].fams[s];
            const char *id = tdm_process_step(r->pm[i].ps->p, s)->id;
            sample(f, "tandem_decisions_total", r->pm[i].name, "step", id, "by", "ai",
                   (double)x->by_ai);
            sample(f, "tandem_decisions_total", r->pm[i].name, "step", id, "by", "person",
                   (double)x->by_people);
        }
    head(f, "tandem_feedback_total", "counter", "Feedback verdicts on the step's decisions.");
    for (size_t i = 0; i < r->n_pm; i++)
        for (size_t s = 0; s < r->pm[i].n_steps; s++) {
            const fam *x = &r->pm[i].fams[s];
            const char *id = tdm_process_step(r->pm[i].ps->p, s)->id;
            sample(f, "tandem_feedback_total", r->pm[i].name, "step", id, "verdict", "accurate",
                   (double)x->fb_accurate);
            sample(f, "tandem_feedback_total", r->pm[i].name, "step", id, "verdict", "inaccurate",
                   (double)x->fb_inaccurate);
        }
    for (size_t k = 0; k < sizeof step_families / sizeof step_families[0]; k++) {
        const step_family *sf = &step_families[k];
        head(f, sf->name, sf->type, sf->help);
        for (size_t i = 0; i < r->n_pm; i++)
            for (size_t s = 0; s < r->pm[i].n_steps; s++) {
                const tdm_step_info *si = tdm_process_step(r->pm[i].ps->p, s);
                const step_state *st = &j->steps[i][s];
                double v = step_value(sf, &r->pm[i].fams[s], st, si);
                if (!isnan(v))
                    sample(f, sf->name, r->pm[i].name, "step", si->id, NULL, NULL, v);
            }
    }
    head(f, "tandem_decision_latency_seconds", "histogram",
         "Time from an item's intake to the step's decision on it.");
    for (size_t i = 0; i < r->n_pm; i++)
        for (size_t s = 0; s < r->pm[i].n_steps; s++) {
            const fam *x = &r->pm[i].fams[s];
            const char *id = tdm_process_step(r->pm[i].ps->p, s)->id;
            int64_t cumulative = 0;
            for (size_t b = 0; b <= N_EDGES; b++) {
                char le[32];
                cumulative += x->hist[b];
                if (b < N_EDGES)
                    tdm__format_number(latency_edges[b], le, sizeof le);
                else
                    snprintf(le, sizeof le, "+Inf");
                fprintf(f, "tandem_decision_latency_seconds_bucket{process=\"");
                label_value(f, r->pm[i].name);
                fprintf(f, "\",step=\"");
                label_value(f, id);
                fprintf(f, "\",le=\"%s\"} %lld\n", le, (long long)cumulative);
            }
            sample(f, "tandem_decision_latency_seconds_sum", r->pm[i].name, "step", id, NULL, NULL,
                   (double)x->lat_sum_ms / 1000.0);
            sample(f, "tandem_decision_latency_seconds_count", r->pm[i].name, "step", id, NULL,
                   NULL, (double)x->lat_n);
        }
    static const struct {
        const char *name, *help;
        size_t member;
    } queue_families[] = {
        {"tandem_queue_open_tasks", "Open tasks (and claims whose lease ran out) in the queue.",
         offsetof(tdm__queue_counts, open)},
        {"tandem_queue_claimed_tasks", "Tasks claimed by a person, lease running.",
         offsetof(tdm__queue_counts, claimed)},
        {"tandem_queue_confirming_tasks", "Answers waiting for a second person (four eyes).",
         offsetof(tdm__queue_counts, confirming)},
        {"tandem_sla_breached_tasks", "Tasks not done and past their due time, now.",
         offsetof(tdm__queue_counts, sla_breached)},
    };
    for (size_t k = 0; k < sizeof queue_families / sizeof queue_families[0]; k++) {
        head(f, queue_families[k].name, "gauge", queue_families[k].help);
        for (size_t i = 0; i < r->n_pm; i++)
            for (size_t q = 0; q < j->n_queues[i]; q++) {
                const char *c = (const char *)&j->queues[i][q];
                int64_t v;
                memcpy(&v, c + queue_families[k].member, sizeof v);
                sample(f, queue_families[k].name, r->pm[i].name, "queue", j->queue_names[i][q],
                       NULL, NULL, (double)v);
            }
    }
    head(f, "tandem_queue_oldest_open_seconds", "gauge",
         "Age of the queue's oldest open task (queues with one open).");
    for (size_t i = 0; i < r->n_pm; i++)
        for (size_t q = 0; q < j->n_queues[i]; q++) {
            int64_t oldest = j->queues[i][q].oldest_open;
            if (oldest >= 0)
                sample(f, "tandem_queue_oldest_open_seconds", r->pm[i].name, "queue",
                       j->queue_names[i][q], NULL, NULL,
                       oldest < r->now ? (double)(r->now - oldest) / 1000.0 : 0);
        }
}

static void prom_release(prom_job *j)
{
    for (size_t i = 0; i < j->r.n_pm; i++) {
        if (j->steps != NULL)
            free(j->steps[i]);
        if (j->queues != NULL)
            free(j->queues[i]);
        if (j->queue_names != NULL)
            free(j->queue_names[i]);
    }
    free(j->steps);
    free(j->queues);
    free(j->queue_names);
    free(j->n_queues);
    run_release(&j->r);
}

/* Whether `who` may see the process's numbers: admins and viewers all, owners theirs. */
static int may_see(const tdm_principal *who, const char *process)
{
    if (who == NULL || who->role == TDM_ROLE_ADMIN || who->role == TDM_ROLE_VIEWER)
        return 1;
    return who->role == TDM_ROLE_OWNER && tdm_principal_in_scope(who, process);
}

int tdm_engine_prometheus(tdm_engine *e, const tdm_principal *who, char **text_out, size_t *len,
                          tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || text_out == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_prometheus: missing argument");
    *text_out = NULL;
    size_t n_all;
    proc_state **all = tdm__proc_all(e, &n_all);
    if (all == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    proc_state **seen = calloc(n_all ? n_all : 1, sizeof *seen);
    size_t n = 0;
    for (size_t i = 0; seen != NULL && i < n_all; i++)
        if (may_see(who, tdm_process_name(all[i]->p)))
            seen[n++] = all[i];
    prom_job j;
    memset(&j, 0, sizeof j);
    j.r.now = tdm__now_ms();
    j.r.from = 0;
    j.r.to = INT64_MAX;
    int rc = seen != NULL ? run_init(&j.r, seen, n, 0, err) : tdm__error_code(err, TDM_ENOMEM);
    free(seen);
    if (rc == 0) {
        j.steps = calloc(n ? n : 1, sizeof *j.steps);
        j.queues = calloc(n ? n : 1, sizeof *j.queues);
        j.queue_names = calloc(n ? n : 1, sizeof *j.queue_names);
        j.n_queues = calloc(n ? n : 1, sizeof *j.n_queues);
        if (j.steps == NULL || j.queues == NULL || j.queue_names == NULL || j.n_queues == NULL)
            rc = tdm__error_code(err, TDM_ENOMEM);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const tdm_process *p = j.r.pm[i].ps->p;
        size_t steps = tdm_process_step_count(p);
        j.steps[i] = calloc(steps ? steps : 1, sizeof **j.steps);
        j.queue_names[i] = calloc(2 * steps + 1, sizeof **j.queue_names);
        j.queues[i] = calloc(2 * steps + 1, sizeof **j.queues);
        if (j.steps[i] == NULL || j.queue_names[i] == NULL || j.queues[i] == NULL)
            rc = tdm__error_code(err, TDM_ENOMEM);
        else
            j.n_queues[i] = queue_list(p, j.queue_names[i]);
    }
    if (rc == 0)
        rc = in_snapshot(e, prom_read, &j, err);
    char *buf = NULL;
    size_t size = 0;
    if (rc == 0) {
        FILE *f = open_memstream(&buf, &size);
        if (f == NULL) {
            rc = tdm__error_code(err, TDM_ENOMEM);
        } else {
            prom_write(&j, f);
            if (fclose(f) != 0 || buf == NULL)
                rc = tdm__error_code(err, TDM_ENOMEM);
        }
    }
    prom_release(&j);
    tdm__proc_put_all(e, all, n_all);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *text_out = buf;
    if (len != NULL)
        *len = size;
    return 0;
}
