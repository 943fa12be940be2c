/*
 * engine_int.h — the inside of a tdm_engine, shared by the files of src/core/.
 *
 * NOTES ON THE DESIGN OF THE ENGINE
 *
 * Threads. Requests arrive on many threads (the HTTP server's pool, or the CLI's one). They
 * do their CPU work (parsing, predicting, routing) on their own thread, then hand the
 * database work to the writer as a job and wait for it: the writer (writer.c) runs every job
 * that has queued up in one transaction, each inside its own savepoint, and commits once
 * (one fsync for all). A job whose work fails is rolled back to its savepoint alone.
 * Effects outside the database (a model learning from an answer, a new threshold) are applied
 * by the job's `after` hook, on the writer thread, only once the commit is durable, so memory
 * never runs ahead of the store.
 *
 * Processes. The registry holds one proc_state per process, reference-counted: a request
 * takes a reference and works with that version even if the process is replaced meanwhile.
 * A step's model lives in a step_model, also reference-counted, so that a replaced process
 * whose step did not change hands its trained model to the new version.
 *
 * Models. A step_model's lock is a read-write lock: predictions read, learning writes.
 * Models load lazily: the first request that needs one reads the latest snapshot from the
 * store and replays the online updates logged after it (model_updates), which reproduces the
 * model exactly because an update is deterministic.
 *
 * Locks, in the order they may be taken: engine->lock (registry, RNG), then a step_model's
 * lock. The writer's queue lock is never held while taking either.
 */
#ifndef TDM_CORE_ENGINE_INT_H
#define TDM_CORE_ENGINE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#include "audit/audit.h"
#include "store/db.h"
#include "tandem/engine.h"
#include "tandem/process.h"
#include "util/util.h"

/* A change to a step's in-memory state deferred while its model is serialized: run(e, sm, arg)
 * under sm->lock (write), which returns what to queue for the learning thread after it
 * (learning.c); drop(arg) afterwards. */
struct step_model;
typedef struct tdm__deferred {
    struct tdm__deferred *next;
    int (*run)(tdm_engine *e, struct step_model *sm, void *arg);
    void (*drop)(void *arg);
    void *arg;
} tdm__deferred;

/* Online updates between two model snapshots in the store. */
#define TDM__SNAPSHOT_EVERY 1000

/* New human-checked decisions for a step before its threshold is recomputed. */
#define TDM__RECOMPUTE_EVERY 25

/* The AI's next most likely values kept on a task beside its proposal. */
#define TDM__ALTERNATIVES 4

typedef struct step_model {
    int refs; /* under engine->lock */
    pthread_rwlock_t lock;
    char *process, *step;
    /* Under `lock`: */
    int loaded;        /* tried the store */
    tdm_model *model;  /* NULL until trained */
    uint64_t version;  /* the model version in memory (0: none) */
    uint64_t since;    /* versions below this belong to an earlier spec of the step */
    uint64_t snapshot; /* the newest version with a snapshot in the store */
    int snapshotting;  /* a periodic snapshot is being written (engine.c), none other starts */
    int found;         /* a certified threshold exists */
    double threshold;  /* autonomous when confidence >= threshold */
    int paused;        /* automation pulled back */
    char pause_reason[256];
    uint64_t fit_version;  /* the version of the last batch fit (train or refit); or since - 1 */
    uint64_t fit_examples; /* how many examples that fit learned from */
    uint64_t tried_version, tried_examples; /* the last refit not adopted (or failed): the
                                               version it read up to, the rows it had */
    int refit_queued;                       /* a refit of this step is waiting or running */
    /* Under `defer_lock`, which is taken before `lock` when both are. A periodic snapshot
     * serializes the model under a read lock for tens of milliseconds; meanwhile the writer's
     * changes to the step (an answer learned, a new threshold, a pause, a fit) wait in
     * `deferred`, in order, and the snapshot applies them when it lets go, so the writer never
     * waits for it (tdm__step_change). checks_since too is under defer_lock. */
    pthread_mutex_t defer_lock;
    int serializing;
    struct tdm__deferred *deferred, **deferred_tail;
    uint64_t checks_since; /* human checks since the threshold was computed */
} step_model;

