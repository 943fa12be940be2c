/*
 * engine.h — the tandem engine: processes, intake, routing with guarantees, human queues,
 * feedback and the audit trail, on an embedded SQLite store.
 *
 * The engine speaks JSON: requests that carry a body take it as text, and every answer is
 * a JSON text the caller owns (free it with tdm_free()). The HTTP server and the command
 * line are thin layers over these calls, so both behave the same. docs/api.md documents
 * every answer's shape.
 *
 * Errors map onto HTTP statuses: TDM_EPARSE 400 (malformed body), TDM_EINVAL 422 (a value
 * that is well-formed but not acceptable; err->field names it), TDM_ENOTFOUND 404,
 * TDM_ECONFLICT 409 (the task or item changed meanwhile), TDM_ETOOBIG 413, TDM_EBUSY 503,
 * anything else 500. A failed call changes nothing that is stored.
 *
 * Every function is safe to call from several threads at once. `actor` names who acts (a
 * person, a service); it is recorded on the audit trail; NULL means "api".
 */
#ifndef TANDEM_ENGINE_H
#define TANDEM_ENGINE_H

#include "tandem/learn.h"
#include "tandem/tandem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_engine tdm_engine;

typedef struct tdm_engine_opts {
    const char *db_path;       /* SQLite database file, created (with its schema) if missing */
    unsigned commit_window_us; /* how long the writer gathers work into one durable commit;
                                  default 500 (microseconds) */
    uint64_t seed;             /* audit-sample draws; 0 (default) seeds from the clock */
    int read_only;             /* open for reading and verifying only */
} tdm_engine_opts;

/* Fills `opts` with the defaults above (db_path NULL: the caller must set it). */
void tdm_engine_opts_init(tdm_engine_opts *opts);

/*
 * Opens (creating or migrating) the store at opts->db_path and starts the engine. On success
 * *out is yours; close it with tdm_engine_close(). Errors: TDM_EIO (cannot open), TDM_EVERSION
 * (a database from a newer tandem), TDM_ECORRUPT, TDM_ENOMEM.
 */
int tdm_engine_open(const tdm_engine_opts *opts, tdm_engine **out, tdm_error *err);

/* Finishes pending commits, saves model snapshots, closes the store. NULL is ignored. */
void tdm_engine_close(tdm_engine *e);

/* ---- processes ---------------------------------------------------------------------------- */

/*
 * Creates or replaces the process `name` from its YAML text (docs/process-file.md); `name`
 * must match the file's `process` key. Steps whose inputs, labels and model are unchanged keep
 * their trained model. Answers the process summary (as tdm_engine_get_process()).
 */
int tdm_engine_put_process(tdm_engine *e, const char *name, const char *yaml, size_t len,
                           const char *actor, char **json, tdm_error *err);

/* {"processes": [summary, ...]} */
int tdm_engine_list_processes(tdm_engine *e, char **json, tdm_error *err);

/* The summary: name, version, owner, kpis, baseline, steps with their state (model version,
 * threshold, paused), counts. */
int tdm_engine_get_process(tdm_engine *e, const char *name, char **json, tdm_error *err);

/*
 * Initial training from history: `data` is CSV (header row) or JSON Lines of labelled
 * examples (TDM_FORMAT_AUTO sniffs). Every AI or hybrid step whose output column is present
 * is trained and gets a new model version with its certified threshold, certified on the
 * training rows no review rule would send to a person. Answers {"process", "steps":
 * [{"step", "model_version", "n_train", "n_classes", "threshold", "certified_n",
 * "eligible_n", "oof_accuracy", "seconds"}]}.
 */
int tdm_engine_train(tdm_engine *e, const char *process, const char *data, size_t len,
                     tdm_table_format format, const char *actor, char **json, tdm_error *err);

/* ---- items -------------------------------------------------------------------------------- */

/*
 * Takes items in: `body` is one JSON object (jsonl = 0) or JSON Lines (jsonl = 1). Each item
 * is routed through the process's steps and stored durably before this returns. An item may
 * carry its own "id" (a string); submitting an id again replaces the item (its version
 * grows, open tasks on the old version can no longer be completed). The answer has one result
 * per item, in input order: one JSON object, or JSON Lines:
 *   {"id", "status": "decided", "step", "decision": {"id", "value", "confidence", "by"}}
 *   {"id", "status": "queued", "step", "task_id", "proposal": {"value", "confidence"} | null}
 * A batch is all or nothing: if one line is bad, nothing is stored and the error names the
 * line. *json_len receives the answer's length.
 */
