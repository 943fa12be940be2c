/*
 * fairness.c — the fairness report of one step (tdm_engine_fairness): per group of items,
 * how often the AI proposed the favourable outcome, how often it was the final decision,
 * the impact ratio with the four-fifths rule, how often people overrode the AI, and where
 * the true outcome is known the AI's true and false positive rates.
 *
 * NOTES ON THE DESIGN OF THE REPORT
 *
 * One pass. A single read of the store gives, for every item of the process whose current
 * version reached the step, its fields, its latest decision there (value, kind, the AI's
 * proposal), the latest feedback on that decision and its latest task there (for the
 * proposal of an item still queued). Each row is put in its group and counted; nothing else
 * about the item is kept, so the report's own memory grows with the number of groups, which
 * is capped (TDM__FAIRNESS_MAX_GROUPS), never with the number of items. (SQLite gathers the
 * latest feedback per decision in a temporary b-tree of its own, one row per decision with
 * feedback.)
 *
 * What counts (docs/api.md, "GET /v1/processes/{name}/fairness", says it for users):
 *   - the AI's proposal is the decision's `proposal` column (the model's value on an
 *     autonomous decision; the task's proposal on a person's), or for an undecided item its
 *     task's proposal; a human step has none;
 *   - the true outcome is what the latest feedback on the decision says (the decision's
 *     value for "accurate", the correction for "inaccurate" with one; unknown for
 *     "inaccurate" without one), else a person's decision, else unknown;
 *   - decisions and tasks of an item's earlier versions do not count: the item was submitted
 *     again, and its group is read from its current fields.
 *
 * Groups are kept sorted by name (byte order) in an array, found by binary search.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

/* At most this many groups in one report: grouping by an identifier is a mistake to report,
 * not an answer to build. */
#define TDM__FAIRNESS_MAX_GROUPS 1000

/* The four-fifths rule: a group whose rate is below 80% of the highest shows adverse impact. */
#define FOUR_FIFTHS 0.8

#define MISSING "(missing)"

typedef struct group {
    char *name;
    uint64_t count;            /* items that reached the step */
    uint64_t ai_n, ai_fav;     /* items with an AI proposal; favourable ones */
    uint64_t dec_n, dec_fav;   /* items with a decision; favourable ones */
    uint64_t person_n, over_n; /* decided by a person with a proposal; differing from it */
    uint64_t pos_n, tp;        /* true outcome favourable (with a proposal); proposed favourable */
    uint64_t neg_n, fp;        /* true outcome not favourable (with a proposal); proposed so */
} group;

typedef struct report {
    group *groups;
    size_t n, cap;
} report;

static const char *text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* A number as short as it can be written and still read back exactly ("25", "0.1"). */
void tdm__format_number(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, cap, "%.17g", v);
}

/*
 * A stored JSON value (decision values, proposals, corrections) as a label: a string's
 * text, anything else as compact JSON. NULL for SQL NULL; "" if it cannot be read.
 * The caller frees the result.
 */
static char *label_of(const char *stored, int *oom)
{
    if (stored == NULL)
        return NULL;
    json_t *v = json_loads(stored, JSON_DECODE_ANY, NULL);
    char *out;
    if (v == NULL)
        out = strdup("");
    else if (json_is_string(v))
        out = strdup(json_string_value(v));
    else
        out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (out == NULL)
        *oom = 1;
    return out;
}

/* A field's value as a number, when it is one or a string that is exactly one. */
static int numeric_value(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return isfinite(*out);
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return 0;
    const char *s = json_string_value(v);
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(d) || s[0] == ' ' || s[0] == '\t')
        return 0;
    *out = d;
    return 1;
}