typedef struct proc_state {
    int refs; /* under engine->lock */
    tdm_process *p;
    char *yaml;
    int64_t version;
    size_t n_steps;
    step_model **steps;
} proc_state;

typedef struct tdm__writer tdm__writer;

/* How routing lets the AI decide alone (src/policy/route.c). Only a simulation changes it
 * (src/core/simulate.c), to compare other policies on the same engine code. */
typedef enum tdm__route_mode {
    TDM__ROUTE_GUARANTEED = 0, /* as the process says: certified threshold, audit samples */
    TDM__ROUTE_ALL_HUMAN = 1,  /* every item to a person (the model still learns) */
    TDM__ROUTE_FIXED = 2,      /* alone at confidence >= route_fixed: no certificate, no audit */
} tdm__route_mode;

struct tdm_engine {
    char *db_path;
    int read_only;
    tdm__db_pool readers;
    pthread_mutex_t lock;
    proc_state **procs;
    size_t n_procs, cap_procs;
    tdm__rng rng;
    tdm__writer *writer;
    tdm__route_mode route_mode; /* set before the first item, never changed after */
    double route_fixed;
    struct tdm__webhooks *webhooks;  /* subscriptions and the delivery thread (webhooks.c) */
    struct tdm__token_cache *tokens; /* principals of recent tokens (tokens.c); may be NULL */
    struct tdm__learning *learning;  /* refits and periodic snapshots waiting, and the thread
                                        that does them (learning.c) */
    size_t snapshot_chunk; /* bytes a writer round of a periodic snapshot (engine.c); 0: 1 MiB */
    int refit_inline;      /* run refits (and periodic snapshots, without pauses) in the call
                              whose answer made them due, not on the learning thread: a
                              simulation sets it, before the first item, to be deterministic */
};

/* ---- token cache (tokens.c) ---------------------------------------------------------------- */

/* Sets up e->tokens: the cache of principals and its revocation counter, shared with every
 * process that opens the same database through the file PATH-tokens. Where that file cannot
 * be made or mapped, e->tokens stays NULL and every request reads the database. Returns 0
 * or TDM_ENOMEM. */
int tdm__token_cache_open(tdm_engine *e);
void tdm__token_cache_close(tdm_engine *e);

/* Limits on one item (intake.c): fields, bytes in a field's name, bytes in its value (a
 * string's length, or a list's or object's compact JSON). Over them: TDM_ETOOBIG (413). */
#define TDM__ITEM_MAX_FIELDS 256
#define TDM__ITEM_MAX_NAME   200
#define TDM__ITEM_MAX_VALUE  (256 * 1024)

/* ---- the learning thread (learning.c) ---------------------------------------------------- */

/* Sets up e->learning (the thread starts at the first refit or periodic snapshot due).
 * Returns 0 or TDM_ENOMEM. */
int tdm__learning_open(tdm_engine *e);
/* Stops the learning thread (a refit under way stops at its next pass, a snapshot before its
 * next round) and drops what still waits. */
void tdm__learning_close(tdm_engine *e);
/* With e->refit_inline, runs the refits and snapshots that came due in this thread (the
 * snapshots without pauses); otherwise nothing. Called by the public calls that teach a
 * model, after their commit. */
void tdm__learning_inline(tdm_engine *e);

/* Writes sm's model as its periodic snapshot (engine.c): serialized under sm's read lock,
 * then a chunk a writer round, each round after a pause when `paced`, until stop(stop_arg)
 * says the engine closes; then the step's older periodic snapshots are removed, a chunk a
 * round. Clears sm->snapshotting at the end, whatever happened (a snapshot not written costs
 * only a longer replay). */
