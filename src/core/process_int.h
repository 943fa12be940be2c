/*
 * process_int.h — what the rest of libtandem may know about a parsed process beyond
 * include/tandem/process.h: the schema's limits and the few details the public accessors
 * leave out.
 */
#ifndef TDM_CORE_PROCESS_INT_H
#define TDM_CORE_PROCESS_INT_H

#include <stddef.h>

#include "tandem/process.h"

#define TDM__PROCESS_MAX_BYTES  ((size_t)1 << 20) /* a process file, in bytes */
#define TDM__PROCESS_MAX_STEPS  64
#define TDM__PROCESS_MAX_LABELS 10000 /* per step */
#define TDM__PROCESS_MAX_INPUTS 256   /* per step */
#define TDM__PROCESS_MAX_RULES  100   /* review_when rules per step */
#define TDM__PROCESS_MAX_KPIS   100

/* The target written next to KPI `i` ({name: ..., target: ...}), or NULL when none was. */
const char *tdm__process_kpi_target(const tdm_process *p, size_t i);

#ifdef TDM_DEBUG
/*
 * Test hook: when set to n > 0, the n-th allocation process.c makes from then on fails (the
 * counter then stays at 0). libyaml's own allocations and the rule compiler's are not
 * counted (see tdm__rule_alloc_fail_countdown for the latter).
 */
extern size_t tdm__process_alloc_fail_countdown;
#endif

#endif /* TDM_CORE_PROCESS_INT_H */
