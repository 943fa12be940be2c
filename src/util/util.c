/*
 * util.c — error strings, assertion failures, the random number generator and the clock.
 */
#define _POSIX_C_SOURCE 200809L

#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *tdm_strerror(int code)
{
    switch (code) {
    case TDM_OK:
        return "success";
    case TDM_ENOMEM:
        return "out of memory";
    case TDM_EINVAL:
        return "invalid argument";
    case TDM_EIO:
        return "input/output error";
    case TDM_EPARSE:
        return "malformed input";
    case TDM_ECORRUPT:
        return "corrupt or foreign file";
    case TDM_EVERSION:
        return "unsupported format version";
    case TDM_ENOTFOUND:
        return "not found";
    case TDM_ETOOBIG:
        return "input exceeds a limit";
    case TDM_ENODATA:
        return "not enough data";
    case TDM_ECONFLICT:
        return "conflict";
    case TDM_EBUSY:
        return "busy";
    case TDM_EAUTH:
        return "not authenticated";
    case TDM_EFORBIDDEN:
        return "forbidden";
    default:
        return "unknown error";
    }
}

void tdm_free(void *ptr)
{
    free(ptr);
}

const char *tdm_version(void)
{
    return TDM_VERSION_STRING;
}

void tdm__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "tandem: internal invariant failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

int tdm__error(tdm_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->field[0] = '\0';
    }
    return code;
}

int tdm__error_code(tdm_error *err, int code)
{
    if (err != NULL) {
        if (err->code == TDM_OK || err->message[0] == '\0')
            snprintf(err->message, sizeof err->message, "%s", tdm_strerror(code));
        err->code = code;
    }
    return code;
}

void tdm__error_clear(tdm_error *err)
{
    if (err != NULL) {
        err->code = TDM_OK;
        err->message[0] = '\0';
        err->field[0] = '\0';
    }
}

int tdm__error_field(tdm_error *err, int code, const char *field, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    }
    return code;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tdm__rng_seed(tdm__rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

uint64_t tdm__rng_below(tdm__rng *rng, uint64_t bound)
{
    /* Rejection sampling: discard the top sliver of the range that would bias the modulo. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
        x = tdm__rng_next(rng);
    } while (x >= limit);
    return x % bound;
}

double tdm__rng_double(tdm__rng *rng)
{
    return (double)(tdm__rng_next(rng) >> 11) * 0x1.0p-53;
}

double tdm__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