void tdm__snapshot_periodic(tdm_engine *e, step_model *sm, int paced, int (*stop)(void *),
                            void *stop_arg);
/* Writes buf's len bytes into model_chunks under `key`, a chunk a writer round (after a pause
 * between two when `paced`, until stop(stop_arg)), and sets *n to the chunks written: how a
 * refit's model is stored before the round that adopts it (learning.c). Returns 0, TDM_EBUSY
 * when stopped, or the error of the round that failed. */
int tdm__chunks_write(tdm_engine *e, step_model *sm, int64_t key, const unsigned char *buf,
                      size_t len, int paced, int (*stop)(void *), void *stop_arg, int64_t *n);
/* Removes the chunks stored under `key`, one a writer round (they were never adopted). */
void tdm__chunks_discard(tdm_engine *e, step_model *sm, int64_t key, int paced, int (*stop)(void *),
                         void *stop_arg);

/* ---- writer (writer.c) -------------------------------------------------------------------- */

typedef struct tdm__job tdm__job;

struct tdm__tx;

/* Something to do once the transaction is durable (or to undo if it is not). */
typedef struct tdm__effect {
    void (*apply)(struct tdm__tx *tx, void *arg); /* after the commit, writer thread */
    void (*drop)(void *arg);                      /* frees arg (after apply, or instead) */
    void *arg;
    struct tdm__effect *next;
} tdm__effect;

/* What a job's hooks get: the writer's connection, statements and audit tail. */
typedef struct tdm__tx {
    tdm_engine *e;
    sqlite3 *db;
    tdm__stmt_cache *stmts;
    tdm__audit_tail *audit;
    int64_t now;          /* the batch's time, in ms */
    tdm__effect *effects; /* the running job's effects, in order */
} tdm__tx;

/* Arranges for apply(tx, arg) to run after the commit; if the job or the commit fails,
 * only drop(arg) runs. Returns 0 or TDM_ENOMEM (then drop(arg) has run). */
int tdm__tx_effect(tdm__tx *tx, void (*apply)(tdm__tx *tx, void *arg), void (*drop)(void *arg),
                   void *arg);

/* Appends an audit entry in the running transaction (data is stolen). */
int tdm__tx_audit(tdm__tx *tx, const char *actor, const char *event, const char *subject,
                  json_t *data, tdm_error *err);

/* The same with data already compact JSON text (NULL means {}; see tdm__audit_data). */
int tdm__tx_audit_text(tdm__tx *tx, const char *actor, const char *event, const char *subject,
                       const char *data, tdm_error *err);

struct tdm__job {
    /* Does the job's database work inside the transaction, registering effects with
     * tdm__tx_effect(). Returns 0 or an error (err set). */
    int (*run)(tdm__tx *tx, tdm__job *job, tdm_error *err);
    void *ctx;
    /* Filled by the writer: */
    int rc;
    tdm_error err;
    int done;
    int deferred;              /* nobody waits: the writer frees the job (and ctx with free()) */
    pthread_cond_t *wake;      /* signalled when done (the waiter's own), or NULL */
    void (*notify)(void *arg); /* or called when done, outside the writer's lock */
    void *notify_arg;
    tdm__effect *effects; /* registered while running */
    tdm__job *next;
};

int tdm__writer_start(tdm_engine *e, unsigned window_us, tdm__writer **out, tdm_error *err);
void tdm__writer_stop(tdm__writer *w);

/* Runs `job` in the next commit and waits for it. Returns job->rc (err filled from it). */
int tdm__writer_run(tdm__writer *w, tdm__job *job, tdm_error *err);

/* Queues `job` (which must live until notify has run) without waiting: notify(arg) is called
 * on the writer thread once the job's commit is durable or failed (job->rc says which). */
void tdm__writer_enqueue(tdm__writer *w, tdm__job *job, void (*notify)(void *arg), void *arg);

