/*
 * simulate.c — replay before rollout (include/tandem/simulate.h): labelled rows run through
 * a process on a real engine, with simulated reviewers, once per routing strategy.
 *
 * NOTES ON THE DESIGN OF THE SIMULATOR
 *
 * The same code path. Nothing here routes, learns or certifies: each strategy opens an
 * engine (tdm_engine_open) on a throwaway SQLite file and goes through the public calls a
 * server makes — submit, claim, complete — so the model learns online, checks are
 * recorded, thresholds are recomputed and audit samples drawn by the engine's own code.
 * The hooks are the engine's route_mode (engine_int.h), which src/policy/route.c reads
 * to play the all-human and fixed-threshold policies the guaranteed one is compared with,
 * and refit_inline: a refit (learning.c) runs in the call that made it due, at the same item
 * in every run, instead of on the learning thread while the replay goes on.
 *
 * Faithful order. Routing an item can depend on everything learned from the answers before
 * it, so the guaranteed and fixed strategies submit one item, answer its tasks, and only
 * then submit the next. A threshold recomputation is a job the writer runs after the
 * answer that made it due (learning.c), not before the answer returns; a barrier (an empty
 * job queued behind it, sync_writer() below) waits for it, so the next item is routed with the new
 * threshold every time and the replay does not depend on thread timing. The all-human
 * strategy routes every item to a person whatever the model knows, so it submits its items
 * in batches (BATCH_ALL_HUMAN) and answers the tasks afterwards in the same order: the model
 * learns the same answers in the same order, and every number reported is the same as item
 * by item (only the proposals the reviewers see are older).
 *
 * One set of draws. The replay order (a seeded shuffle of the rows after the history) and
 * every reviewer answer (the true label, or with probability reviewer_error another label
 * of the step drawn uniformly) are drawn once, before any strategy runs, so every strategy
 * meets the same items in the same order with the same reviewer mistakes. A further person
 * asked to look at an answer (four eyes, a second look) answers from a generator of their own
 * for (seed, item, step, how many looked before), as independently of the first and just as
 * likely to err, and the same in every strategy. The engines are
 * seeded from the same seed for their audit samples. The answer is byte for byte the same
 * for the same inputs, however many strategies run at once.
 *
 * One training. With history, the process is applied and trained once on a template store,
 * which is closed (checkpointed) and copied for each strategy: the copies start from the
 * same model and certified threshold, and the fit (seconds on Banking77) is paid once.
 *
 * Throwaway stores. Each strategy replays on an engine of its own, in a pool of threads
 * (opts->threads, one per core by default); the stores are in a directory made with
 * mkdtemp() under opts->work_dir, else $TMPDIR, else /dev/shm when it can be written, else
 * /tmp, and removed at the end whether the simulation succeeded or not. The engine's writer
 * runs as in production, durable commits included; on tmpfs an fsync costs nothing, which
 * halved the wall time of a 13,083-row replay of Banking77 (97 s on disk, 44 s on
 * /dev/shm, three strategies on two cores), without an engine option that production would
 * never use. A store holds up to about 250 MB by the end of such a replay, most of it the
 * model snapshots written every TDM__SNAPSHOT_EVERY answers.
 */
#define _GNU_SOURCE /* mkdtemp */

#include "tandem/simulate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/engine_int.h"

/* Items per submission for the all-human strategy (see the notes above). */
#define BATCH_ALL_HUMAN 256

/* The actors the simulation acts as, on the throwaway stores' audit trails. */
#define ACTOR_INTAKE    "simulation"
#define ACTOR_REVIEWER  "sim-reviewer"
#define ACTOR_CONFIRMER "sim-reviewer-2"