int tdm_engine_submit(tdm_engine *e, const char *process, const char *body, size_t len, int jsonl,
                      const char *actor, char **json, size_t *json_len, tdm_error *err);

/*
 * tdm_engine_submit() in two halves, for servers that do not want a thread to wait for the
 * durable commit: _begin does the parsing and routing on the caller's thread (returning any
 * error at once, with nothing stored) and queues the write; `done(arg)` is then called once,
 * from the engine's writer thread, when the write is durable or has failed. Do not call the
 * engine from `done`; wake whoever will call tdm_submission_end(), which gives the answer
 * (or the error) exactly as tdm_engine_submit() would, and frees the submission.
 */
typedef struct tdm_submission tdm_submission;

int tdm_engine_submit_begin(tdm_engine *e, const char *process, const char *body, size_t len,
                            int jsonl, const char *actor, void (*done)(void *arg), void *arg,
                            tdm_submission **out, tdm_error *err);
int tdm_submission_end(tdm_submission *s, char **json, size_t *json_len, tdm_error *err);

/* {"id", "process", "version", "status", "fields", "received_at", "decisions", "tasks"} */
int tdm_engine_get_item(tdm_engine *e, const char *id, char **json, tdm_error *err);

/* ---- queues and tasks --------------------------------------------------------------------- */

/*
 * {"tasks": [...]}: the queue's tasks in the given state ("open", "claimed" or "done"; NULL
 * means open), most urgent first (priority, then due time), at most `limit` (1..1000).
 * A claimed task whose lease has run out is open again.
 */
int tdm_engine_list_tasks(tdm_engine *e, const char *queue, const char *state, size_t limit,
                          char **json, tdm_error *err);

/*
 * One task as the workspace shows it: the task (as listed) with "choices" (the values a
 * correction may take), "inputs" (the fields the model reads) and "related" (decisions on
 * items sharing the process's related_by value, or null). TDM_ENOTFOUND for no such task.
 */
int tdm_engine_get_task(tdm_engine *e, const char *task_id, char **json, tdm_error *err);

/*
 * Claims the next task of `queue` for `actor` (their own unexpired claim first, then the first
 * open task by priority and due time) and answers it as tdm_engine_get_task does. When
 * nothing is open, gives (without a claim) a task in state "confirming" whose answer someone
 * else gave. When there is none of those either, returns 0 with *json NULL.
 */
int tdm_engine_next_task(tdm_engine *e, const char *queue, const char *actor,
                         unsigned lease_seconds, char **json, tdm_error *err);

/* Claims a task for `actor` for lease_seconds (1..86400; 0 means 300). 409 when someone else
 * holds it or it is done. Answers the task. */
int tdm_engine_claim_task(tdm_engine *e, const char *task_id, const char *actor,
                          unsigned lease_seconds, char **json, tdm_error *err);

/*
 * Completes a task: `body` is {"action": "accept" | "correct" | "escalate", "value": ...,
 * "comment": ...}. accept keeps the AI's proposal, correct needs a value of the step's output
 * type (and in its label set, if it has one), escalate moves the task to the step's
 * escalation queue. 409 when the task is done, held by someone else, or its item changed.
 * Answers {"task", "decision"} (decision null for escalate).
 */
int tdm_engine_complete_task(tdm_engine *e, const char *task_id, const char *actor,
                             const char *body, size_t len, char **json, tdm_error *err);

/* ---- feedback ----------------------------------------------------------------------------- */

/*
 * A verdict on any decision: `body` is {"verdict": "accurate" | "inaccurate", "correction":
 * ..., "comment": ...}. The step's model learns from it at once. Answers {"feedback_id",
 * "decision_id", "model_version"}.
 */
int tdm_engine_feedback(tdm_engine *e, const char *decision_id, const char *actor, const char *body,
                        size_t len, char **json, tdm_error *err);

/* ---- audit trail -------------------------------------------------------------------------- */

/* {"entries": [...], "next": SEQ}: entries with seq > after, oldest first, at most limit. */
int tdm_engine_audit(tdm_engine *e, uint64_t after, size_t limit, char **json, tdm_error *err);

