/*
 * fuzz_item.h — what the rule and process fuzz targets share: an abort-on-failure check and a
 * made-up item for rules to read. Included by one target each, so its functions are static.
 */
#ifndef TDM_FUZZ_ITEM_H
#define TDM_FUZZ_ITEM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/process.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

/* An item whose fields are made up from the bytes of the input: every type, and missing. */
typedef struct item {
    const uint8_t *data;
    size_t size;
} item;

static int lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out)
{
    const item *it = ctx;
    check(name != NULL && len > 0 && strlen(name) == len);
    size_t h = len;
    for (size_t i = 0; i < len; i++)
        h = h * 31 + (unsigned char)name[i];
    size_t at = it->size ? h % it->size : 0;
    switch (h % 6) {
    case 0:
        return TDM_ENOTFOUND;
    case 1:
        out->type = TDM_RULE_NULL;
        return 0;
    case 2:
        out->type = TDM_RULE_BOOL;
        out->boolean = (int)(h & 1);
        return 0;
    case 3:
        out->type = TDM_RULE_NUMBER;
        out->number = (double)(h % 20001) - 10000.0;
        if (h % 7 == 0)
            out->number = h % 2 ? NAN : INFINITY;
        return 0;
    default:
        out->type = TDM_RULE_STRING;
        out->string = (const char *)it->data + at;
        out->length = (it->size - at) < 64 ? it->size - at : 64;
        return 0;
    }
}

#endif /* TDM_FUZZ_ITEM_H */