void tdm_sim_opts_init(tdm_sim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->reviewer_minutes = -1;
    o->seed = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* What every strategy shares: the process, the replay, the reviewers' answers                */
/* ------------------------------------------------------------------------------------------ */

typedef struct sim_step {
    size_t label_col;   /* the data's column holding the step's true answer */
    size_t n_labels;    /* the labels a reviewer may give: declared, else seen in the data */
    const char **label; /* borrowed from the process or the table */
} sim_step;

typedef struct sim_ctx {
    const tdm_sim_opts *o;
    tdm_process *p;
    size_t n_steps;
    sim_step *steps;
    double minutes;   /* per answer */
    size_t n;         /* items replayed */
    size_t *row;      /* the table row of each replayed item, in replay order */
    char **item;      /* each replayed item's JSON text (its fields, no labels) */
    uint32_t *answer; /* answer[k * n_steps + s]: index in steps[s].label of the reviewer's
                         answer to item k at step s */
    uint32_t *truth;  /* the same for the true label */
    char *dir;        /* the throwaway directory */
    char *base;       /* the template store */
} sim_ctx;

static const char *cell(const tdm_table *t, size_t row, size_t col)
{
    size_t len;
    const char *v = tdm_table_cell(t, row, col, &len);
    return v != NULL && len > 0 ? v : NULL;
}

/* Checks the process against the data and finds each step's labels. */
static int prepare_steps(sim_ctx *c, tdm_error *err)
{
    const tdm_table *t = c->o->data;
    const char *file = tdm_table_name(t);
    size_t rows = tdm_table_row_count(t);
    c->n_steps = tdm_process_step_count(c->p);
    c->steps = calloc(c->n_steps ? c->n_steps : 1, sizeof *c->steps);
    if (c->steps == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    for (size_t s = 0; s < c->n_steps; s++) {
        const tdm_step_info *info = tdm_process_step(c->p, s);
        sim_step *ss = &c->steps[s];
        if (tdm_table_column_index(t, info->output, &ss->label_col) != 0)
            return tdm__error_field(err, TDM_EINVAL, "data",
                                    "%s has no column \"%s\", the answer of step \"%s\": the "
                                    "simulated reviewers need every step's true answer (add the "
                                    "column, or simulate with data that has it)",
                                    file, info->output, info->id);
        for (size_t f = 0; f < info->n_inputs; f++) {
            const char *name = info->inputs[f].name;
            int earlier = 0;
            for (size_t k = 0; k < s; k++)
                earlier |= strcmp(tdm_process_step(c->p, k)->output, name) == 0;
            size_t col;
            if (!earlier && tdm_table_column_index(t, name, &col) != 0)
                return tdm__error_field(err, TDM_EINVAL, "data",
                                        "%s has no column \"%s\", which step \"%s\" reads (add "
                                        "it, or simulate with data that has it)",
                                        file, name, info->id);
        }
        /* Every row needs a true answer, one the step may give. */
        if (info->n_labels > 0) {
            ss->n_labels = info->n_labels;
            ss->label = (const char **)info->labels;
        } else {
            ss->label = malloc((rows ? rows : 1) * sizeof *ss->label);
            if (ss->label == NULL)
                return tdm__error_code(err, TDM_ENOMEM);
        }
        for (size_t r = 0; r < rows; r++) {
            size_t len;
            const char *v = tdm_table_cell(t, r, ss->label_col, &len);
            if (v == NULL || len == 0)
                return tdm__error_field(err, TDM_EINVAL, info->output,
                                        "%s:%zu: column \"%s\" is empty: every row needs its "
                                        "true answer for step \"%s\" (fill it in or leave the "
                                        "row out)",
                                        file, tdm_table_row_line(t, r), info->output, info->id);
            if (len > 1024)
                return tdm__error_field(err, TDM_EINVAL, info->output,
                                        "%s:%zu: column \"%s\": a label of %zu bytes; step "
                                        "answers are at most 1024 bytes",
                                        file, tdm_table_row_line(t, r), info->output, len);
            size_t l = 0;
            while (l < ss->n_labels && strcmp(ss->label[l], v) != 0)
                l++;
            if (l < ss->n_labels)
                continue;
            if (info->n_labels > 0)
                return tdm__error_field(err, TDM_EINVAL, info->output,
                                        "%s:%zu: column \"%s\": \"%s\" is not one of step "
                                        "\"%s\"'s labels (fix the data or add it to "
                                        "output.labels)",
                                        file, tdm_table_row_line(t, r), info->output, v, info->id);
            ss->label[ss->n_labels++] = v; /* in the order the data first shows them */
        }
    }
    return 0;
}

/* Index of `v` among a step's labels, or UINT32_MAX (no row's label: wrong whatever the
 * row). Every row's label is there: prepare_steps checked them. */
static uint32_t label_index(const sim_step *ss, const char *v)
{
    for (size_t l = 0; l < ss->n_labels; l++)
        if (strcmp(ss->label[l], v) == 0)
            return (uint32_t)l;
    return UINT32_MAX;
}

/* The items in replay order, their JSON, the true and the reviewers' answers. */
static int prepare_replay(sim_ctx *c, tdm_error *err)
{
    const tdm_sim_opts *o = c->o;
    const tdm_table *t = o->data;
    size_t rows = tdm_table_row_count(t), cols = tdm_table_column_count(t);
    c->n = rows - o->history;
    size_t cells;
    if (tdm__size_mul(c->n, c->n_steps, &cells) != 0)
        return tdm__error_code(err, TDM_ENOMEM);
    c->row = malloc(c->n * sizeof *c->row);
    c->item = calloc(c->n, sizeof *c->item);
    c->answer = malloc((cells ? cells : 1) * sizeof *c->answer);
    c->truth = malloc((cells ? cells : 1) * sizeof *c->truth);
    unsigned char *skip = calloc(cols ? cols : 1, 1), *numeric = calloc(cols ? cols : 1, 1);
    int rc = 0;
    if (c->row == NULL || c->item == NULL || c->answer == NULL || c->truth == NULL ||
        skip == NULL || numeric == NULL)
        rc = tdm__error_code(err, TDM_ENOMEM);
    /* Items carry every column but the answers (a rule must not see the truth) and "id"
     * (the engine names them); a column whose every value is a number is sent as numbers,
     * as `tandem submit` sends CSV. */
    for (size_t col = 0; rc == 0 && col < cols; col++) {
        const char *name = tdm_table_column_name(t, col);
        skip[col] = strcmp(name, "id") == 0;
        for (size_t s = 0; s < c->n_steps; s++)
            skip[col] |= c->steps[s].label_col == col;
        numeric[col] = (unsigned char)tdm_table_column_is_json_number(t, col);
    }
    tdm__rng rng;
    tdm__rng_seed(&rng, o->seed);
    for (size_t k = 0; rc == 0 && k < c->n; k++)
        c->row[k] = o->history + k;
    for (size_t k = c->n; rc == 0 && k > 1; k--) { /* Fisher-Yates */
        size_t j = (size_t)tdm__rng_below(&rng, k);
        size_t tmp = c->row[k - 1];
        c->row[k - 1] = c->row[j];
        c->row[j] = tmp;
    }
    for (size_t k = 0; rc == 0 && k < c->n; k++) {
        size_t r = c->row[k];
        for (size_t s = 0; s < c->n_steps; s++) {
            const sim_step *ss = &c->steps[s];
            uint32_t truth = label_index(ss, cell(t, r, ss->label_col)), said = truth;
            /* A draw for every answer, mistaken or not, keeps the stream aligned. */
            double u = tdm__rng_double(&rng);
            if (u < o->reviewer_error && ss->n_labels > 1) {
                uint32_t other = (uint32_t)tdm__rng_below(&rng, ss->n_labels - 1);
                said = other >= truth ? other + 1 : other;
            }
            c->truth[k * c->n_steps + s] = truth;
            c->answer[k * c->n_steps + s] = said;
        }
        json_t *fields = json_object();
        for (size_t col = 0; fields != NULL && col < cols; col++) {
            size_t len;
            const char *v = tdm_table_cell(t, r, col, &len);
            if (skip[col] || v == NULL || len == 0)
                continue;
            json_t *jv =
                numeric[col] ? json_loadb(v, len, JSON_DECODE_ANY, NULL) : json_stringn(v, len);
            if (jv == NULL) {
                json_decref(fields);
                fields = NULL;
                rc = tdm__error_field(err, TDM_EINVAL, tdm_table_column_name(t, col),
                                      "%s:%zu: column \"%s\" is not valid UTF-8 (save the file "
                                      "as UTF-8)",
                                      tdm_table_name(t), tdm_table_row_line(t, r),
                                      tdm_table_column_name(t, col));
                break;
            }
            json_object_set_new(fields, tdm_table_column_name(t, col), jv);
        }
        if (rc == 0) {
            c->item[k] = fields ? json_dumps(fields, JSON_COMPACT) : NULL;
            if (c->item[k] == NULL)
                rc = tdm__error_code(err, TDM_ENOMEM);
        }
        json_decref(fields);
    }
    free(skip);
    free(numeric);
    return rc;
}

/* The history rows as CSV (every cell quoted), for tdm_engine_train. */
static int history_csv(const tdm_table *t, size_t rows, char **out, size_t *len)
{
    FILE *m = open_memstream(out, len);
    if (m == NULL)
        return TDM_ENOMEM;
    size_t cols = tdm_table_column_count(t);
    for (size_t r = 0; r <= rows; r++) { /* r == 0: the header */
        for (size_t col = 0; col < cols; col++) {
            size_t n = 0;
            const char *v =
                r == 0 ? tdm_table_column_name(t, col) : tdm_table_cell(t, r - 1, col, &n);
            if (r == 0)
                n = strlen(v);
            if (col > 0)
                fputc(',', m);
            fputc('"', m);
            for (size_t i = 0; v != NULL && i < n; i++) {
                if (v[i] == '"')
                    fputc('"', m);
                fputc(v[i], m);
            }
            fputc('"', m);
        }
        fputc('\n', m);
    }
    return fclose(m) == 0 ? 0 : TDM_ENOMEM;
}

/* ------------------------------------------------------------------------------------------ */
/* Throwaway stores                                                                           */
/* ------------------------------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Removes a store, the files SQLite keeps beside it and the engine's PATH-tokens (tokens.c). */
static void store_remove(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal", "-tokens"};
    char buf[4096];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", path, suffix[i]);
        unlink(buf);
    }
}

/* Copies a closed store (whose WAL is checkpointed and empty) to `to`. */
static int store_copy(const char *from, const char *to, tdm_error *err)
{
    char wal[4096];
    struct stat st;
    snprintf(wal, sizeof wal, "%s-wal", from);
    if (stat(wal, &st) == 0 && st.st_size > 0)
        return tdm__error(err, TDM_EIO, "simulation: %s was not checkpointed at close", from);
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = in < 0 || out < 0 ? TDM_EIO : 0;
    char buf[1 << 16];
    while (rc == 0) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        for (ssize_t done = 0; n > 0 && done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                n = -1;
                break;
            }
            done += w;
        }
        if (n < 0)
            rc = TDM_EIO;
    }
    if (out >= 0 && close(out) != 0)
        rc = TDM_EIO;
    if (in >= 0)
        close(in);
    if (rc != 0)
        return tdm__error(err, rc, "simulation: cannot copy %s to %s: %s", from, to,
                          strerror(errno));
    return 0;
}