/* What an audit listing keeps: NULL members match everything. A subject ending in "*"
 * matches as a prefix (like support-triage/ then a star). */
typedef struct tdm_audit_filter {
    const char *event;
    const char *actor;
    const char *subject;
} tdm_audit_filter;

/* Entries scanned at most by one filtered listing; "next" then says where to go on. */
#define TDM_AUDIT_SCAN_MAX 100000

/*
 * tdm_engine_audit with a filter: {"entries", "next", "end"}. A filtered listing looks at
 * no more than TDM_AUDIT_SCAN_MAX entries after `after`, so "next" (to pass as `after` for
 * more) is the last entry listed, or the last one looked at; "end" is true when nothing
 * after "next" is left to look at.
 */
int tdm_engine_audit_filtered(tdm_engine *e, uint64_t after, size_t limit,
                              const tdm_audit_filter *filter, char **json, tdm_error *err);

typedef struct tdm_audit_check {
    int ok;             /* 1 when every entry matches its hash and its predecessor */
    uint64_t entries;   /* entries checked */
    uint64_t first_bad; /* seq of the first entry that does not match (0 when ok) */
    char reason[256];   /* what did not match */
} tdm_audit_check;

/* Recomputes the hash chain from the first entry and reports the first that does not match. */
int tdm_engine_audit_verify(tdm_engine *e, tdm_audit_check *out, tdm_error *err);

/* ---- export and health -------------------------------------------------------------------- */

typedef enum tdm_export_format { TDM_EXPORT_CSV = 1, TDM_EXPORT_JSONL = 2 } tdm_export_format;

/*
 * Streams every decision (of `process`, or of all when NULL) to `write`, oldest first: one
 * row each with decision id, item id, process, step, value, confidence, by, kind (model or
 * person), autonomous, created_at. `write` returns 0 to go on, non-zero to stop (the call
 * then returns TDM_EIO).
 */
int tdm_engine_export_decisions(tdm_engine *e, const char *process, tdm_export_format format,
                                int (*write)(void *ctx, const char *data, size_t len), void *ctx,
                                tdm_error *err);

/* {"status": "ok", "version", "items", "open_tasks", "audit_entries", "paused_steps"}:
 * paused_steps counts steps whose automation was pulled back (audited error over budget). */
int tdm_engine_health(tdm_engine *e, char **json, tdm_error *err);

/* ---- tokens and principals ---------------------------------------------------------------- */

/*
 * Who may do what. A token carries one role and, for some roles, a scope: owner and
 * service tokens name processes, reviewer tokens name queues ("*" in a scope means all).
 * admin may do everything; viewer may read everything but tokens; service may submit items
 * to the processes in its scope (all when its scope is empty) and read their results.
 */
typedef enum tdm_role {
    TDM_ROLE_ADMIN = 1,
    TDM_ROLE_OWNER = 2,
    TDM_ROLE_REVIEWER = 4,
    TDM_ROLE_VIEWER = 8,
    TDM_ROLE_SERVICE = 16,
} tdm_role;

#define TDM_SCOPE_MAX      32  /* names in a token's scope */
#define TDM_SCOPE_NAME_MAX 200 /* bytes in one of them */
#define TDM_TOKEN_NAME_MAX 128

/* The holder of a valid token, as tdm_engine_authenticate() found it. */
typedef struct tdm_principal {
    char id[32];                       /* "tok_..." */
    char name[TDM_TOKEN_NAME_MAX + 1]; /* the actor on the audit trail */
    tdm_role role;
    size_t n_scope;
    char scope[TDM_SCOPE_MAX][TDM_SCOPE_NAME_MAX + 1];
} tdm_principal;

/* "admin", "owner", "reviewer", "viewer", "service"; NULL for anything else. */
const char *tdm_role_name(tdm_role role);
/* Parses a role name. Returns 0, or TDM_EINVAL for an unknown name. */
int tdm_role_parse(const char *name, tdm_role *out);
/* 1 when `name` is in the principal's scope (or the scope holds "*"), else 0. */
int tdm_principal_in_scope(const tdm_principal *p, const char *name);

