/*
 * rule.h — mandatory-review rules: a tiny expression language over an item's fields and the
 * AI's proposal (docs/process-file.md, "Review rules").
 *
 * A rule is compiled once, when its process file is parsed, into a compact program: at most
 * TDM__RULE_MAX_NODES nodes in postfix order, with its string literals, field names and list
 * items in the same allocation. Evaluating it walks the program once with a value stack no
 * deeper than the node count, allocates nothing, does no I/O besides the caller's field
 * lookups, and takes time linear in the node count (plus the lengths of the strings it
 * compares, and at most TDM__RULE_MAX_LIST items per `in`).
 */
#ifndef TDM_POLICY_RULE_H
#define TDM_POLICY_RULE_H

#include <stddef.h>

#include "tandem/process.h"

#define TDM__RULE_MAX_NODES  256  /* parts of one rule: values, names, operators, lists */
#define TDM__RULE_MAX_STRING 1024 /* bytes of one string literal, after unescaping */
#define TDM__RULE_MAX_LIST   1000 /* items of one list */
#define TDM__RULE_MAX_SOURCE 4096 /* bytes of one rule's source */
#define TDM__RULE_MAX_DEPTH  64   /* nesting of parentheses, `not` and unary minus */

typedef struct tdm__rule tdm__rule;

/*
 * Compiles the `len` bytes at `src` (need not be NUL-terminated). On success returns 0 and
 * *out is a new rule you own (tdm__rule_free()). On failure *out is NULL and the return is
 * TDM_EINVAL (a mistake in the rule: `msg` gets a sentence saying what is wrong and how to
 * fix it, without the column, which goes to *err_column, 1-based, counted in bytes) or
 * TDM_ENOMEM. `err_column` may be NULL; `msg` may be NULL when msgcap is 0.
 */
int tdm__rule_compile(const char *src, size_t len, tdm__rule **out, size_t *err_column, char *msg,
                      size_t msgcap);

/*
 * Evaluates a rule against one item. `lookup` is called for every item field the rule names,
 * once per mention, in source order; it may be NULL (every field is then missing). `label` is
 * the AI's proposed value (NULL: none, the rule sees null) and `confidence` its confidence
 * (a non-finite value is seen as null). Sets *fired to 1 when the rule evaluates to boolean
 * true and to 0 otherwise. Returns 0; an error a lookup returns other than TDM_ENOTFOUND
 * (which means "missing", so null), which is passed on; or TDM_EINVAL when a lookup hands
 * back a malformed value (an unknown type, or a NULL string with a non-zero length).
 */
int tdm__rule_eval(const tdm__rule *r, tdm_rule_lookup lookup, void *ctx, const char *label,
                   double confidence, int *fired);

/* The number of nodes in a compiled rule (for tests and diagnostics). */
size_t tdm__rule_node_count(const tdm__rule *r);

/* Frees a rule. NULL is ignored. */
void tdm__rule_free(tdm__rule *r);

#ifdef TDM_DEBUG
/* Test hook: when set to n > 0, the n-th allocation the compiler makes from then on fails. */
extern size_t tdm__rule_alloc_fail_countdown;
#endif

#endif /* TDM_POLICY_RULE_H */