static int engine_open(const sim_ctx *c, const char *path, tdm_engine **e, tdm_error *err)
{
    tdm_engine_opts eo;
    tdm_engine_opts_init(&eo);
    eo.db_path = path;
    /* Audit-sample draws, the same for every strategy; 0 would seed from the clock. */
    eo.seed = c->o->seed * 0x9E3779B97F4A7C15ULL + 1;
    if (eo.seed == 0)
        eo.seed = 1;
    return tdm_engine_open(&eo, e, err);
}

/* The template store: the process applied and, with history, trained. */
static int make_base(sim_ctx *c, tdm_error *err)
{
    tdm_engine *e = NULL;
    int rc = engine_open(c, c->base, &e, err);
    char *json = NULL;
    const char *name = tdm_process_name(c->p);
    if (rc == 0)
        rc = tdm_engine_put_process(e, name, c->o->process_yaml, c->o->process_len, ACTOR_INTAKE,
                                    &json, err);
    tdm_free(json);
    json = NULL;
    if (rc == 0 && c->o->history > 0) {
        char *csv = NULL;
        size_t len = 0;
        rc = history_csv(c->o->data, c->o->history, &csv, &len);
        if (rc != 0)
            tdm__error_code(err, rc);
        else
            rc = tdm_engine_train(e, name, csv, len, TDM_FORMAT_CSV, ACTOR_INTAKE, &json, err);
        free(csv);
        tdm_free(json);
    }
    tdm_engine_close(e);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* One strategy                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct sim_run {
    const sim_ctx *c;
    size_t index;
    size_t *paused_at;  /* per step: the replay place after which it was found paused, or 0 */
    json_t *steps;      /* each step's state at the end */
    json_t *thresholds; /* at each block's end, each step's threshold (null: none) */
    json_t *result;
    int rc;
    tdm_error err;
} sim_run;

static int noop_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    (void)tx;
    (void)job;
    (void)err;
    return 0;
}