/*
 * Creates a token and answers {"id", "token", "name", "role", "scope": [...],
 * "created_at"}: the token itself (at least 256 bits of randomness, "tdm_" then 43
 * base64url characters) is in this answer only; tandem keeps a hash of it. `secret` is NULL
 * to make one up, or a token chosen by the caller (32 to 256 printable ASCII characters, no
 * blanks), as TANDEM_ADMIN_TOKEN gives. Names are 1 to 128 characters of [A-Za-z0-9._@-]
 * and unique among the tokens not revoked (TDM_ECONFLICT). Owner and reviewer tokens need
 * a scope; admin and viewer tokens take none. Audited as token.created by `actor`.
 */
int tdm_engine_token_create(tdm_engine *e, const char *name, tdm_role role,
                            const char *const *scope, size_t n_scope, const char *secret,
                            const char *actor, char **json, tdm_error *err);

/* {"tokens": [{"id", "name", "role", "scope", "created_at", "created_by", "revoked_at"}]},
 * oldest first; revoked_at is null for tokens in force. Never the tokens themselves. */
int tdm_engine_token_list(tdm_engine *e, char **json, tdm_error *err);

/* Revokes a token (TDM_ENOTFOUND for an unknown id, TDM_ECONFLICT when already revoked) and
 * answers it as the list does. It stops working on the next request. Audited. */
int tdm_engine_token_revoke(tdm_engine *e, const char *id, const char *actor, char **json,
                            tdm_error *err);

/* The number of tokens in force. */
int tdm_engine_token_count(tdm_engine *e, int64_t *count, tdm_error *err);

/*
 * Finds the principal behind a token: 0, or TDM_EAUTH when the token is unknown, revoked or
 * malformed. The stored hash is compared in constant time. Recent principals are cached,
 * but a revocation made by any process on the same database counts at the next call (the
 * file PATH-tokens tells them; src/core/tokens.c).
 */
int tdm_engine_authenticate(tdm_engine *e, const char *token, tdm_principal *out, tdm_error *err);

/*
 * The inbox: {"at", "queues": [{"queue", "processes", "open", "claimed", "confirming",
 * "oldest_open_at", "oldest_open_seconds", "sla_breached"}]}, for the queues `who` may see
 * (admin and viewer: all; owner: those of its processes; reviewer: those in its scope), by
 * name. *fingerprint (may be NULL) changes when a count does, not when time alone passes.
 */
int tdm_engine_queues(tdm_engine *e, const tdm_principal *who, char **json, uint64_t *fingerprint,
                      tdm_error *err);

/* 1 when `queue` is among the queues tdm_engine_queues() shows `who`, else 0. Reads no
 * tasks. */
int tdm_engine_queue_visible(tdm_engine *e, const tdm_principal *who, const char *queue);

typedef enum tdm_resource {
    TDM_RESOURCE_ITEM = 1,
    TDM_RESOURCE_TASK = 2,
    TDM_RESOURCE_DECISION = 3,
} tdm_resource;

/*
 * Where a thing belongs, for access checks: its process, and its queue (a task's queue; a
 * decision's step's queue in the process as it is now; "" for an item). TDM_ENOTFOUND for
 * an unknown id.
 */
int tdm_engine_resource_scope(tdm_engine *e, tdm_resource kind, const char *id,
                              char process[TDM_SCOPE_NAME_MAX + 1],
                              char queue[TDM_SCOPE_NAME_MAX + 1], tdm_error *err);

/* ---- governance: the kill switch and the registry ----------------------------------------- */

/*
 * Pauses (pause = 1) or resumes (0) the AI's autonomy at a step: while paused, every item of
 * the step goes to a person, with the AI's proposal. Resuming also restarts the window of
 * audit samples the drift check counts. `reason` (at most 255 bytes; NULL for a default) is
 * kept with a pause. Pressing the switch in the state it is in changes and records nothing.
 * Audited as automation.paused / automation.resumed by `actor`. Answers {"process", "step",
 * "paused", "pause_reason", "changed"}. TDM_ENOTFOUND for an unknown process or step,
 * TDM_EINVAL for a human step.
 */
int tdm_engine_pause_step(tdm_engine *e, const char *process, const char *step, int pause,
                          const char *reason, const char *actor, char **json, tdm_error *err);

