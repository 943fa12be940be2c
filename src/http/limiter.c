/*
 * limiter.c — per-token rate limits: a token bucket for each token seen (http_int.h).
 *
 * Each token may make `rate` requests a second on average, with bursts of up to `burst`.
 * The buckets sit in a small open-addressing table keyed by token id (there are few tokens:
 * one per person and per integration); when it fills up, it is emptied, which forgives
 * everyone's recent use rather than refusing anyone wrongly. The clock is monotonic.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http_int.h"

#define LIMITER_SLOTS 4096 /* a power of two */

typedef struct bucket {
    char id[32]; /* "" when the slot is free */
    double tokens;
    double last; /* seconds, monotonic */
} bucket;

struct tdm__http_limiter {
    pthread_mutex_t lock;
    double rate, burst;
    size_t used;
    bucket slots[LIMITER_SLOTS];
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

tdm__http_limiter *tdm__http_limiter_new(double rate)
{
    if (!(rate > 0))
        return NULL;
    tdm__http_limiter *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    pthread_mutex_init(&l->lock, NULL);
    l->rate = rate;
    l->burst = rate < 1 ? 2 : 2 * rate;
    return l;
}

void tdm__http_limiter_free(tdm__http_limiter *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static size_t slot_of(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h & (LIMITER_SLOTS - 1));
}

double tdm__http_limiter_take(tdm__http_limiter *l, const char *id)
{
    if (l == NULL)
        return 0;
    double now = now_seconds(), wait = 0;
    pthread_mutex_lock(&l->lock);
    if (l->used >= LIMITER_SLOTS * 3 / 4) {
        memset(l->slots, 0, sizeof l->slots);
        l->used = 0;
    }
    size_t i = slot_of(id);
    while (l->slots[i].id[0] != '\0' && strcmp(l->slots[i].id, id) != 0)
        i = (i + 1) & (LIMITER_SLOTS - 1);
    bucket *b = &l->slots[i];
    if (b->id[0] == '\0') {
        strncpy(b->id, id, sizeof b->id - 1);
        b->tokens = l->burst;
        b->last = now;
        l->used++;
    }
    b->tokens = fmin(l->burst, b->tokens + (now - b->last) * l->rate);
    b->last = now;
    if (b->tokens >= 1)
        b->tokens -= 1;
    else
        wait = (1 - b->tokens) / l->rate;
    pthread_mutex_unlock(&l->lock);
    return wait;
}
