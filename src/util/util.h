/*
 * util.h — small private helpers shared by every part of libtandem: error reporting,
 * assertions, a seeded random number generator and a monotonic clock.
 */
#ifndef TDM_UTIL_UTIL_H
#define TDM_UTIL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/tandem.h"

/*
 * Invariants. TDM_ASSERT is compiled in when TDM_DEBUG is defined (the test and sanitizer
 * builds); a failing invariant is a bug in tandem, never a user error, so it aborts.
 */
#ifdef TDM_DEBUG
#define TDM_ASSERT(cond) ((cond) ? (void)0 : tdm__assert_fail(#cond, __FILE__, __LINE__))
#else
#define TDM_ASSERT(cond) ((void)0)
#endif

void tdm__assert_fail(const char *expr, const char *file, int line);

#if defined(__GNUC__)
#define TDM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define TDM_LIKELY(x)         __builtin_expect(!!(x), 1)
#define TDM_UNLIKELY(x)       __builtin_expect(!!(x), 0)
#else
#define TDM_PRINTF(fmt, args)
#define TDM_LIKELY(x)   (x)
#define TDM_UNLIKELY(x) (x)
#endif

/*
 * Records `code` and a formatted message in `err` (which may be NULL) and returns `code`,
 * so a failure path reads `return tdm__error(err, TDM_EPARSE, "%s:%zu: ...", ...)`.
 */
int tdm__error(tdm_error *err, int code, const char *fmt, ...) TDM_PRINTF(3, 4);

/* Like tdm__error(), and names the input field at fault (copied into err->field). */
int tdm__error_field(tdm_error *err, int code, const char *field, const char *fmt, ...)
    TDM_PRINTF(4, 5);

/* Records `code` with tdm_strerror(code) as its message, unless `err` already has one. */
int tdm__error_code(tdm_error *err, int code);

/* Clears `err` (may be NULL) to TDM_OK and an empty message. */
void tdm__error_clear(tdm_error *err);

/* xoshiro256** seeded through splitmix64: fast, reproducible across platforms. */
typedef struct tdm__rng {
    uint64_t s[4];
} tdm__rng;

void tdm__rng_seed(tdm__rng *rng, uint64_t seed);

/* The next 64 random bits. Inline: training draws one per two features it may drop. */
static inline uint64_t tdm__rng_next(tdm__rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}
/* Uniform in [0, bound) without modulo bias; bound must be > 0. */
uint64_t tdm__rng_below(tdm__rng *rng, uint64_t bound);
/* Uniform double in [0, 1). */
double tdm__rng_double(tdm__rng *rng);

/* Seconds from a monotonic clock; only differences are meaningful. */
double tdm__now(void);

/* Sets the calling thread's nice value (0 normal, 19 the lowest priority), for background
 * work that must not take CPU from requests; Linux only. Returns 0, or -1 where the system
 * refuses or does not keep nice values per thread. (src/util/thread.c) */
int tdm__thread_nice(int nice);

/* Overflow-checked size arithmetic: returns 0 and stores the result, or -1 on overflow. */
static inline int tdm__size_mul(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

#endif /* TDM_UTIL_UTIL_H */