/* Waits until the writer has run every job queued so far, with their effects (a threshold
 * recomputation an answer made due, say). */
static int sync_writer(tdm_engine *e, tdm_error *err)
{
    tdm__job job = {0};
    job.run = noop_run;
    return tdm__writer_run(e->writer, &job, err);
}

/* Parses the JSON answer of an engine call that returned `rc` (and frees the text). */
static int parsed(int rc, char *json, json_t **out, tdm_error *err)
{
    *out = NULL;
    if (rc == 0) {
        *out = json_loads(json, 0, NULL);
        if (*out == NULL)
            rc = tdm__error(err, TDM_ECORRUPT, "simulation: the engine answered what is not JSON");
    }
    tdm_free(json);
    return rc;
}

/* What happened to one replayed item. */
typedef struct outcome {
    int human;      /* a person answered one of its steps */
    size_t answers; /* answers given, confirmations included */
} outcome;

/* The answer of the n-th further person (n >= 1) who looks at item k at step s: the true
 * label, or with probability reviewer_error another label drawn uniformly. Drawn from a
 * generator of its own for (seed, k, s, n), so every strategy meets the same people. */
static uint32_t look_again(const sim_ctx *c, size_t k, size_t s, unsigned n)
{
    const sim_step *ss = &c->steps[s];
    tdm__rng rng;
    tdm__rng_seed(&rng, c->o->seed ^ (0x9e3779b97f4a7c15ull * (k + 1)) ^ ((uint64_t)(s + 1) << 48) ^
                            ((uint64_t)n << 32));
    uint32_t truth = c->truth[k * c->n_steps + s];
    if (tdm__rng_double(&rng) < c->o->reviewer_error && ss->n_labels > 1) {
        uint32_t other = (uint32_t)tdm__rng_below(&rng, ss->n_labels - 1);
        return other >= truth ? other + 1 : other;
    }
    return truth;
}

/* One call of the engine's complete on `task_id` with `body`; *got is its answer. */
static int complete(tdm_engine *e, const char *task_id, const char *actor, json_t *body,
                    json_t **got, tdm_error *err)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    char *json = NULL;
    int rc = tdm_engine_complete_task(e, task_id, actor, text, strlen(text), &json, err);
    free(text);
    return parsed(rc, json, got, err);
}

#define SIM_LOOKS_MAX 16 /* people who may look at one task before the simulation gives up */

/*
 * A task worked as people would: a reviewer claims it and answers `said` (accept when it is
 * the proposal, else correct). When the engine asks a second person to confirm (four eyes, or
 * a second look at a contradiction), another simulated reviewer judges on their own: they
 * confirm when their own answer is the same, else decline, and the task is answered again
 * by yet another. Every answer, confirmation and decline is counted. Fills *decided with the
 * label decided and *got with the engine's last answer.
 */
static int answer_task(const sim_ctx *c, tdm_engine *e, const char *task_id, const char *proposal,
                       size_t k, size_t s, uint32_t said, uint32_t *decided, json_t **got,
                       outcome *out, tdm_error *err)
{
    unsigned looks = 0;
    *got = NULL;
    for (;;) {
        char *json = NULL;
        json_t *claimed;
        int rc = tdm_engine_claim_task(e, task_id, ACTOR_REVIEWER, 3600, &json, err);
        rc = parsed(rc, json, &claimed, err);
        json_decref(claimed);
        if (rc != 0)
            return rc;
        const char *label = c->steps[s].label[said];
        json_t *body = proposal != NULL && strcmp(proposal, label) == 0
                           ? json_pack("{s:s}", "action", "accept")
                           : json_pack("{s:s, s:s}", "action", "correct", "value", label);
        if ((rc = complete(e, task_id, ACTOR_REVIEWER, body, got, err)) != 0)
            return rc;
        out->human = 1;
        out->answers++;
        if (!json_is_true(json_object_get(*got, "awaiting_confirmation"))) {
            *decided = said;
            return 0;
        }
        if (++looks > SIM_LOOKS_MAX)
            return tdm__error(err, TDM_ECORRUPT,
                              "simulation: task %s was answered %d times without a "
                              "confirmation (reviewer error too high?)",
                              task_id, SIM_LOOKS_MAX);
        /* A waiting answer is confirmed or declined without a claim. */
        uint32_t second = look_again(c, k, s, 2 * looks - 1);
        int agree = second == said;
        json_decref(*got);
        *got = NULL;
        rc = complete(e, task_id, ACTOR_CONFIRMER,
                      json_pack("{s:s}", "action", agree ? "confirm" : "decline"), got, err);
        if (rc != 0)
            return rc;
        out->answers++;
        if (agree) {
            *decided = said;
            return 0;
        }
        json_decref(*got);
        *got = NULL;
        said = look_again(c, k, s, 2 * looks); /* declined: the task is open again */
    }
}

