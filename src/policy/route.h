/*
 * route.h — routing one item through one step: may the AI decide alone?
 *
 * Private to libtandem. The rule, in order (docs/architecture.md, "Routing"):
 *   human step                       -> a person
 *   no trained model                 -> a person, no proposal
 *   hybrid step                      -> a person, with the AI's proposal
 *   an adverse outcome proposed      -> a person (the step's adverse_outcomes)
 *   a mandatory-review rule fires    -> a person
 *   (simulation only, engine->route_mode: all-human -> a person; fixed T -> the AI alone at
 *    confidence >= T, else a person; the tests below are then skipped)
 *   automation paused                -> a person
 *   no certified threshold           -> a person
 *   confidence below the threshold   -> a person
 *   drawn for the audit sample       -> a person (the AI's answer is checked)
 *   otherwise                        -> the AI decides alone
 */
#ifndef TDM_POLICY_ROUTE_H
#define TDM_POLICY_ROUTE_H

#include <jansson.h>

#include "core/engine_int.h"

typedef struct tdm__route {
    size_t step;
    int decided;       /* 1: the AI decided alone */
    json_t *proposal;  /* the AI's value (a JSON string), or NULL when it has none */
    double confidence; /* calibrated, when there is a proposal */
    uint64_t model_version;
    const char *why;      /* for a task: human, no_model, hybrid, adverse_outcome, review_rule,
                             paused, no_threshold, below_threshold, audit_sample,
                             all_human (simulation only) */
    double sample_rate;   /* for audit samples */
    int census;           /* for a task: it would have gone to a person whatever the model's
                             confidence and the rules (no threshold in force, paused, hybrid,
                             no model; learning.c, NOTES ON REFITS) */
    const char *rule;     /* the rule that fired (owned by the process) */
    json_t *reasons;      /* [{"feature", "weight"}] behind the proposal, or NULL */
    json_t *alternatives; /* [{"value", "confidence"}]: the next most likely values, or NULL */
} tdm__route;

/*
 * Routes `fields` (an item's fields plus the answers of earlier steps) through step `step` of
 * `ps`. The step's model must be loadable (it is loaded here if needed). Returns 0 or an
 * error; on success release the route with tdm__route_release().
 */
int tdm__route_step(tdm_engine *e, proc_state *ps, size_t step, json_t *fields, tdm__route *out,
                    tdm_error *err);

void tdm__route_release(tdm__route *r);

/* The rule lookup over a JSON object of fields (see tdm_rule_lookup). */
int tdm__json_lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out);

#endif /* TDM_POLICY_ROUTE_H */