/* The name of the group a field value belongs to, into a malloc'd string (NULL: no memory). */
static char *group_name(json_t *v, const double *bins, size_t n_bins)
{
    char buf[128], a[40], b[40];
    if (n_bins > 0) {
        double d;
        if (!numeric_value(v, &d))
            return strdup(MISSING);
        size_t k = 0;
        while (k < n_bins && d > bins[k])
            k++;
        if (k == 0) {
            tdm__format_number(bins[0], a, sizeof a);
            snprintf(buf, sizeof buf, "<=%s", a);
        } else if (k == n_bins) {
            tdm__format_number(bins[n_bins - 1], a, sizeof a);
            snprintf(buf, sizeof buf, ">%s", a);
        } else {
            tdm__format_number(bins[k - 1], a, sizeof a);
            tdm__format_number(bins[k], b, sizeof b);
            snprintf(buf, sizeof buf, "%s<..<=%s", a, b);
        }
        return strdup(buf);
    }
    if (v == NULL || json_is_null(v))
        return strdup(MISSING);
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        tdm__format_number(json_real_value(v), buf, sizeof buf);
        return strdup(buf);
    }
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY); /* true, false, objects, arrays */
}

/* Finds or adds the group `name` (which it takes over). NULL with err set on failure. */
static group *group_get(report *r, char *name, tdm_error *err)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->groups[mid].name, name);
        if (c == 0) {
            free(name);
            return &r->groups[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (r->n == TDM__FAIRNESS_MAX_GROUPS) {
        free(name);
        tdm__error_field(err, TDM_ETOOBIG, "group",
                         "more than %d groups; group by a field with fewer values, or give bins "
                         "for a numeric one",
                         TDM__FAIRNESS_MAX_GROUPS);
        return NULL;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        group *g = realloc(r->groups, cap * sizeof *g);
        if (g == NULL) {
            free(name);
            tdm__error_code(err, TDM_ENOMEM);
            return NULL;
        }
        r->groups = g;
        r->cap = cap;
    }
    memmove(&r->groups[lo + 1], &r->groups[lo], (r->n - lo) * sizeof *r->groups);
    memset(&r->groups[lo], 0, sizeof *r->groups);
    r->groups[lo].name = name;
    r->n++;
    return &r->groups[lo];
}

static void report_release(report *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->groups[i].name);
    free(r->groups);
}