/* Queues a job (allocated with malloc) to run later without waiting; the writer frees it and
 * its ctx with free(). Used for snapshots and recomputations, from the writer thread too. */
void tdm__writer_defer(tdm__writer *w, tdm__job *job);

/* ---- registry (engine.c) ------------------------------------------------------------------ */

/* Finds a process and takes a reference, or TDM_ENOTFOUND with a message. */
int tdm__proc_get(tdm_engine *e, const char *name, proc_state **out, tdm_error *err);
void tdm__proc_put(tdm_engine *e, proc_state *ps);
/* Every process, each with a reference taken (*n of them); NULL when out of memory. Give
 * them back with tdm__proc_put_all(). */
proc_state **tdm__proc_all(tdm_engine *e, size_t *n);
/* Drops a reference to a step's model taken under engine->lock (sm->refs++). */
void tdm__step_model_put(tdm_engine *e, step_model *sm);
void tdm__proc_put_all(tdm_engine *e, proc_state **refs, size_t n);

/* A fresh id: prefix, 12 hex digits of the time in ms, 12 of randomness ("dec_0194f..."). */
void tdm__new_id(const char *prefix, char out[32]);

/* A uniform draw in [0, 1) from the engine's RNG. */
double tdm__draw(tdm_engine *e);

/* Serialises a JSON answer into *out (caller frees); consumes `value`. */
int tdm__answer(json_t *value, char **out, size_t *len, tdm_error *err);

/* ISO 8601 time as a JSON string. */
json_t *tdm__json_time(int64_t ms);

/* Borrows a read connection for the duration of a call. */
int tdm__reader_get(tdm_engine *e, sqlite3 **db, tdm_error *err);
void tdm__reader_put(tdm_engine *e, sqlite3 *db);

/* ---- models (learning.c) ------------------------------------------------------------------ */

/* Makes sure the step's model is in memory (loading it if needed). Takes and releases the
 * model's write lock. */
int tdm__model_ensure(tdm_engine *e, step_model *sm, tdm_error *err);

/* Runs run(e, sm, arg) under sm's write lock (and defer_lock); while a periodic snapshot
 * serializes the model, queues it instead, behind the changes queued before it, so that the
 * caller (the writer's thread) never waits for a serialization and changes keep their order.
 * take(arg) moves arg into a block the queue owns and frees with drop() once it has run; arg
 * stays its owner's either way. When take fails (no memory), the change waits for the lock. */
void tdm__step_change(tdm_engine *e, step_model *sm, int (*run)(tdm_engine *, step_model *, void *),
                      void *(*take)(void *), void (*drop)(void *), void *arg);

/* Around a long read of sm->model under its read lock (a periodic snapshot's serialization,
 * engine.c): from begin to end the writer's changes to the step are deferred, not waited
 * for, and end applies them in order. begin before taking sm->lock, end after letting it go. */
void tdm__serialize_begin(step_model *sm);
void tdm__serialize_end(tdm_engine *e, step_model *sm);

/* Values of the step's inputs taken from an item object (strings, numbers as their text). */
typedef struct item_values {
    tdm_value v[64];
    char num[64][32]; /* text of numeric fields */
    size_t n;
} item_values;

void tdm__item_values(const tdm_step_info *info, json_t *fields, item_values *out);

/*
 * Logs, inside the running transaction, one online update of a step's model (the item's
 * input fields, the label, the weight) as a new model version, and arranges for the
 * in-memory model to learn it once the commit is durable. `fields` is borrowed. *version
 * receives the new model version. `census`: the item reached a person whatever the model's
 * confidence (no threshold in force, paused, a hybrid step), so its answer may check a
 * refit's certificate (learning.c, NOTES ON REFITS); 0 for one a threshold selected.
 */
int tdm__learn_in_tx(tdm__tx *tx, proc_state *ps, size_t step, json_t *fields, const char *label,
                     double weight, const char *why, int census, uint64_t *version, tdm_error *err);

