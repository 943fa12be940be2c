/*
 * mem.c — memory for the HTTP layer: a per-request arena (nginx and h2o pools) and a
 * growable buffer with a hard cap (curl's dynbuf), so no request body or answer grows
 * without bound.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "util/util.h"

/* ---- arena -------------------------------------------------------------------------------- */

#define ARENA_BLOCK 4096

struct tdm__arena_block {
    tdm__arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

void tdm__arena_init(tdm__arena *a, size_t max)
{
    a->head = NULL;
    a->used_total = 0;
    a->max = max;
}

void *tdm__arena_alloc(tdm__arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > a->max || a->used_total > a->max - n)
        return NULL;
    size_t rounded = (n + align - 1) & ~(align - 1);
    if (rounded < n)
        return NULL;
    tdm__arena_block *b = a->head;
    if (b == NULL || b->size - b->used < rounded) {
        size_t size = rounded > ARENA_BLOCK ? rounded : ARENA_BLOCK;
        b = malloc(sizeof *b + size);
        if (b == NULL)
            return NULL;
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    a->used_total += n;
    return p;
}

char *tdm__arena_strndup(tdm__arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = tdm__arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void tdm__arena_release(tdm__arena *a)
{
    tdm__arena_block *b = a->head;
    while (b != NULL) {
        tdm__arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

/* ---- capped buffer ------------------------------------------------------------------------ */

void tdm__buf_init(tdm__buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

int tdm__buf_append(tdm__buf *b, const void *data, size_t n)
{
    if (n > b->max || b->len > b->max - n || b->len + n == SIZE_MAX)
        return TDM_ETOOBIG;
    size_t need = b->len + n + 1; /* and the NUL; cannot overflow since max < SIZE_MAX */
    if (need > b->alloc) {
        size_t alloc = b->alloc ? b->alloc : 256;
        while (alloc < need)
            alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
        /* Never reserve much more than the cap allows. */
        if (alloc > b->max + 1)
            alloc = b->max + 1 > need ? b->max + 1 : need;
        char *p = realloc(b->data, alloc);
        if (p == NULL)
            return TDM_ENOMEM;
        b->data = p;
        b->alloc = alloc;
    }
    if (n > 0)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

char *tdm__buf_take(tdm__buf *b, size_t *len)
{
    char *p = b->data;
    if (p == NULL) {
        p = malloc(1);
        if (p == NULL)
            return NULL;
        p[0] = '\0';
    }
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

void tdm__buf_release(tdm__buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}