/*
 * Answers the item's tasks until it is decided: `status` is the engine's result for the
 * item (borrowed). Fills `final` (per step: the label index decided, or UINT32_MAX).
 */
static int work_item(const sim_ctx *c, tdm_engine *e, size_t k, json_t *status, uint32_t *final,
                     outcome *out, tdm_error *err)
{
    json_t *owned = NULL;
    int rc = 0;
    for (size_t guard = 0; rc == 0 && guard <= 2 * c->n_steps; guard++) {
        const char *state = json_string_value(json_object_get(status, "status"));
        const char *step_id = json_string_value(json_object_get(status, "step"));
        size_t s = 0;
        if (step_id != NULL && tdm_process_step_index(c->p, step_id, &s) != 0)
            step_id = NULL;
        if (state != NULL && strcmp(state, "decided") == 0) {
            json_t *value = json_object_get(json_object_get(status, "decision"), "value");
            if (step_id != NULL && json_is_string(value))
                final[s] = label_index(&c->steps[s], json_string_value(value));
            break;
        }
        if (state == NULL || strcmp(state, "queued") != 0 || step_id == NULL) {
            rc =
                tdm__error(err, TDM_ECORRUPT, "simulation: unexpected item status from the engine");
            break;
        }
        const char *task = json_string_value(json_object_get(status, "task_id"));
        const char *proposal =
            json_string_value(json_object_get(json_object_get(status, "proposal"), "value"));
        uint32_t said = c->answer[k * c->n_steps + s];
        char task_id[64];
        snprintf(task_id, sizeof task_id, "%s", task ? task : "");
        json_t *got = NULL;
        rc = answer_task(c, e, task_id, proposal, k, s, said, &final[s], &got, out, err);
        if (rc != 0) {
            json_decref(got);
            break;
        }
        json_decref(owned);
        owned = got;
        status = json_object_get(got, "item");
        /* Learning and a recomputation it made due finish before the next routing. */
        rc = sync_writer(e, err);
        if (json_is_null(status) || status == NULL)
            break;
    }
    json_decref(owned);
    return rc;
}

/* For processes of several steps: every step's final decision, from the item's record. */
static int read_decisions(const sim_ctx *c, tdm_engine *e, const char *item_id, uint32_t *final,
                          tdm_error *err)
{
    char *json = NULL;
    json_t *item;
    int rc = tdm_engine_get_item(e, item_id, &json, err);
    rc = parsed(rc, json, &item, err);
    if (rc != 0)
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(item, "decisions"), i, d)
    {
        const char *step = json_string_value(json_object_get(d, "step"));
        json_t *value = json_object_get(d, "value");
        size_t s;
        if (step != NULL && json_is_string(value) && tdm_process_step_index(c->p, step, &s) == 0)
            final[s] = label_index(&c->steps[s], json_string_value(value));
    }
    json_decref(item);
    return 0;
}

/* After item k (0-based): notes the steps the drift check paused and, at a block's end,
 * every step's threshold. */
static void watch_steps(sim_run *run, tdm_engine *e, size_t k)
{
    const sim_ctx *c = run->c;
    proc_state *ps;
    if (tdm__proc_get(e, tdm_process_name(c->p), &ps, NULL) != 0)
        return;
    int block_end = (k + 1) % TDM_SIM_BLOCK == 0 || k + 1 == c->n;
    json_t *at = block_end ? json_array() : NULL;
    for (size_t s = 0; s < c->n_steps && s < ps->n_steps; s++) {
        step_model *sm = ps->steps[s];
        pthread_rwlock_rdlock(&sm->lock);
        if (run->paused_at[s] == 0 && sm->paused)
            run->paused_at[s] = k + 1;
        if (at != NULL)
            json_array_append_new(at, sm->found ? json_real(sm->threshold) : json_null());
        pthread_rwlock_unlock(&sm->lock);
    }
    tdm__proc_put(e, ps);
    if (at != NULL)
        json_array_append_new(run->thresholds, at);
}

