/*
 * process.h — process files: what a process owner declares (docs/process-file.md).
 *
 * A process file is YAML: the process name, its accountable owner, the KPIs it is linked to,
 * the pre-AI baseline, and its steps. Each step says who may act (allocation ai, hybrid or
 * human), who owns it, what it reads and answers, and its guardrails: the risk budget, the
 * audit-sample rate, the rules that force a human review, the queue, the SLA and where
 * escalations go. Parsing validates everything; every mistake is reported with the file,
 * the line and the key ("support.yaml:14: steps[0].allocation: unknown allocation "auto"
 * (expected ai, hybrid or human)").
 *
 * Review rules are small expressions over the item's fields and the AI's proposal:
 *     label in ["terminate_account", "card_swallowed"]
 *     amount > 10000 and not (country == "NL")
 *     confidence < 0.5
 *     text contains "lawyer"
 * They are compiled when the file is parsed; evaluating one does no I/O, allocates nothing and
 * takes time proportional to its size, which is capped.
 */
#ifndef TANDEM_PROCESS_H
#define TANDEM_PROCESS_H

#include "tandem/learn.h"
#include "tandem/tandem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdm_process tdm_process;

typedef enum tdm_allocation {
    TDM_ALLOC_AI = 1,     /* the AI decides alone inside its guardrails */
    TDM_ALLOC_HYBRID = 2, /* the AI proposes, a person confirms or corrects */
    TDM_ALLOC_HUMAN = 3,  /* always a person */
} tdm_allocation;

/* "ai", "hybrid", "human" ("unknown" otherwise). */
const char *tdm_allocation_name(tdm_allocation a);

/* One step, as declared. Every pointer is owned by the process and lives as long as it. */
typedef struct tdm_step_info {
    const char *id;
    tdm_allocation allocation;
    const char *owner;
    size_t n_inputs;
    const tdm_field_spec *inputs; /* the item fields the model reads, with their kinds */
    const char *output;           /* the name of the step's answer (and its training column) */
    size_t n_labels;
    const char *const *labels; /* allowed answers; none: learned from the training data */
    const char *favourable;    /* the label that favours the person (fairness); or NULL */
    const char *model;         /* model kind: "linear" (the only one so far); NULL for human */
    double max_error;          /* risk budget: highest error allowed on autonomous decisions */
    double confidence;         /* with this confidence (so delta = 1 - confidence) */
    double audit_sample;       /* share of autonomous decisions people check anyway */
    size_t n_rules;
    const char *const *rules;     /* mandatory-review rules, as written */
    const char *queue;            /* where this step's tasks go */
    double sla_minutes;           /* a task is due this long after it is queued */
    const char *escalation_queue; /* where escalated tasks go; NULL: escalation refused */
    int priority;                 /* higher first; default 0 */
    size_t n_adverse;
    const char *const *adverse; /* outcomes the AI may never decide alone */
    const char *four_eyes;      /* "always", a rule, or NULL: when a second person must
                                   confirm a person's answer */
    double second_look;         /* a person's answer that contradicts an AI proposal of at
                                   least this confidence needs a second person; 0: never */
    int refit;                  /* 1 (refit: auto, the default): the model is fitted again
                                   from everything people taught it as their answers
                                   accumulate (src/core/learning.c); 0: online learning only */
} tdm_step_info;

/*
 * Parses and validates a process file held in memory; `filename` is used in messages. On
 * success *out is yours (tdm_process_free()). Errors: TDM_EPARSE (not YAML), TDM_EINVAL (a
 * key missing, unknown, or with a bad value: err->message has file:line: key: problem and
 * err->field the key path, like "steps[1].guardrails.max_error"), TDM_ETOOBIG (over 1 MiB or
 * absurd sizes), TDM_ENOMEM.
 */
int tdm_process_parse(const char *yaml, size_t len, const char *filename, tdm_process **out,
                      tdm_error *err);