static int same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * The items of `process` that reached step `step` in their current version, each with its
 * latest decision and task there (found through the item indexes) and the latest feedback
 * on that decision. feedback has no index on decision_id, so its latest row per decision is
 * gathered in one scan: an aggregate with a single max() takes its bare columns from the
 * row holding the maximum (SQLite's documented rule).
 */
static const char fairness_sql[] =
    "WITH f AS (SELECT decision_id, verdict, correction, max(rowid) FROM feedback GROUP BY "
    "decision_id) "
    "SELECT i.fields, d.id, d.value, d.kind, d.proposal, f.verdict, f.correction, t.proposal "
    "FROM items i "
    "LEFT JOIN decisions d ON d.seq = (SELECT max(seq) FROM decisions WHERE item_id = i.id AND "
    "item_version = i.version AND process = ?1 AND step = ?2) "
    "LEFT JOIN tasks t ON t.rowid = (SELECT max(rowid) FROM tasks WHERE item_id = i.id AND "
    "item_version = i.version AND process = ?1 AND step = ?2) "
    "LEFT JOIN f ON f.decision_id = d.id "
    "WHERE i.process = ?1 AND (d.seq IS NOT NULL OR t.rowid IS NOT NULL)";

/* Counts one item (a row of fairness_sql) into its group. */
static int count_row(sqlite3_stmt *st, report *r, const char *field, const double *bins,
                     size_t n_bins, const char *fav, tdm_error *err)
{
    json_t *fields = json_loads(text(st, 0), 0, NULL);
    char *name = group_name(json_object_get(fields, field), bins, n_bins);
    json_decref(fields);
    if (name == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    group *g = group_get(r, name, err);
    if (g == NULL)
        return err->code;

    int oom = 0, decided = text(st, 1) != NULL;
    char *value = label_of(text(st, 2), &oom);
    int person = decided && same(text(st, 3), "person");
    /* The decision's proposal when there is a decision; the task's otherwise. */
    char *proposal = label_of(decided ? text(st, 4) : text(st, 7), &oom);
    char *truth = NULL;
    const char *verdict = text(st, 5);
    if (same(verdict, "accurate"))
        truth = label_of(text(st, 2), &oom);
    else if (same(verdict, "inaccurate"))
        truth = label_of(text(st, 6), &oom); /* NULL without a correction: unknown */
    else if (person)
        truth = label_of(text(st, 2), &oom);
    if (!oom) {
        g->count++;
        if (proposal != NULL) {
            g->ai_n++;
            g->ai_fav += same(proposal, fav);
        }
        if (decided) {
            g->dec_n++;
            g->dec_fav += same(value, fav);
        }
        if (person && proposal != NULL) {
            g->person_n++;
            g->over_n += !same(value, proposal);
        }
        if (truth != NULL && proposal != NULL) {
            if (same(truth, fav)) {
                g->pos_n++;
                g->tp += same(proposal, fav);
            } else {
                g->neg_n++;
                g->fp += same(proposal, fav);
            }
        }
    }
    free(value);
    free(proposal);
    free(truth);
    return oom ? tdm__error_code(err, TDM_ENOMEM) : 0;
}

static json_t *rate(uint64_t num, uint64_t den)
{
    return den > 0 ? json_real((double)num / (double)den) : json_null();
}

/* The answer: the groups with their rates and the equalized-odds gaps. */
static json_t *report_json(const report *r, const char *process, const char *step, const char *fav,
                           const char *field, const double *bins, size_t n_bins)
{
    double max_final = 0;
    int any_final = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->groups[i].dec_n > 0) {
            double v = (double)r->groups[i].dec_fav / (double)r->groups[i].dec_n;
            if (!any_final || v > max_final)
                max_final = v;
            any_final = 1;
        }
    double tpr_lo = 0, tpr_hi = 0, fpr_lo = 0, fpr_hi = 0;
    int any_tpr = 0, any_fpr = 0;
    json_t *groups = json_array();
    for (size_t i = 0; groups != NULL && i < r->n; i++) {
        const group *g = &r->groups[i];
        json_t *impact = json_null(), *ok = json_null();
        if (g->dec_n > 0 && max_final > 0) {
            double ratio = ((double)g->dec_fav / (double)g->dec_n) / max_final;
            impact = json_real(ratio);
            ok = json_boolean(ratio >= FOUR_FIFTHS);
        }
        if (g->pos_n > 0) {
            double v = (double)g->tp / (double)g->pos_n;
            tpr_lo = any_tpr ? fmin(tpr_lo, v) : v;
            tpr_hi = any_tpr ? fmax(tpr_hi, v) : v;
            any_tpr = 1;
        }
        if (g->neg_n > 0) {
            double v = (double)g->fp / (double)g->neg_n;
            fpr_lo = any_fpr ? fmin(fpr_lo, v) : v;
            fpr_hi = any_fpr ? fmax(fpr_hi, v) : v;
            any_fpr = 1;
        }
        json_array_append_new(
            groups,
            json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "group", g->name, "count",
                      (json_int_t)g->count, "ai_favourable_rate", rate(g->ai_fav, g->ai_n),
                      "final_favourable_rate", rate(g->dec_fav, g->dec_n), "impact_ratio", impact,
                      "four_fifths_ok", ok, "override_rate", rate(g->over_n, g->person_n), "tpr",
                      rate(g->tp, g->pos_n), "fpr", rate(g->fp, g->neg_n)));
    }
    json_t *edges = n_bins > 0 ? json_array() : json_null();
    for (size_t i = 0; edges != NULL && i < n_bins; i++)
        json_array_append_new(edges, json_real(bins[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:{s:o, s:o}}", "process", process, "step",
                     step, "favourable", fav, "field", field, "bins", edges, "groups", groups,
                     "equalized_odds", "tpr_gap",
                     any_tpr ? json_real(tpr_hi - tpr_lo) : json_null(), "fpr_gap",
                     any_fpr ? json_real(fpr_hi - fpr_lo) : json_null());
}

/* Picks the step: `want`, or the first with a favourable outcome. Fills id and fav. */
static int pick_step(const tdm_process *p, const char *want, const tdm_step_info **out,
                     tdm_error *err)
{
    size_t n = tdm_process_step_count(p);
    if (want != NULL) {
        size_t idx;
        if (tdm_process_step_index(p, want, &idx) != 0)
            return tdm__error_field(err, TDM_EINVAL, "step", "process \"%s\" has no step \"%s\"",
                                    tdm_process_name(p), want);
        const tdm_step_info *s = tdm_process_step(p, idx);
        if (s->favourable == NULL)
            return tdm__error_field(err, TDM_EINVAL, "step",
                                    "step %s declares no favourable outcome (output.favourable)",
                                    s->id);
        *out = s;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const tdm_step_info *s = tdm_process_step(p, i);
        if (s->favourable != NULL) {
            *out = s;
            return 0;
        }
    }
    return tdm__error_field(err, TDM_EINVAL, "step",
                            "process \"%s\" declares no favourable outcome on any step (add "
                            "output.favourable to the step to report on)",
                            tdm_process_name(p));
}

int tdm_engine_fairness(tdm_engine *e, const char *process, const char *step, const char *field,
                        const double *bins, size_t n_bins, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || json == NULL || (bins == NULL && n_bins > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_fairness: missing argument");
    *json = NULL;
    if (field == NULL || field[0] == '\0' || strlen(field) > TDM_FAIRNESS_FIELD_MAX)
        return tdm__error_field(err, TDM_EINVAL, "group",
                                "group: expected the name of an item field, 1 to %d bytes",
                                TDM_FAIRNESS_FIELD_MAX);
    json_t *probe = json_string(field); /* NULL when it is not UTF-8 */
    int utf8 = probe != NULL;
    json_decref(probe);
    if (!utf8)
        return tdm__error_field(err, TDM_EINVAL, "group", "group: the field name is not UTF-8");
    if (n_bins > TDM_FAIRNESS_MAX_BINS)
        return tdm__error_field(err, TDM_EINVAL, "bins", "bins: %zu edges; at most %d", n_bins,
                                TDM_FAIRNESS_MAX_BINS);
    for (size_t i = 0; i < n_bins; i++) {
        if (!isfinite(bins[i]))
            return tdm__error_field(err, TDM_EINVAL, "bins", "bins: edge %zu is not a number",
                                    i + 1);
        if (i > 0 && !(bins[i] > bins[i - 1]))
            return tdm__error_field(err, TDM_EINVAL, "bins",
                                    "bins: the edges must be strictly increasing (edge %zu, "
                                    "%g, is not above %g)",
                                    i + 1, bins[i], bins[i - 1]);
    }
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    const tdm_step_info *info = NULL;
    rc = pick_step(ps->p, step, &info, err);
    sqlite3 *db = NULL;
    if (rc == 0)
        rc = tdm__reader_get(e, &db, err);
    sqlite3_stmt *st = NULL;
    if (rc == 0)
        rc = tdm__db_prepare(db, fairness_sql, &st, err);
    report r = {0};
    if (rc == 0) {
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
        int s = SQLITE_DONE;
        while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW)
            rc = count_row(st, &r, field, bins, n_bins, info->favourable, err);
        if (rc == 0 && s != SQLITE_DONE)
            rc = tdm__db_error(db, s, err, "reading decisions for the fairness report");
    }
    sqlite3_finalize(st);
    if (db != NULL)
        tdm__reader_put(e, db);
    if (rc == 0)
        rc = tdm__answer(report_json(&r, process, info->id, info->favourable, field, bins, n_bins),
                         json, NULL, err);
    report_release(&r);
    tdm__proc_put(e, ps);
    return rc;
}