/* Each step's threshold and pause at the end, from the engine's process summary. */
static json_t *final_steps(sim_run *run, tdm_engine *e)
{
    char *json = NULL;
    json_t *summary;
    int rc = tdm_engine_get_process(e, tdm_process_name(run->c->p), &json, NULL);
    if (parsed(rc, json, &summary, NULL) != 0)
        return NULL;
    json_t *steps = json_array();
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(summary, "steps"), i, st)
    {
        json_t *state = st; /* the summary puts each step's state beside its spec */
        const char *reason = json_string_value(json_object_get(state, "pause_reason"));
        json_array_append_new(
            steps,
            json_pack("{s:O, s:O, s:O, s:o, s:o}", "step", json_object_get(st, "id"), "threshold",
                      json_object_get(state, "threshold"), "paused",
                      json_object_get(state, "paused"), "pause_reason",
                      reason && reason[0] ? json_string(reason) : json_null(), "paused_at_item",
                      i < run->c->n_steps && run->paused_at[i] > 0
                          ? json_integer((json_int_t)run->paused_at[i])
                          : json_null()));
    }
    json_decref(summary);
    return steps;
}

static json_t *share_or_null(size_t part, size_t whole)
{
    return whole > 0 ? json_real((double)part / (double)whole) : json_null();
}

static int replay(sim_run *run, tdm_engine *e, unsigned char *alone, unsigned char *wrong,
                  size_t *answers)
{
    const sim_ctx *c = run->c;
    const tdm_sim_strategy *st = &c->o->strategies[run->index];
    const char *process = tdm_process_name(c->p);
    size_t batch = st->kind == TDM_SIM_ALL_HUMAN ? BATCH_ALL_HUMAN : 1;
    uint32_t *final = malloc((c->n_steps ? c->n_steps : 1) * sizeof *final);
    if (final == NULL)
        return tdm__error_code(&run->err, TDM_ENOMEM);
    int rc = 0;
    for (size_t first = 0; rc == 0 && first < c->n; first += batch) {
        size_t last = first + batch < c->n ? first + batch : c->n;
        char *body = NULL, *json = NULL;
        size_t body_len = 0, json_len = 0;
        FILE *m = open_memstream(&body, &body_len);
        if (m == NULL) {
            rc = tdm__error_code(&run->err, TDM_ENOMEM);
            break;
        }
        for (size_t k = first; k < last; k++) {
            fputs(c->item[k], m);
            fputc('\n', m);
        }
        if (fclose(m) != 0) {
            free(body);
            rc = tdm__error_code(&run->err, TDM_ENOMEM);
            break;
        }
        rc = tdm_engine_submit(e, process, body, body_len, 1, ACTOR_INTAKE, &json, &json_len,
                               &run->err);
        free(body);
        const char *line = json;
        for (size_t k = first; rc == 0 && k < last; k++) {
            const char *nl = line ? strchr(line, '\n') : NULL;
            json_t *status =
                line ? json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL) : NULL;
            if (status == NULL) {
                rc = tdm__error(&run->err, TDM_ECORRUPT,
                                "simulation: the engine's answer has no result for an item");
                break;
            }
            line = nl ? nl + 1 : NULL;
            for (size_t s = 0; s < c->n_steps; s++)
                final[s] = UINT32_MAX;
            outcome oc = {0};
            rc = work_item(c, e, k, status, final, &oc, &run->err);
            if (rc == 0 && c->n_steps > 1)
                rc = read_decisions(c, e, json_string_value(json_object_get(status, "id")), final,
                                    &run->err);
            json_decref(status);
            watch_steps(run, e, k);
            alone[k] = (unsigned char)!oc.human;
            for (size_t s = 0; s < c->n_steps; s++)
                wrong[k] |= final[s] != c->truth[k * c->n_steps + s];
            *answers += oc.answers;
        }
        tdm_free(json);
    }
    free(final);
    return rc;
}

static json_t *strategy_name(const tdm_sim_strategy *st)
{
    if (st->name != NULL)
        return json_string(st->name);
    if (st->kind == TDM_SIM_ALL_HUMAN)
        return json_string("all-human");
    if (st->kind == TDM_SIM_GUARANTEED)
        return json_string("guaranteed");
    char buf[64];
    snprintf(buf, sizeof buf, "fixed:%g", st->threshold);
    return json_string(buf);
}