/*
 * The registry of AI use cases: {"use_cases": [{"process", "step", "allocation", "owner",
 * "process_owner", "kpis", "risk_budget": {"max_error", "confidence", "audit_sample"},
 * "threshold", "model_version", "automation_rate", "routed", "autonomous", "audited",
 * "audited_error", "audited_error_bound", "last_audit_sample", "paused", "pause_reason"}]},
 * one entry per ai or hybrid step. automation_rate is the share of the items routed at the
 * step (a task made, or decided by the AI alone) that the AI decided alone; audited_error the share
 * of audit samples (since training or the last resume) the AI got wrong, and audited_error_bound
 * its Clopper-Pearson upper bound at the step's confidence; null where there is nothing to count.
 */
int tdm_engine_registry(tdm_engine *e, char **json, tdm_error *err);

/* ---- fairness ----------------------------------------------------------------------------- */

#define TDM_FAIRNESS_FIELD_MAX 200 /* bytes in the name of the field items are grouped by */
#define TDM_FAIRNESS_MAX_BINS  32  /* bin edges */

/*
 * The fairness report of one step of `process`: `step`, or when NULL the first step that
 * declares a favourable outcome (output.favourable). The items that reached the step in
 * their current version are grouped by their field `field`: by its value as text (a
 * missing or null value is the group "(missing)"), or with `n_bins` edges e1 < e2 < ... by
 * the bin a numeric value falls in ("<=e1", "e1<..<=e2", ..., ">eK"; a value that is not a
 * number is "(missing)"). Answers {"process", "step", "favourable", "field", "bins",
 * "groups": [{"group", "count", "ai_favourable_rate", "final_favourable_rate",
 * "impact_ratio", "four_fifths_ok", "override_rate", "tpr", "fpr"}], "equalized_odds":
 * {"tpr_gap", "fpr_gap"}}, the groups sorted by name; docs/api.md defines every number.
 * Read-only: runs beside the writer. Errors: TDM_ENOTFOUND (no such process), TDM_EINVAL
 * (field "group": empty, over TDM_FAIRNESS_FIELD_MAX bytes or not UTF-8; "bins": more than
 * TDM_FAIRNESS_MAX_BINS edges or not strictly increasing; "step": no such step, or it
 * declares no favourable outcome), TDM_ETOOBIG (more than 1000 groups).
 */
int tdm_engine_fairness(tdm_engine *e, const char *process, const char *step, const char *field,
                        const double *bins, size_t n_bins, char **json, tdm_error *err);

/* ---- the owner dashboard ------------------------------------------------------------------ */

#define TDM_DASHBOARD_DEFAULT_POINTS 24  /* buckets in the series when none are asked for */
#define TDM_DASHBOARD_MAX_POINTS     500 /* buckets in the series at the most */

/*
 * The owner dashboard of `process`, read in one snapshot of the store: {"process",
 * "generated_at", "bucket", "from", "to", "baseline": {"minutes_per_item", "error_rate"},
 * "totals": {"items", "decided_by_ai", "decided_by_people", "queued", "automation_rate",
 * "human_answers", "overrides", "override_rate", "escalations", "hours_saved"}, "series":
 * [{"at", "items", "decided_by_ai", "decided_by_people", "automation_rate", "human_answers",
 * "overrides", "override_rate", "hours_saved"}], "steps": [{"step", "allocation",
 * "max_error", "confidence", "threshold", "audited", "audited_error", "audited_error_bound",
 * "paused", "pause_reason"}], "queues": [{"queue", "open", "claimed", "confirming",
 * "oldest_open_seconds", "sla_breached", "sla_minutes"}], "confusions": [{"proposed",
 * "actual", "count"}], "recent": [{"decision_id", "item_id", "step", "value", "confidence",
 * "by", "autonomous", "at"}]}. Totals are over all time; the series has `points` buckets
 * (0: TDM_DASHBOARD_DEFAULT_POINTS) of a `bucket` ("minute", "hour" or "day"; NULL: "hour"),
 * aligned to UTC, ending with the one holding now, every one present. src/core/dashboard.c
 * defines every number. You own *json; free it with tdm_free(). TDM_ENOTFOUND for an unknown
 * process, TDM_EINVAL for another bucket or more than TDM_DASHBOARD_MAX_POINTS points
 * (err->field: "bucket" or "points").
 */
int tdm_engine_dashboard(tdm_engine *e, const char *process, const char *bucket, unsigned points,
                         char **json, tdm_error *err);

/* ---- webhooks ----------------------------------------------------------------------------- */

