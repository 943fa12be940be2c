/*
 * fuzz_model.c — libFuzzer target for the model file reader: arbitrary bytes go to
 * tdm_model_deserialize(). Most inputs fail the magic or the checksum, so half the time the
 * target first repairs the header's length and the trailing checksum, letting the fuzzer
 * reach the field-by-field checks behind them. Any model that loads must predict, learn a
 * new label and serialise again without trouble.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tandem/learn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(tdm_model *m)
{
    size_t nf = tdm_model_field_count(m);
    tdm_value values[8] = {
        {"lost card 12", 12}, {"A11", 3}, {"42", 2}, {NULL, 0}, {"", 0}, {"x", 1},
        {"-1e3", 4},          {"why?", 4}};
    if (nf > 8)
        return;
    tdm_prediction p;
    tdm_model_predict(m, values, 1, TDM_PREDICT_REASONS, &p);
    tdm_model_update(m, values, "fuzz-new-label", 1.0, NULL);
    unsigned char *buf;
    size_t len;
    if (tdm_model_serialize(m, &buf, &len) == 0)
        tdm_free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    unsigned char *buf = malloc(size + 32);
    if (buf == NULL)
        return 0;
    size_t len = size;
    memcpy(buf, data, size);
    if (size > 0 && (data[0] & 1) && size >= 32) {
        /* Repair: signature, version 1, flags 0, true length, true checksum. */
        memcpy(buf, "TDMMODEL", 8);
        buf[8] = 1, buf[9] = buf[10] = buf[11] = 0;
        memset(buf + 12, 0, 4);
        uint64_t payload = (uint64_t)(len - 32);
        for (int i = 0; i < 8; i++)
            buf[16 + i] = (unsigned char)(payload >> (8 * i));
        uint64_t sum = XXH3_64bits(buf, len - 8);
        for (int i = 0; i < 8; i++)
            buf[len - 8 + (size_t)i] = (unsigned char)(sum >> (8 * i));
    }
    tdm_model *m = NULL;
    if (tdm_model_deserialize(buf, len, "fuzz", &m, NULL) == 0) {
        exercise(m);
        tdm_model_free(m);
    }
    free(buf);
    return 0;
}
