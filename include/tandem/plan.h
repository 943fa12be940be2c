/*
 * plan.h — the task audit: sorts a team's logged tasks into AI-only, hybrid and human-only
 * with a documented rubric, sums the split against the 70-20-10 rule of thumb, and writes a
 * process-file skeleton for each task worth handing to the AI.
 *
 * The input is a task log read with tdm_table_read_file() (include/tandem/learn.h): one row
 * per task with the columns name, team, minutes (per occurrence), per_week (occurrences per
 * week), description and, optionally, tags. tdm_plan_from_table() checks every cell and
 * classifies every row; the rest of this header reads the answer.
 *
 * The rubric (docs/plan.md has it in full, word for word; src/core/plan.c holds it as data):
 *
 *   - The task's name, description and free tags are read as words. Each signal group (five
 *     toward AI-able work, five toward people) counts once, with its weight, when one of its
 *     words occurs. Volume (occurrences a week) adds to the AI side, but only when some
 *     word already points there; a task done less than once a week adds to the people side.
 *   - No word toward AI: human-only. Otherwise, with A the AI score and H the people score:
 *     A - H >= TDM_PLAN_AI_MARGIN is AI-only, unless a risk or empathy word holds it at
 *     hybrid; A - H <= -TDM_PLAN_HUMAN_MARGIN is human-only; anything between is hybrid.
 *   - Tags a person sets win: ai-only (or ai), hybrid, human-only (or human) force the
 *     bucket; sensitive or regulated hold any AI-only verdict, forced or scored, at hybrid.
 */
#ifndef TANDEM_PLAN_H
#define TANDEM_PLAN_H

#include "tandem/learn.h"
#include "tandem/tandem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The three buckets of the task audit, in the order they are always listed. */
typedef enum tdm_plan_bucket {
    TDM_PLAN_AI = 0,     /* AI-only: the AI does it alone inside its guardrails */
    TDM_PLAN_HYBRID = 1, /* the AI proposes, a person decides */
    TDM_PLAN_HUMAN = 2,  /* human-only */
} tdm_plan_bucket;

#define TDM_PLAN_BUCKETS 3

/* "ai", "hybrid" or "human" (the names of the JSON output and of a step's allocation). */
const char *tdm_plan_bucket_name(tdm_plan_bucket bucket);

/* The 70-20-10 rule of thumb: the share of a team's tasks it expects in each bucket
 * (0.7, 0.2, 0.1). */
double tdm_plan_rule_of_thumb(tdm_plan_bucket bucket);

/* The rubric's thresholds (docs/plan.md explains each). */
#define TDM_PLAN_AI_MARGIN     2    /* A - H at least this: AI-only */
#define TDM_PLAN_HUMAN_MARGIN  3    /* A - H at most minus this: human-only */
#define TDM_PLAN_VOLUME_SOME   5.0  /* occurrences a week for volume +1 */
#define TDM_PLAN_VOLUME_HIGH   25.0 /* occurrences a week for volume +2 */
#define TDM_PLAN_RARE          1.0  /* fewer occurrences a week than this: rare, +1 people */
#define TDM_PLAN_MAX_MINUTES   100000.0
#define TDM_PLAN_MAX_PER_WEEK  100000.0
#define TDM_PLAN_DEFAULT_ERROR 0.05 /* a skeleton's placeholder baseline error rate */
#define TDM_PLAN_MAX_SIGNALS   12
#define TDM_PLAN_SIGNAL_WORDS  96

/* One group of the rubric's words. */
typedef struct tdm_plan_group {
    const char *name;         /* "repetitive", "rules", "data", ..., "risk" */
    int toward_ai;            /* 1: the group points toward AI-able work; 0: toward people */
    int weight;               /* what it adds to its side's score, once per task */
    int holds_at_hybrid;      /* 1: a task with one of these words is never AI-only by score */
    const char *meaning;      /* one sentence: what the group stands for */
    const char *const *words; /* "word" matches the word; "stem*" any word starting with stem;
                                 "two words" consecutive words */
    size_t n_words;
} tdm_plan_group;

/* The rubric's word groups, AI side first; the array is static. Returns their number. */
size_t tdm_plan_rubric(const tdm_plan_group **groups);

/* A signal that counted for one task. */
typedef struct tdm_plan_signal {
    const char *name;                    /* a group's name, or "volume" or "rare" (static) */
    int toward_ai;                       /* 1 toward AI, 0 toward people */
    int weight;                          /* what it added */
    char matched[TDM_PLAN_SIGNAL_WORDS]; /* the words of the task that matched, comma-separated
                                            (lowercase), or for volume and rare the frequency */
} tdm_plan_signal;