/*
 * Signed webhooks (src/core/webhooks.c, docs/api.md "Webhooks"). A subscription names a
 * process, a receiver's http or https URL and the events it wants: "task.created",
 * "decision.made", "sla.breached", "automation.paused". Every such event of the process
 * writes one delivery per subscription in the event's own transaction; a delivery thread
 * (tdm_engine_webhooks_start) posts it, signed as Standard Webhooks says, and retries with
 * growing delays until the receiver answers 2xx or the attempts run out (the delivery is
 * then dead, and can be replayed). Delivery states: "pending", "delivered", "dead",
 * "cancelled" (its webhook was deleted).
 */

#define TDM_WEBHOOKS_PER_PROCESS 20   /* subscriptions in force per process */
#define TDM_WEBHOOK_URL_MAX      2048 /* bytes in a receiver's URL */

/*
 * Subscribes: `body` is {"url": "https://...", "events": ["task.created", ...]}. Answers
 * {"id", "process", "url", "events", "secret", "created_at", "created_by"}: the secret
 * ("whsec_" and the base64 of 32 random bytes, the key of the signatures) is in this answer
 * only. Audited as webhook.created by `actor`. Errors: TDM_EPARSE (not JSON), TDM_EINVAL
 * (err->field: "url" not http or https, or with credentials in it; "events" empty or an
 * unknown event; an unknown key), TDM_ENOTFOUND (no such process), TDM_ECONFLICT (the
 * process has TDM_WEBHOOKS_PER_PROCESS already).
 */
int tdm_engine_webhook_create(tdm_engine *e, const char *process, const char *body, size_t len,
                              const char *actor, char **json, tdm_error *err);

/* {"webhooks": [{"id", "process", "url", "events", "created_at", "created_by", "pending",
 * "dead"}]}: the process's subscriptions in force, oldest first, with their pending and dead
 * delivery counts; never their secrets. TDM_ENOTFOUND for an unknown process. */
int tdm_engine_webhook_list(tdm_engine *e, const char *process, char **json, tdm_error *err);

/* Deletes a subscription: its pending and dead deliveries are cancelled. Answers it as
 * listed, with "deleted_at" and "cancelled" (how many). Audited as webhook.deleted.
 * TDM_ENOTFOUND for an unknown or deleted webhook. */
int tdm_engine_webhook_delete(tdm_engine *e, const char *id, const char *actor, char **json,
                              tdm_error *err);

/* The process a webhook in force belongs to, for access checks. TDM_ENOTFOUND otherwise. */
int tdm_engine_webhook_process(tdm_engine *e, const char *id, char process[TDM_SCOPE_NAME_MAX + 1],
                               tdm_error *err);

/*
 * {"deliveries": [{"id", "webhook_id", "event", "state", "attempts", "next_at",
 * "last_status", "last_error", "created_at", "delivered_at", "payload"}]}: a webhook's
 * deliveries in `state` (NULL: all), newest first, at most `limit` (1..1000). state "dead"
 * is the dead-letter list. TDM_ENOTFOUND for an unknown webhook, TDM_EINVAL (field "state"
 * or "limit").
 */
int tdm_engine_webhook_deliveries(tdm_engine *e, const char *id, const char *state, size_t limit,
                                  char **json, tdm_error *err);

/*
 * Sends deliveries again: `delivery` (of webhook `id`; pending, delivered or dead) or, when
 * NULL, every dead delivery of the webhook, each pending again at once with its attempts
 * back at 0 and its webhook-id unchanged. Answers {"webhook_id", "replayed": N,
 * "deliveries": [ids]} (at most 1000 ids listed). Audited as webhook.replayed.
 * TDM_ENOTFOUND for an unknown webhook or delivery.
 */
int tdm_engine_webhook_replay(tdm_engine *e, const char *id, const char *delivery,
                              const char *actor, char **json, tdm_error *err);

/* How the delivery thread works; tdm_webhook_opts_init() gives the defaults in brackets. */
typedef struct tdm_webhook_opts {
    unsigned retry_base_ms; /* the first retry's delay; the later ones are 6, 24, 120, 360,
                               720 and 1440 times it, plus up to 10% jitter [5000] */
    unsigned max_attempts;  /* attempts before a delivery is dead, 1..100 [8] */
    unsigned timeout_ms;    /* one attempt's time limit, connecting included [10000] */
    unsigned sweep_ms;      /* how often tasks past their due time are looked for [1000] */
    unsigned keep_days;     /* delivered and cancelled deliveries are deleted after this
                               many days; 0 keeps them [7] */
    unsigned concurrency;   /* attempts in flight at once, 1..256 [16] */
    uint64_t seed;          /* the jitter's generator; 0 seeds it from the clock [0] */
} tdm_webhook_opts;

