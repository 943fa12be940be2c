/*
 * route.c — the routing decision for one item at one step (see route.h for the order of
 * the tests). Reads the step's model and state under its read lock; writes nothing.
 *
 * A simulation (src/core/simulate.c) may set the engine's route_mode to compare other
 * policies through this same code: all-human sends every item to a person, fixed lets the
 * AI decide alone above a fixed confidence with no certificate and no audit sample. Both
 * keep the guardrails before them (hybrid steps, adverse outcomes, review rules).
 */
#define _POSIX_C_SOURCE 200809L

#include "policy/route.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

int tdm__json_lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out)
{
    json_t *fields = ctx;
    char key[256];
    if (len >= sizeof key)
        return TDM_ENOTFOUND;
    memcpy(key, name, len);
    key[len] = '\0';
    json_t *v = json_object_get(fields, key);
    if (v == NULL || json_is_null(v))
        return TDM_ENOTFOUND;
    memset(out, 0, sizeof *out);
    if (json_is_string(v)) {
        out->type = TDM_RULE_STRING;
        out->string = json_string_value(v);
        out->length = json_string_length(v);
    } else if (json_is_number(v)) {
        out->type = TDM_RULE_NUMBER;
        out->number = json_number_value(v);
    } else if (json_is_boolean(v)) {
        out->type = TDM_RULE_BOOL;
        out->boolean = json_is_true(v);
    } else {
        return TDM_ENOTFOUND; /* arrays and objects are not rule values */
    }
    return 0;
}

void tdm__route_release(tdm__route *r)
{
    json_decref(r->proposal);
    json_decref(r->reasons);
    json_decref(r->alternatives);
    r->proposal = NULL;
    r->reasons = NULL;
    r->alternatives = NULL;
}

int tdm__route_step(tdm_engine *e, proc_state *ps, size_t step, json_t *fields, tdm__route *out,
                    tdm_error *err)
{
    const tdm_step_info *info = tdm_process_step(ps->p, step);
    step_model *sm = ps->steps[step];
    memset(out, 0, sizeof *out);
    out->step = step;
    if (info->allocation == TDM_ALLOC_HUMAN) {
        out->why = "human";
        return 0;
    }
    int rc = tdm__model_ensure(e, sm, err);
    if (rc != 0)
        return rc;

    item_values iv;
    tdm__item_values(info, fields, &iv);
    tdm_prediction p;
    int have = 0, found, paused;
    double threshold;
    pthread_rwlock_rdlock(&sm->lock);
    if (sm->model != NULL && tdm_model_label_count(sm->model) > 0) {
        rc = tdm_model_predict(sm->model, iv.v, 1, 0, &p);
        if (rc == 0) {
            have = 1;
            out->proposal = json_string(tdm_model_label(sm->model, p.top[0].label));
            out->confidence = p.top[0].probability;
            out->model_version = sm->version;
        }
    }
    found = sm->found;
    threshold = sm->threshold;
    paused = sm->paused;
    pthread_rwlock_unlock(&sm->lock);
    if (rc != 0)
        return tdm__error(err, rc, "step %s: prediction failed: %s", info->id, tdm_strerror(rc));
    if (!have) {
        out->why = "no_model";
        out->census = 1;
        return 0;
    }
    /* Whatever the rules below say, no threshold could let the item past a person. */
    out->census = info->allocation == TDM_ALLOC_HYBRID || e->route_mode == TDM__ROUTE_ALL_HUMAN ||
                  (e->route_mode == TDM__ROUTE_GUARANTEED && (paused || !found));

    /* A rule that cannot be evaluated counts as fired: when in doubt, a person looks. */
    size_t fired = SIZE_MAX;
    if (tdm_process_review(ps->p, step, tdm__json_lookup, fields, json_string_value(out->proposal),
                           out->confidence, &fired) != 0 &&
        fired == SIZE_MAX)
        fired = 0;
    if (info->allocation == TDM_ALLOC_HYBRID)
        out->why = "hybrid";
    else if (tdm_process_adverse(ps->p, step, json_string_value(out->proposal)))
        out->why = "adverse_outcome";
    else if (fired != SIZE_MAX) {
        out->why = "review_rule";
        out->rule = info->rules[fired];
    } else if (e->route_mode == TDM__ROUTE_ALL_HUMAN) {
        /* Simulation only (simulate.c): the all-human policy it compares against. */
        out->why = "all_human";
    } else if (e->route_mode == TDM__ROUTE_FIXED) {
        /* Simulation only: a fixed confidence threshold, as hosted review services use,
         * with neither a certificate nor audit samples behind it. */
        if (out->confidence >= e->route_fixed)
            out->decided = 1;
        else
            out->why = "below_threshold";
    } else if (paused)
        out->why = "paused";
    else if (!found)
        out->why = "no_threshold";
    else if (!(out->confidence >= threshold))
        out->why = "below_threshold";
    else if (info->audit_sample > 0 && tdm__draw(e) < info->audit_sample) {
        out->why = "audit_sample";
        out->sample_rate = info->audit_sample;
    } else
        out->decided = 1;
    if (out->decided)
        return 0;

    /* A person will see this proposal: say which features drove it and what else it might
     * be. Only now, because naming features costs a second pass over the item. */
    pthread_rwlock_rdlock(&sm->lock);
    if (sm->model != NULL && sm->version == out->model_version &&
        tdm_model_predict(sm->model, iv.v, 1 + TDM__ALTERNATIVES, TDM_PREDICT_REASONS, &p) == 0) {
        out->reasons = json_array();
        for (size_t i = 0; i < p.n_reasons; i++)
            json_array_append_new(out->reasons,
                                  json_pack("{s:s, s:f}", "feature", p.reasons[i].feature, "weight",
                                            p.reasons[i].weight));
        out->alternatives = json_array();
        for (size_t i = 1; i < p.n_top; i++)
            json_array_append_new(out->alternatives,
                                  json_pack("{s:s, s:f}", "value",
                                            tdm_model_label(sm->model, p.top[i].label),
                                            "confidence", p.top[i].probability));
    }
    pthread_rwlock_unlock(&sm->lock);
    return 0;
}