/* How one task was sorted. */
typedef struct tdm_plan_verdict {
    tdm_plan_bucket bucket;
    int ai_score, human_score; /* the sums of the signals' weights, per side */
    tdm_plan_signal signals[TDM_PLAN_MAX_SIGNALS];
    size_t n_signals;
    const char *forced_by; /* the tag that forced the bucket ("human-only"), or NULL */
    const char *held_by;   /* what held an AI-only verdict at hybrid: a tag ("sensitive",
                              "regulated") or a group ("risk", "empathy"); or NULL */
    const char *rule;      /* the rubric's rule that decided, one static sentence */
} tdm_plan_verdict;

/*
 * Sorts one task. `name`, `description` and `tags` may be NULL (empty); tags are separated by
 * semicolons, commas or spaces and compared without regard to ASCII case. Returns 0, or
 * TDM_EINVAL when the tags contradict each other (two different bucket tags) or one looks
 * like a misspelt control tag ("human-onyl"); err's message then says what to change,
 * without a place (the caller knows the file and line).
 */
int tdm_plan_classify(const char *name, const char *description, const char *tags, double minutes,
                      double per_week, tdm_plan_verdict *out, tdm_error *err);

/* ------------------------------------------------------------------------------------------ */
/* A whole task log                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct tdm_plan tdm_plan;

/* One task of a plan; every pointer is owned by the plan. */
typedef struct tdm_plan_task {
    const char *name, *team, *description, *tags; /* trimmed; tags "" when absent */
    double minutes, per_week, weekly_hours;       /* weekly_hours = minutes * per_week / 60 */
    size_t line;                                  /* where the row starts in its input */
    const char *slug;  /* a process name for the task: unique within the plan */
    const char *queue; /* a queue name from the team */
    tdm_plan_verdict verdict;
} tdm_plan_task;

/*
 * Checks a task log and sorts every task. The table needs the columns name, team, minutes,
 * per_week and description, and may have tags; any other column is an error (with a
 * suggestion when it is close to one of these). Each row needs a name and a team (no line
 * breaks), minutes as a plain decimal more than 0 and at most 100000, per_week from 0 to
 * 100000, and valid UTF-8; no two rows may have the same name and team. The plan copies
 * what it needs: the table may be freed afterwards.
 *
 * On success *out is a plan you own; free it with tdm_plan_free(). On failure *out is NULL
 * and `err` says "FILE:LINE: column \"minutes\": problem (what to do)", with err->field the
 * column: TDM_EINVAL (bad cell or columns), TDM_ENODATA (no rows), TDM_ENOMEM.
 */
int tdm_plan_from_table(const tdm_table *table, tdm_plan **out, tdm_error *err);

/* Frees a plan. NULL is ignored. */
void tdm_plan_free(tdm_plan *plan);

/* The name of the input the plan was read from (the table's name); owned by the plan. */
const char *tdm_plan_source(const tdm_plan *plan);

size_t tdm_plan_task_count(const tdm_plan *plan);

/* The i-th task, in input order; owned by the plan. */
const tdm_plan_task *tdm_plan_task_at(const tdm_plan *plan, size_t i);

/* The split: per bucket, the tasks and weekly hours, and their shares of the whole. */
typedef struct tdm_plan_split {
    struct {
        size_t tasks;
        double hours;
        double share_tasks; /* tasks / all tasks */
        double share_hours; /* hours / all hours; 0 when no task takes any time */
    } bucket[TDM_PLAN_BUCKETS];
    size_t tasks;
    double hours;
    size_t teams; /* distinct teams */
} tdm_plan_split;

void tdm_plan_split_get(const tdm_plan *plan, tdm_plan_split *out);

/*
 * Writes the process-file skeleton of task i, an AI-only or hybrid one: a valid process file
 * (tdm_process_parse() accepts it; this function checks) named after the task's slug, with
 * placeholders and TODO comments for what its owner must fill in (docs/plan.md shows one).
 * On success *yaml is NUL-terminated text you own; free it with tdm_free(). Returns 0,
 * TDM_EINVAL (i out of range, or a human-only task) or TDM_ENOMEM.
 */
int tdm_plan_skeleton(const tdm_plan *plan, size_t i, char **yaml, tdm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_PLAN_H */