void tdm_webhook_opts_init(tdm_webhook_opts *opts);

/*
 * Starts the engine's delivery thread (tandem serve does): it posts due deliveries, retries
 * failed ones, and announces sla.breached for tasks past their due time. Without it
 * deliveries wait, stored, for a server. TDM_EINVAL when already started, for a read-only
 * engine or an option out of range; TDM_EIO when libcurl cannot start. Stopped by
 * tdm_engine_webhooks_stop() or tdm_engine_close(); attempts in flight are then abandoned
 * and sent again by the next start.
 */
int tdm_engine_webhooks_start(tdm_engine *e, const tdm_webhook_opts *opts, tdm_error *err);
void tdm_engine_webhooks_stop(tdm_engine *e);

/* ---- metrics ------------------------------------------------------------------------------ */

#define TDM_METRICS_DEFAULT_DAYS 30   /* the window when no `from` is given: 30 UTC days */
#define TDM_METRICS_MAX_PERIODS  1000 /* periods in one window at the most */
#define TDM_METRICS_DEFAULT_TOP  10   /* segments listed when no `top` is given */
#define TDM_METRICS_MAX_TOP      100

/* What tdm_engine_metrics() reads; tdm_metrics_query_init() gives the defaults. */
typedef struct tdm_metrics_query {
    const char *from;     /* YYYY-MM-DD (its midnight UTC) or an ISO 8601 time with a zone;
                             NULL: the start of the UTC day TDM_METRICS_DEFAULT_DAYS - 1
                             days before `to`'s */
    const char *to;       /* exclusive; YYYY-MM-DD means the end of that day; NULL: now */
    const char *by;       /* "day", "week" (from Monday) or "month"; NULL: "day" */
    const char *segment;  /* an item field to split the numbers by, or NULL */
    double cost_per_hour; /* the cost of a person's hour; < 0 (the default): the process's
                             baseline.cost_per_hour, if it declares one */
    unsigned top;         /* segments listed, 1..TDM_METRICS_MAX_TOP; 0: the default */
} tdm_metrics_query;

void tdm_metrics_query_init(tdm_metrics_query *q);

/*
 * The metrics of `process` over the window [from, to), in periods aligned to UTC: {"process",
 * "generated_at", "from", "to", "by", "baseline": {"minutes_per_item", "error_rate",
 * "cost_per_hour"}, "cost_per_hour" (the rate used, or null), "risk_budget", "totals",
 * "periods": [{"label", "start", "end", ...}], "steps": [{"step", ..., "totals", "periods"}],
 * "reviewers", "segments", "confusions", "pauses"}; each of totals and periods holds the three
 * families {"efficiency", "quality", "team"}. docs/api.md ("GET /v1/processes/{name}/metrics")
 * and src/core/metrics.c define every number. Read in one snapshot, beside the writer. You
 * own *json (tdm_free()). Errors: TDM_ENOTFOUND (no such process), TDM_EPARSE (a malformed
 * from, to or by; err->field names it), TDM_EINVAL (to not after from, more than
 * TDM_METRICS_MAX_PERIODS periods, a bad segment, rate or top; err->field), TDM_ETOOBIG (a
 * segment field with more than 1000 values in the window).
 */
int tdm_engine_metrics(tdm_engine *e, const char *process, const tdm_metrics_query *q, char **json,
                       tdm_error *err);

/*
 * Every process's numbers over all time in Prometheus's text exposition format 0.0.4
 * (counters, gauges and a latency histogram named tandem_..., labelled by process and step,
 * or process and queue), for the processes `who` may see: all for NULL, an admin or a
 * viewer; an owner's own; none for other roles. *text is yours (tdm_free()), *len its
 * length (len may be NULL). docs/api.md ("GET /metrics") lists every metric.
 */
int tdm_engine_prometheus(tdm_engine *e, const tdm_principal *who, char **text, size_t *len,
                          tdm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_ENGINE_H */