/*
 * Records a human check of a model's proposal for threshold recomputation (inside the
 * transaction): the proposal's confidence, whether it was right, the weight (1 / the audit
 * sample rate for audit samples, 1 otherwise) and the source ("audit", "review").
 */
int tdm__check_in_tx(tdm__tx *tx, const char *process, const char *step, double confidence,
                     int correct, double weight, const char *source, uint64_t model_version,
                     tdm_error *err);

/*
 * Records a human check and arranges, after the commit, to count it and — when
 * TDM__RECOMPUTE_EVERY have come, or at once for a wrong audit sample — to recompute the
 * step's threshold and test the audited error against the budget (pausing automation when
 * it is proven worse). Combines tdm__check_in_tx with the follow-up.
 */
int tdm__check_and_follow(tdm__tx *tx, proc_state *ps, size_t step, double confidence, int correct,
                          double weight, const char *source, uint64_t model_version,
                          tdm_error *err);

/* Loads a step's threshold and pause state from the steps table (reader connection). */
int tdm__step_state_load(tdm_engine *e, step_model *sm, tdm_error *err);

/* ---- records (intake.c) ------------------------------------------------------------------- */

struct tdm__route;

/*
 * Writes a decision and its audit entry in the running transaction. `value` and `proposal`
 * are borrowed JSON values (proposal may be NULL); confidence < 0 means none.
 */
int tdm__write_decision(tdm__tx *tx, const char *id, const char *item_id, int64_t item_version,
                        const char *process, const char *step, json_t *value, double confidence,
                        const char *by, int person, int autonomous, uint64_t model_version,
                        json_t *proposal, double proposal_confidence, const char *task_id,
                        const char *actor, tdm_error *err);

/* Writes a task for a routed item and its audit entry in the running transaction. */
int tdm__write_task(tdm__tx *tx, const char *id, const char *item_id, int64_t item_version,
                    const char *process, const tdm_step_info *info, const struct tdm__route *r,
                    const char *actor, tdm_error *err);

/*
 * Routes an item on from step `from` after a person answered the step before it (inside the
 * transaction): writes the decisions and the task that follow and the item's status.
 * `work` (borrowed) holds the item's fields and the answers so far. *status (when not NULL)
 * receives the item's result, as tdm_engine_submit() reports it.
 */
int tdm__continue_item(tdm__tx *tx, proc_state *ps, const char *item_id, int64_t version,
                       json_t *work, size_t from, const char *actor, json_t **status,
                       tdm_error *err);

/*
 * Parses a submission body as tdm_engine_submit_begin() does — a JSON Lines batch when
 * `jsonl`, else a single object — and calls each(arg, id, given, fields) for every item in
 * order: its id (the client's, or one made up when `given` is 0) and its fields without "id"
 * (borrowed for the call). Nothing is routed or stored. Returns 0, or the error submitting
 * the body would give (err set). For the fuzz target (fuzz/fuzz_intake.c).
 */
int tdm__intake_parse(const char *body, size_t len, int jsonl,
                      void (*each)(void *arg, const char *id, int given, json_t *fields), void *arg,
                      tdm_error *err);

/* "model:PROCESS/STEP@vN" into buf. */
/* The values a person may give for a step: its labels, else its model's (tasks.c). */
json_t *tdm__step_choices(tdm_engine *e, proc_state *ps, size_t step);

/* The name of a process's related-items index and the expression it indexes (engine.c). */
void tdm__related_sql(const char *process, const char *key, char *index_name, size_t name_cap,
                      char *expr, size_t expr_cap);

void tdm__model_by(const char *process, const char *step, uint64_t version, char *buf, size_t cap);

/* ---- the registry (governance.c) ---------------------------------------------------------- */