/* The strategy's numbers (simulate.h defines each). */
static json_t *report(const sim_ctx *c, const tdm_sim_strategy *st, const unsigned char *alone,
                      const unsigned char *wrong, size_t answers, json_t *thresholds)
{
    size_t n_alone = 0, alone_wrong = 0, n_wrong = 0, first = 0;
    json_t *blocks = json_array();
    size_t b_alone = 0, b_wrong = 0;
    for (size_t k = 0; k < c->n; k++) {
        n_wrong += wrong[k];
        if (alone[k]) {
            n_alone++;
            alone_wrong += wrong[k];
            b_alone++;
            b_wrong += wrong[k];
            if (first == 0)
                first = k + 1;
        }
        if ((k + 1) % TDM_SIM_BLOCK == 0 || k + 1 == c->n) {
            size_t size = k % TDM_SIM_BLOCK + 1;
            json_t *at = json_array_get(thresholds, json_array_size(blocks));
            json_array_append_new(blocks,
                                  json_pack("{s:I, s:o, s:o, s:O}", "end", (json_int_t)(k + 1),
                                            "ai_share", share_or_null(b_alone, size), "ai_error",
                                            share_or_null(b_wrong, b_alone), "thresholds",
                                            at ? at : json_null()));
            b_alone = b_wrong = 0;
        }
    }
    /* Where the replay ends up: the last TDM_SIM_TAIL items. */
    size_t from = c->n > TDM_SIM_TAIL ? c->n - TDM_SIM_TAIL : 0, t_alone = 0, t_wrong = 0;
    for (size_t k = from; k < c->n; k++) {
        t_alone += alone[k];
        t_wrong += alone[k] && wrong[k];
    }
    json_t *tail =
        json_pack("{s:I, s:o, s:o}", "items", (json_int_t)(c->n - from), "ai_share",
                  share_or_null(t_alone, c->n - from), "ai_error", share_or_null(t_wrong, t_alone));
    double minutes = (double)answers * c->minutes;
    double baseline = tdm_process_baseline_minutes(c->p);
    return json_pack("{s:o, s:I, s:o, s:o, s:o, s:f, s:f, s:o, s:o, s:o, s:I, s:I, s:I, s:I}",
                     "name", strategy_name(st), "items", (json_int_t)c->n, "ai_share",
                     share_or_null(n_alone, c->n), "ai_error", share_or_null(alone_wrong, n_alone),
                     "final_error", share_or_null(n_wrong, c->n), "reviewer_minutes", minutes,
                     "hours_saved", ((double)c->n * baseline - minutes) / 60.0, "first_ai_item",
                     first > 0 ? json_integer((json_int_t)first) : json_null(), "blocks", blocks,
                     "tail", tail, "ai_decisions", (json_int_t)n_alone, "ai_wrong",
                     (json_int_t)alone_wrong, "final_wrong", (json_int_t)n_wrong, "answers",
                     (json_int_t)answers);
}

static void *run_strategy(void *arg)
{
    sim_run *run = arg;
    const sim_ctx *c = run->c;
    const tdm_sim_strategy *st = &c->o->strategies[run->index];
    char name[32];
    snprintf(name, sizeof name, "s%zu.db", run->index);
    char *path = path_join(c->dir, name);
    unsigned char *alone = calloc(c->n ? c->n : 1, 1), *wrong = calloc(c->n ? c->n : 1, 1);
    run->paused_at = calloc(c->n_steps ? c->n_steps : 1, sizeof *run->paused_at);
    run->thresholds = json_array();
    tdm_engine *e = NULL;
    size_t answers = 0;
    run->rc = path && alone && wrong && run->paused_at && run->thresholds
                  ? 0
                  : tdm__error_code(&run->err, TDM_ENOMEM);
    if (run->rc == 0)
        run->rc = store_copy(c->base, path, &run->err);
    if (run->rc == 0)
        run->rc = engine_open(c, path, &e, &run->err);
    if (run->rc == 0) {
        /* Before any item: route.c reads it without a lock. */
        e->route_mode = st->kind == TDM_SIM_ALL_HUMAN ? TDM__ROUTE_ALL_HUMAN
                        : st->kind == TDM_SIM_FIXED   ? TDM__ROUTE_FIXED
                                                      : TDM__ROUTE_GUARANTEED;
        e->route_fixed = st->threshold;
        e->refit_inline = 1;
        run->rc = replay(run, e, alone, wrong, &answers);
        if (run->rc == 0 && (run->steps = final_steps(run, e)) == NULL)
            run->rc = tdm__error(&run->err, TDM_ENOMEM, "simulation: cannot read the steps");
    }
    tdm_engine_close(e);
    if (path != NULL)
        store_remove(path);
    if (run->rc == 0) {
        run->result = report(c, st, alone, wrong, answers, run->thresholds);
        if (run->result == NULL)
            run->rc = tdm__error_code(&run->err, TDM_ENOMEM);
        else
            json_object_set(run->result, "steps", run->steps);
    }
    json_decref(run->steps);
    run->steps = NULL;
    json_decref(run->thresholds);
    run->thresholds = NULL;
    free(run->paused_at);
    run->paused_at = NULL;
    free(path);
    free(alone);
    free(wrong);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The simulation                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* The strategies left to replay, taken in order by `width` workers. */
typedef struct pool {
    pthread_mutex_t lock;
    sim_run *runs;
    size_t n, next;
} pool;

static void *pool_worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        size_t i = p->next < p->n ? p->next++ : p->n;
        pthread_mutex_unlock(&p->lock);
        if (i == p->n)
            return NULL;
        run_strategy(&p->runs[i]);
    }
}