/* Reads and parses a file (TDM_EIO if it cannot be read). */
int tdm_process_load(const char *path, tdm_process **out, tdm_error *err);

void tdm_process_free(tdm_process *p);

const char *tdm_process_name(const tdm_process *p);
const char *tdm_process_owner(const tdm_process *p);
const char *tdm_process_description(const tdm_process *p); /* "" when absent */
/* The item field whose equal values relate items (related_by, e.g. a customer id), or NULL. */
const char *tdm_process_related_by(const tdm_process *p);
size_t tdm_process_kpi_count(const tdm_process *p);
const char *tdm_process_kpi(const tdm_process *p, size_t i);
double tdm_process_baseline_minutes(const tdm_process *p); /* minutes a person spends per item */
double tdm_process_baseline_error(const tdm_process *p);   /* error rate before AI */
/* What an hour of a person's time costs (baseline.cost_per_hour), or 0 when not given. */
double tdm_process_baseline_cost(const tdm_process *p);
size_t tdm_process_step_count(const tdm_process *p);
const tdm_step_info *tdm_process_step(const tdm_process *p, size_t i); /* NULL out of range */
int tdm_process_step_index(const tdm_process *p, const char *id, size_t *index); /* ENOTFOUND */

/* ---- rules -------------------------------------------------------------------------------- */

typedef enum tdm_rule_type {
    TDM_RULE_NULL = 0,
    TDM_RULE_BOOL = 1,
    TDM_RULE_NUMBER = 2,
    TDM_RULE_STRING = 3,
} tdm_rule_type;

/* A value a rule reads. Strings need not be NUL-terminated. */
typedef struct tdm_rule_value {
    tdm_rule_type type;
    int boolean;
    double number;
    const char *string;
    size_t length;
} tdm_rule_value;

/*
 * Looks up an item field for a rule: fills *out and returns 0, or returns TDM_ENOTFOUND for a
 * field the item does not have (the rule then sees null). Names are `len` bytes.
 */
typedef int (*tdm_rule_lookup)(void *ctx, const char *name, size_t len, tdm_rule_value *out);

/*
 * Evaluates the mandatory-review rules of step `step` against an item (through `lookup`)
 * and the AI's proposal (`label`, NULL when there is none, and `confidence`). Sets *fired to
 * the index of the first rule that holds, or to SIZE_MAX when none does. Comparisons across
 * types are false; a missing field is null. Returns 0, or TDM_EINVAL for a bad step index.
 */
int tdm_process_review(const tdm_process *p, size_t step, tdm_rule_lookup lookup, void *ctx,
                       const char *label, double confidence, size_t *fired);

/* 1 when `label` is one of step `step`'s adverse outcomes (guardrails.adverse_outcomes):
 * the AI never decides it alone. 0 otherwise, also for NULL or a bad step index. */
int tdm_process_adverse(const tdm_process *p, size_t step, const char *label);

/* 1 when a person's answer `label` on an item at step `step` needs a second, different
 * person to confirm it (guardrails.four_eyes: always, or its rule holds, or the rule cannot
 * be evaluated); 0 otherwise. `confidence` is the AI's, or 0 when it had no proposal. */
int tdm_process_four_eyes(const tdm_process *p, size_t step, tdm_rule_lookup lookup, void *ctx,
                          const char *label, double confidence);

/* 1 when a person's answer `label` contradicts the AI's proposal `proposal` (NULL: none) of
 * confidence `confidence` at step `step` and that confidence is at or above the step's
 * guardrails.second_look: a second, different person must confirm the answer, so that one
 * person's slip is not taken for the AI's mistake. 0 otherwise. */
int tdm_process_second_look(const tdm_process *p, size_t step, const char *proposal,
                            const char *label, double confidence);

/*
 * Compiles one rule on its own, to check it (the engine's and the CLI's validators use
 * tdm_process_parse, which calls this for every rule). Returns 0 or TDM_EINVAL with the
 * column of the mistake in err->message.
 */
int tdm_rule_check(const char *source, tdm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_PROCESS_H */