/*
 * The registry's entry for step `i` of a process, as GET /v1/registry lists it (its counts,
 * audited error and bound, threshold and pause state), read with the caller's connection —
 * inside the caller's read transaction when it has one. *out is yours (json_decref). Also
 * the dashboard's source for its steps (dashboard.c).
 */
int tdm__registry_entry(sqlite3 *db, proc_state *ps, size_t i, json_t **out, tdm_error *err);

/* The registry's "audited" and the wrong ones among them: a step's audit samples since
 * training or the last resume, read with the caller's connection (metrics.c). */
int tdm__audit_numbers(sqlite3 *db, const char *process, const char *step, int64_t *audited,
                       int64_t *errors, tdm_error *err);

/* A number as short as it can be written and still read back exactly ("25", "0.1") into
 * buf (fairness.c; the metrics name segments and write samples with it too). */
void tdm__format_number(double v, char *buf, size_t cap);

/* ---- the dashboard (dashboard.c), shared with the metrics (metrics.c) --------------------- */

/* A queue's tasks of one process now, as the dashboard counts them. */
typedef struct tdm__queue_counts {
    int64_t open;         /* open, or claimed with a lapsed lease */
    int64_t claimed;      /* claimed, lease running */
    int64_t confirming;   /* an answer waiting for four eyes */
    int64_t oldest_open;  /* created_at (ms) of the oldest open task, -1 when none is open */
    int64_t sla_breached; /* not done and past their due time */
} tdm__queue_counts;

int tdm__queue_counts_read(sqlite3 *db, const char *process, const char *queue, int64_t now,
                           tdm__queue_counts *out, tdm_error *err);

/* The ten most frequent (proposed, actual) pairs of answers and feedback made in [from, to),
 * as the dashboard lists them: [{"proposed", "actual", "count"}]. *out is yours. */
int tdm__confusions(sqlite3 *db, const char *process, int64_t from, int64_t to, json_t **out,
                    tdm_error *err);

/* ---- webhooks (webhooks.c) ---------------------------------------------------------------- */

/* Sets up e->webhooks (tdm_engine_open, before the writer starts) and frees it
 * (tdm_engine_close, after the delivery thread and the writer stopped). */
int tdm__webhooks_init(tdm_engine *e, tdm_error *err);
void tdm__webhooks_free(tdm_engine *e);

/* Writer thread: another process wrote to the database, so the subscriptions known in
 * memory may be out of date; they are read again before the next event. */
void tdm__webhooks_forget(tdm_engine *e);

/*
 * Appends an event's audit entry (as tdm__tx_audit; data is stolen) and, when a webhook of
 * `process` subscribes to the event, its deliveries, in the running transaction. The events
 * webhooks carry are task.created, decision.made, task.sla_breached (sla.breached) and
 * automation.paused; any other event is only audited. With no subscription it costs what
 * tdm__tx_audit does.
 */
int tdm__tx_announce(tdm__tx *tx, const char *process, const char *actor, const char *event,
                     const char *subject, json_t *data, tdm_error *err);

/* The same with data already compact JSON text (see tdm__audit_data), for intake's events:
 * the text is parsed only when a webhook wants the event. */
int tdm__tx_announce_text(tdm__tx *tx, const char *process, const char *actor, const char *event,
                          const char *subject, const char *data, tdm_error *err);

/* Room for a webhook-signature value ("v1," and 44 base64 characters, and a NUL). */
#define TDM__WEBHOOK_SIGNATURE_CAP 64

/*
 * The Standard Webhooks signature of a delivery: "v1," and the base64 of HMAC-SHA256 over
 * "{id}.{timestamp}.{body}", keyed with the bytes the secret's base64 (after "whsec_")
 * stands for. Returns 0, or -1 for a secret that does not decode.
 */
int tdm__webhook_sign(const char *secret, const char *id, const char *timestamp, const char *body,
                      size_t len, char out[TDM__WEBHOOK_SIGNATURE_CAP]);

#endif /* TDM_CORE_ENGINE_INT_H */