static int check_opts(const tdm_sim_opts *o, tdm_error *err)
{
    if (o->process_yaml == NULL || o->data == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_simulate: a process and data are needed");
    size_t rows = tdm_table_row_count(o->data);
    if (o->history >= rows)
        return tdm__error_field(err, TDM_EINVAL, "history",
                                "history of %zu rows leaves nothing to replay: %s has %zu rows "
                                "(give a history under %zu)",
                                o->history, tdm_table_name(o->data), rows, rows);
    if (!(o->reviewer_error >= 0 && o->reviewer_error < 1))
        return tdm__error_field(err, TDM_EINVAL, "reviewer_error",
                                "the reviewers' error rate must be at least 0 and below 1");
    if (!(o->reviewer_minutes < 0 || (o->reviewer_minutes >= 0 && isfinite(o->reviewer_minutes))))
        return tdm__error_field(err, TDM_EINVAL, "reviewer_minutes",
                                "minutes per task must be a number of at least 0");
    if (o->n_strategies == 0 || o->n_strategies > TDM_SIM_MAX_STRATEGIES || o->strategies == NULL)
        return tdm__error_field(err, TDM_EINVAL, "strategies", "give 1 to %d strategies",
                                TDM_SIM_MAX_STRATEGIES);
    for (size_t i = 0; i < o->n_strategies; i++) {
        const tdm_sim_strategy *s = &o->strategies[i];
        if (s->kind != TDM_SIM_ALL_HUMAN && s->kind != TDM_SIM_FIXED &&
            s->kind != TDM_SIM_GUARANTEED)
            return tdm__error_field(err, TDM_EINVAL, "strategies",
                                    "strategy %zu: unknown kind (all-human, fixed:T or "
                                    "guaranteed)",
                                    i + 1);
        if (s->kind == TDM_SIM_FIXED && !(s->threshold > 0 && s->threshold <= 1))
            return tdm__error_field(err, TDM_EINVAL, "strategies",
                                    "strategy %zu: a fixed threshold must be above 0 and at "
                                    "most 1",
                                    i + 1);
    }
    return 0;
}

static void ctx_release(sim_ctx *c)
{
    if (c->base != NULL)
        store_remove(c->base);
    if (c->dir != NULL)
        rmdir(c->dir);
    for (size_t s = 0; c->steps != NULL && s < c->n_steps; s++) {
        const tdm_step_info *info = tdm_process_step(c->p, s);
        if (info->n_labels == 0)
            free(c->steps[s].label);
    }
    free(c->steps);
    for (size_t k = 0; c->item != NULL && k < c->n; k++)
        free(c->item[k]);
    free(c->item);
    free(c->row);
    free(c->answer);
    free(c->truth);
    free(c->base);
    free(c->dir);
    tdm_process_free(c->p);
}

static int make_dir(sim_ctx *c, tdm_error *err)
{
    /* Memory first: fsync on tmpfs costs nothing, and these stores die with the run. */
    const char *root = c->o->work_dir;
    if (root == NULL || root[0] == '\0')
        root = getenv("TMPDIR");
    if ((root == NULL || root[0] == '\0') && access("/dev/shm", W_OK | X_OK) == 0)
        root = "/dev/shm";
    if (root == NULL || root[0] == '\0')
        root = "/tmp";
    char *dir = path_join(root, "tandem-sim-XXXXXX");
    if (dir == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    if (mkdtemp(dir) == NULL) {
        int e = errno;
        free(dir);
        return tdm__error(err, TDM_EIO, "simulation: cannot make a directory in %s: %s", root,
                          strerror(e));
    }
    c->dir = dir;
    c->base = path_join(dir, "base.db");
    return c->base ? 0 : tdm__error_code(err, TDM_ENOMEM);
}

int tdm_simulate(const tdm_sim_opts *o, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (o == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_simulate: missing argument");
    *json = NULL;
    int rc = check_opts(o, err);
    if (rc != 0)
        return rc;
    sim_ctx c = {0};
    c.o = o;
    rc = tdm_process_parse(o->process_yaml, o->process_len,
                           o->process_file ? o->process_file : "process file", &c.p, err);
    if (rc == 0) {
        double base = tdm_process_baseline_minutes(c.p);
        c.minutes = o->reviewer_minutes >= 0 ? o->reviewer_minutes : base;
        rc = prepare_steps(&c, err);
    }
    if (rc == 0)
        rc = prepare_replay(&c, err);
    if (rc == 0)
        rc = make_dir(&c, err);
    if (rc == 0)
        rc = make_base(&c, err);

    size_t n = o->n_strategies;
    sim_run runs[TDM_SIM_MAX_STRATEGIES];
    memset(runs, 0, sizeof runs);
    if (rc == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        size_t width = o->threads > 0 ? o->threads : cores > 0 ? (size_t)cores : 1;
        width = width < n ? width : n;
        for (size_t i = 0; i < n; i++)
            runs[i] = (sim_run){&c, i, NULL, NULL, NULL, NULL, 0, {0}};
        pool p = {PTHREAD_MUTEX_INITIALIZER, runs, n, 0};
        pthread_t th[TDM_SIM_MAX_STRATEGIES];
        size_t started = 0;
        while (width > 1 && started < width &&
               pthread_create(&th[started], NULL, pool_worker, &p) == 0)
            started++;
        pool_worker(&p); /* this thread works too; with one worker, it works alone */
        for (size_t i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (runs[i].rc != 0) {
                rc = runs[i].rc;
                if (err != NULL)
                    *err = runs[i].err;
            }
    }
    json_t *strategies = json_array();
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            json_array_append(strategies, runs[i].result);
        json_decref(runs[i].result);
    }
    json_t *answer = NULL;
    if (rc == 0)
        answer = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o}", "process",
                           tdm_process_name(c.p), "rows", (json_int_t)tdm_table_row_count(o->data),
                           "history", (json_int_t)o->history, "items", (json_int_t)c.n, "seed",
                           (json_int_t)o->seed, "reviewer_error", o->reviewer_error,
                           "reviewer_minutes", c.minutes, "baseline_minutes",
                           tdm_process_baseline_minutes(c.p), "strategies", strategies);
    else
        json_decref(strategies);
    ctx_release(&c);
    if (rc != 0)
        return rc;
    return tdm__answer(answer, json, NULL, err);
}
