/*
 * simulate.h — replay before rollout: labelled history is run through a process with
 * simulated reviewers, to see what a routing policy would give (automation, error, hours)
 * before anyone's work depends on it.
 *
 * The simulation drives a real engine (engine.h) on a throwaway store: the process is
 * applied, the first `history` rows of the data train it (tdm_engine_train), and the other
 * rows are submitted one by one in a seeded random order (tdm_engine_submit). Every task an
 * item makes is answered by a simulated reviewer through tdm_engine_claim_task and
 * tdm_engine_complete_task, so the model learns online, thresholds are recomputed and audit
 * samples are drawn exactly as in production: the same code, not a copy of it. The
 * reviewer's answer is the row's true label, except that with probability reviewer_error it
 * is another of the step's labels, drawn at random; it accepts the AI's proposal when the
 * proposal is that answer and corrects it otherwise. An answer the engine holds for a second
 * person (four eyes, a second look) is judged by another simulated reviewer, who errs the
 * same way on their own and confirms it when they would have answered the same, else
 * declines it, and the task is answered again.
 *
 * Each strategy is one such replay on a store of its own: the process as written
 * (guaranteed: certified threshold, audit samples, review rules), every item to a person
 * (all-human), or the AI alone whenever its confidence is at least a fixed threshold and no
 * review rule holds the item back (fixed:T, with no certificate and no audit sample). All
 * of them see the same order and the same reviewer answers (the draws are made once per
 * item), so their differences come from the policy alone. The same inputs and seed give the
 * same answer, byte for byte.
 */
#ifndef TANDEM_SIMULATE_H
#define TANDEM_SIMULATE_H

#include "tandem/learn.h"
#include "tandem/tandem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tdm_sim_kind {
    TDM_SIM_ALL_HUMAN = 1,  /* every item to a person; the model learns, decides nothing */
    TDM_SIM_FIXED = 2,      /* the AI alone at confidence >= threshold (no guarantee) */
    TDM_SIM_GUARANTEED = 3, /* the process as written: tandem's routing with guarantees */
} tdm_sim_kind;

typedef struct tdm_sim_strategy {
    tdm_sim_kind kind;
    double threshold; /* TDM_SIM_FIXED: in (0, 1] */
    const char *name; /* in the answer; NULL: "all-human", "fixed:T" (%g) or "guaranteed" */
} tdm_sim_strategy;

/* Replayed items per block in the answer's "blocks". */
#define TDM_SIM_BLOCK 1000

/* The answer's "tail" counts the last this many replayed items: where the replay ends up. */
#define TDM_SIM_TAIL 3000

/* At most this many strategies in one simulation. */
#define TDM_SIM_MAX_STRATEGIES 16

typedef struct tdm_sim_opts {
    const char *process_yaml; /* the process file's text (docs/process-file.md) */
    size_t process_len;
    const char *process_file; /* its name, in messages */
    const tdm_table *data;    /* labelled rows: every column a step answers, its inputs */
    size_t history;           /* the first `history` rows train the process; default 0 */
    double reviewer_error;    /* in [0, 1); default 0 */
    double reviewer_minutes;  /* per task answered; < 0 (default): the process baseline */
    uint64_t seed;            /* replay order, reviewer errors, audit samples; default 1 */
    const tdm_sim_strategy *strategies;
    size_t n_strategies;  /* 1 .. TDM_SIM_MAX_STRATEGIES */
    const char *work_dir; /* where the throwaway stores go; NULL: $TMPDIR, else /dev/shm
                             when it can be written, else /tmp */
    unsigned threads;     /* strategies replayed at once; 0 (default): one per core */
} tdm_sim_opts;

/* Fills `opts` with the defaults above (no process, data or strategies). */
void tdm_sim_opts_init(tdm_sim_opts *opts);

/*
 * Runs the simulation and answers one JSON object (yours; free it with tdm_free()):
 *   {"process", "rows", "history", "items", "seed", "reviewer_error", "reviewer_minutes",
 *    "baseline_minutes", "strategies": [{"name", "items", "ai_share", "ai_error",
 *    "final_error", "reviewer_minutes", "hours_saved", "first_ai_item", "blocks": [{"end",
 *    "ai_share", "ai_error", "thresholds"}], "tail": {"items", "ai_share", "ai_error"},
 *    "ai_decisions", "ai_wrong", "final_wrong", "answers",
 *    "steps": [{"step", "threshold", "paused", "pause_reason", "paused_at_item"}]}]}
 * An item is decided by the AI alone when no person answered any of its steps; it is wrong
 * when a decision of one of its labelled steps differs from the row's label (the final
 * decision: the AI's when alone, else the reviewer's answer). ai_share = AI-alone items /
 * items; ai_error = wrong AI-alone items / AI-alone items (null when none); final_error =
 * wrong items / items; reviewer_minutes = answers given (a four-eyes confirmation is one
 * more) x the minutes per task; hours_saved = (items x baseline minutes - reviewer_minutes)
 * / 60; first_ai_item = the 1-based place in the replay of the first AI-alone item (null
 * when none); blocks cut the replay every TDM_SIM_BLOCK items (the last one may be shorter),
 * `end` being the place of a block's last item, `thresholds` each step's certified
 * threshold once that item was done (null: none, the AI decides nothing alone); "tail" is the same
 * over the last TDM_SIM_TAIL items (all of them when there are fewer). "steps" gives each step's
 * certified threshold and pause at the end of the replay, and the place of the item after which the
 * drift check was found to have paused it (null when it never was).
 *
 * Errors: TDM_EINVAL for options that cannot work (err->field names the option: "history",
 * "reviewer_error", "reviewer_minutes", "strategies", or "data" for a column the process
 * needs that the data lacks), and for rows whose label is empty or not one of the step's
 * labels (the message names the data's file and line, err->field the column); TDM_EPARSE or
 * TDM_EINVAL for a process file that does not parse (file:line); TDM_EIO when the throwaway store
 * cannot be made; anything the engine returns otherwise. The throwaway stores are deleted in every
 * case.
 */
int tdm_simulate(const tdm_sim_opts *opts, char **json, tdm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_SIMULATE_H */
