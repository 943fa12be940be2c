/*
 * fuzz_table.c — a libFuzzer target for the table readers (src/data/csv.c and jsonl.c).
 *
 * Every input is read three times: as CSV and as JSON Lines with the default limits, and by
 * format detection with small limits, so that the limit paths are reached too. Each table
 * that is read is then walked cell by cell to check the invariants the rest of tandem relies
 * on: a present cell is a C string of exactly its stated length, rows start on increasing
 * lines, every column is found by its name, and inferring a kind never fails.
 * See fuzz/README.md for how to build and run it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/learn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void walk(const tdm_table *t)
{
    size_t rows = tdm_table_row_count(t), cols = tdm_table_column_count(t);
    for (size_t c = 0; c < cols; c++) {
        const char *name = tdm_table_column_name(t, c);
        size_t found;
        check(name != NULL && name[0] != '\0');
        check(tdm_table_column_index(t, name, &found) == 0 && found == c);
        tdm_field_kind kind = tdm_table_infer_kind(t, c);
        check(strcmp(tdm_field_kind_name(kind), "unknown") != 0);
    }
    size_t last_line = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t line = tdm_table_row_line(t, r);
        check(line > last_line);
        last_line = line;
        for (size_t c = 0; c < cols; c++) {
            size_t len;
            const char *cell = tdm_table_cell(t, r, c, &len);
            check(cell == NULL ? len == 0 : strlen(cell) == len);
        }
    }
}

static void read_and_walk(const uint8_t *data, size_t size, tdm_table_format format,
                          const tdm_table_limits *limits)
{
    tdm_table *t = NULL;
    tdm_error err;
    int rc = tdm_table_read_buffer((const char *)data, size, format, "fuzz", limits, &t, &err);
    if (rc == 0) {
        check(t != NULL);
        walk(t);
        tdm_table_free(t);
    } else {
        check(t == NULL && rc < 0 && err.code == rc && err.message[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_and_walk(data, size, TDM_FORMAT_CSV, NULL);
    read_and_walk(data, size, TDM_FORMAT_JSONL, NULL);

    tdm_table_limits small;
    tdm_table_limits_init(&small);
    small.max_record_bytes = 64;
    small.max_columns = 8;
    small.max_rows = 16;
    read_and_walk(data, size, TDM_FORMAT_AUTO, &small);
    return 0;
}
