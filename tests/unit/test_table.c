/*
 * test_table.c — unit tests for tdm_table (src/data/): CSV and JSON Lines reading, limits,
 * format detection, the accessors and column-kind inference.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "data/table_int.h"
#include "tandem/learn.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static tdm_table *read_ok(const char *text, tdm_table_format format, const char *name)
{
    tdm_table *t = NULL;
    tdm_error err;
    int rc = tdm_table_read_buffer(text, strlen(text), format, name, NULL, &t, &err);
    if (rc != 0)
        print_error("unexpected failure: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(err.code, 0);
    assert_non_null(t);
    return t;
}

static tdm_table *csv_ok(const char *text)
{
    return read_ok(text, TDM_FORMAT_CSV, "t.csv");
}

static tdm_table *jsonl_ok(const char *text)
{
    return read_ok(text, TDM_FORMAT_JSONL, "t.jsonl");
}

/* Reads text that must fail with `code`, and checks that the message holds `needle`. */
static void read_fails(const char *text, size_t len, tdm_table_format format, const char *name,
                       const tdm_table_limits *limits, int code, const char *needle)
{
    tdm_table *t = (tdm_table *)&t; /* not NULL, to see that it is cleared */
    tdm_error err;
    int rc = tdm_table_read_buffer(text, len, format, name, limits, &t, &err);
    if (rc != code || strstr(err.message, needle) == NULL)
        print_error("rc %d (want %d), message \"%s\" (want \"%s\")\n", rc, code, err.message,
                    needle);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_null(t);
    assert_non_null(strstr(err.message, needle));
}

static void csv_fails(const char *text, int code, const char *needle)
{
    read_fails(text, strlen(text), TDM_FORMAT_CSV, "t.csv", NULL, code, needle);
}

static void jsonl_fails(const char *text, int code, const char *needle)
{
    read_fails(text, strlen(text), TDM_FORMAT_JSONL, "t.jsonl", NULL, code, needle);
}

static void assert_cell(const tdm_table *t, size_t row, size_t col, const char *want)
{
    size_t len = 12345;
    const char *got = tdm_table_cell(t, row, col, &len);
    if (want == NULL) {
        assert_null(got);
        assert_int_equal(len, 0);
        return;
    }
    assert_non_null(got);
    assert_int_equal(len, strlen(want));
    assert_string_equal(got, want);
}

static void assert_columns(const tdm_table *t, size_t n, ...)
{
    va_list ap;
    va_start(ap, n);
    assert_int_equal(tdm_table_column_count(t), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(tdm_table_column_name(t, i), va_arg(ap, const char *));
    va_end(ap);
}

/* A scratch directory for the tests that read real files, removed at the end. */
static char scratch_dir[64];

static const char *scratch_path(const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", scratch_dir, file);
    return buf;
}

static const char *write_scratch(const char *file, const char *text, char *buf, size_t size)
{
    scratch_path(file, buf, size);
    FILE *f = fopen(buf, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return buf;
}

static int make_scratch(void **state)
{
    (void)state;
    snprintf(scratch_dir, sizeof scratch_dir, "/tmp/tdm_test_table_XXXXXX");
    return mkdtemp(scratch_dir) != NULL ? 0 : -1;
}

static int remove_scratch(void **state)
{
    (void)state;
    static const char *files[] = {"a.csv", "b.dat", "c.JSONL", "d.ndjson", "e.json", "big.csv"};
    char buf[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(scratch_path(files[i], buf, sizeof buf));
    return rmdir(scratch_dir);
}

/* ------------------------------------------------------------------------------------------ */
/* CSV                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_csv_plain(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("id,text,label\n1,lost card,cards\n2,refund please,refunds\n");
    assert_string_equal(tdm_table_name(t), "t.csv");
    assert_columns(t, 3, "id", "text", "label");
    assert_int_equal(tdm_table_row_count(t), 2);
    assert_cell(t, 0, 0, "1");
    assert_cell(t, 0, 1, "lost card");
    assert_cell(t, 1, 2, "refunds");
    assert_int_equal(tdm_table_row_line(t, 0), 2);
    assert_int_equal(tdm_table_row_line(t, 1), 3);
    tdm_table_free(t);
}

static void test_csv_quotes(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("a,b,c\n"
                          "\"x, y\",\"say \"\"hi\"\"\",\"line1\nline2\"\n"
                          "\"crlf\r\ninside\",\"\"\"\",\"\"\n"
                          "\"a\nb\nc\",2,3\n"
                          "last,\"q\",x\n");
    assert_int_equal(tdm_table_row_count(t), 4);
    assert_cell(t, 0, 0, "x, y");
    assert_cell(t, 0, 1, "say \"hi\"");
    assert_cell(t, 0, 2, "line1\nline2");
    assert_cell(t, 1, 0, "crlf\r\ninside");
    assert_cell(t, 1, 1, "\"");
    assert_cell(t, 1, 2, "");
    assert_cell(t, 2, 0, "a\nb\nc");
    assert_cell(t, 3, 1, "q");
    /* Rows start where their record starts, counting the newlines inside quoted fields. */
    assert_int_equal(tdm_table_row_line(t, 0), 2);
    assert_int_equal(tdm_table_row_line(t, 1), 4);
    assert_int_equal(tdm_table_row_line(t, 2), 6);
    assert_int_equal(tdm_table_row_line(t, 3), 9);
    tdm_table_free(t);
}

static void test_csv_quoted_header(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("\"first, name\",\"say \"\"x\"\"\"\n1,2\n");
    assert_columns(t, 2, "first, name", "say \"x\"");
    size_t col;
    assert_int_equal(tdm_table_column_index(t, "say \"x\"", &col), 0);
    assert_int_equal(col, 1);
    tdm_table_free(t);
}

static void test_csv_crlf(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("a,b\r\n1,2\r\n3,\"4\"\r\n");
    assert_columns(t, 2, "a", "b");
    assert_int_equal(tdm_table_row_count(t), 2);
    assert_cell(t, 0, 1, "2");
    assert_cell(t, 1, 0, "3");
    assert_cell(t, 1, 1, "4");
    assert_int_equal(tdm_table_row_line(t, 1), 3);
    tdm_table_free(t);
}

static void test_csv_bom(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("\xEF\xBB\xBFname,age\nann,41\n");
    assert_columns(t, 2, "name", "age");
    assert_cell(t, 0, 0, "ann");
    size_t col;
    assert_int_equal(tdm_table_column_index(t, "name", &col), 0);
    assert_int_equal(col, 0);
    tdm_table_free(t);
}

static void test_csv_blank_lines(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("\n\na,b\n\n1,2\r\n\r\n\n3,4\n\n\n");
    assert_int_equal(tdm_table_row_count(t), 2);
    assert_int_equal(tdm_table_row_line(t, 0), 5);
    assert_int_equal(tdm_table_row_line(t, 1), 8);
    assert_cell(t, 1, 1, "4");
    tdm_table_free(t);
}

static void test_csv_no_final_newline(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("a,b\n1,2");
    assert_int_equal(tdm_table_row_count(t), 1);
    assert_cell(t, 0, 1, "2");
    tdm_table_free(t);

    t = csv_ok("a,b\n1,\"2\"");
    assert_cell(t, 0, 1, "2");
    tdm_table_free(t);

    t = csv_ok("a,b\r\n1,2\r");
    assert_int_equal(tdm_table_row_count(t), 1);
    assert_cell(t, 0, 1, "2");
    tdm_table_free(t);

    /* A trailing comma is one more, empty field. */
    t = csv_ok("a,b\n1,");
    assert_cell(t, 0, 1, "");
    tdm_table_free(t);
}

static void test_csv_empty_fields(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("a,b,c\n,,\n1,,\"\"\n");
    assert_int_equal(tdm_table_row_count(t), 2);
    for (size_t c = 0; c < 3; c++)
        assert_cell(t, 0, c, "");
    assert_cell(t, 1, 0, "1");
    assert_cell(t, 1, 1, "");
    assert_cell(t, 1, 2, "");
    tdm_table_free(t);
}

static void test_csv_header_only(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("a,b\n");
    assert_columns(t, 2, "a", "b");
    assert_int_equal(tdm_table_row_count(t), 0);
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_CATEGORICAL);
    tdm_table_free(t);

    t = csv_ok("single");
    assert_columns(t, 1, "single");
    assert_int_equal(tdm_table_row_count(t), 0);
    tdm_table_free(t);
}

static void test_csv_errors(void **state)
{
    (void)state;
    /* The unterminated field starts on line 3; the message must name that line. */
    csv_fails("a,b\n1,2\n3,\"abc\n\ndef\n", TDM_EPARSE, "t.csv:3: column \"b\": unterminated");
    csv_fails("a,b\n1,2\nx\"y,3\n", TDM_EPARSE, "t.csv:3: column \"a\": a quote");
    csv_fails("a,b\n1,\"x\"y\n", TDM_EPARSE, "t.csv:2: column \"b\": text after the closing");
    csv_fails("a,b\n1,\"x\" \n", TDM_EPARSE, "t.csv:2:");
    /* Text after a closing quote that follows embedded newlines is reported where it is. */
    csv_fails("a,b\n1,\"x\n\"y\n", TDM_EPARSE, "t.csv:3:");
    csv_fails("a,b,c\n1,2,3\n4,5\n", TDM_EPARSE,
              "t.csv:3: expected 3 fields (as in the header), found 2");
    csv_fails("a,b,c\n1,2,3\n\n4,5,6,7\n", TDM_EPARSE,
              "t.csv:4: expected 3 fields (as in the header), found 4");
    csv_fails("a,b,c\n\"x\ny\",2\n", TDM_EPARSE, "t.csv:2: expected 3 fields");
    csv_fails("a,b,a\n1,2,3\n", TDM_EPARSE, "t.csv:1: header field 3 repeats the name \"a\"");
    csv_fails("\n\na,,b\n", TDM_EPARSE, "t.csv:3: header field 2 is empty");
    csv_fails("a,b\n1,2\n\"never closed\n", TDM_EPARSE, "t.csv:3:");
    csv_fails("\"a\nb\n", TDM_EPARSE, "t.csv:1: header field 1: unterminated");
    csv_fails("a,b\n1,2\rx,y\n", TDM_EPARSE, "t.csv:2: column \"b\": a carriage return");
    csv_fails("", TDM_EPARSE, "t.csv: no header row");
    csv_fails("\n\r\n\n", TDM_EPARSE, "t.csv: no header row");
    read_fails("a,b\n1,x\0y\n", 10, TDM_FORMAT_CSV, "t.csv", NULL, TDM_EPARSE,
               "t.csv:2: column \"b\": a NUL byte");
    read_fails("a,b\n1,\"\nx\0y\"\n", 13, TDM_FORMAT_CSV, "t.csv", NULL, TDM_EPARSE,
               "t.csv:3: column \"b\": a NUL byte");
}

static void test_csv_limits(void **state)
{
    (void)state;
    tdm_table_limits lim;
    tdm_table_limits_init(&lim);
    assert_int_equal(lim.max_bytes, (size_t)1 << 30);
    assert_int_equal(lim.max_record_bytes, (size_t)16 << 20);
    assert_int_equal(lim.max_columns, 4096);
    assert_int_equal(lim.max_rows, 100000000);

    const char *wide = "a,b,c,d\n1,2,3,4\n";
    lim.max_columns = 3;
    read_fails(wide, strlen(wide), TDM_FORMAT_CSV, "t.csv", &lim, TDM_ETOOBIG,
               "t.csv:1: the header has more than 3 fields (the max_columns limit)");
    lim.max_columns = 4;
    tdm_table *t = NULL;
    assert_int_equal(
        tdm_table_read_buffer(wide, strlen(wide), TDM_FORMAT_CSV, "t.csv", &lim, &t, NULL), 0);
    tdm_table_free(t);

    tdm_table_limits_init(&lim);
    lim.max_record_bytes = 10;
    const char *long_record = "a,b\n1,2\n\n12345,6789012\n";
    read_fails(long_record, strlen(long_record), TDM_FORMAT_CSV, "t.csv", &lim, TDM_ETOOBIG,
               "t.csv:4: the record starting here is longer than 10 bytes");
    /* Exactly at the limit is fine; the line ending does not count. */
    const char *at_limit = "a,b\r\n1234,56789\r\n";
    assert_int_equal(
        tdm_table_read_buffer(at_limit, strlen(at_limit), TDM_FORMAT_CSV, "t.csv", &lim, &t, NULL),
        0);
    tdm_table_free(t);

    tdm_table_limits_init(&lim);
    lim.max_rows = 2;
    const char *rows = "a\n1\n2\n3\n";
    read_fails(rows, strlen(rows), TDM_FORMAT_CSV, "t.csv", &lim, TDM_ETOOBIG,
               "t.csv:4: more than 2 rows (the max_rows limit)");

    tdm_table_limits_init(&lim);
    lim.max_bytes = 5;
    read_fails(rows, strlen(rows), TDM_FORMAT_CSV, "t.csv", &lim, TDM_ETOOBIG,
               "t.csv: the input is 8 bytes, over the max_bytes limit of 5");

    /* A limit left at 0 takes its default. */
    memset(&lim, 0, sizeof lim);
    assert_int_equal(
        tdm_table_read_buffer(rows, strlen(rows), TDM_FORMAT_CSV, "t.csv", &lim, &t, NULL), 0);
    assert_int_equal(tdm_table_row_count(t), 3);
    tdm_table_free(t);
}

static void test_csv_many_rows(void **state)
{
    (void)state;
    /* Enough rows and columns to make every array grow several times. */
    size_t rows = 5000, cap = 64 + rows * 40;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = (size_t)snprintf(buf, cap, "id,x,\"quoted, name\"\n");
    for (size_t r = 0; r < rows; r++)
        n += (size_t)snprintf(buf + n, cap - n, "%zu,%zu.5,\"v \"\"%zu\"\"\"\n", r, r * 3, r);
    tdm_table *t = read_ok(buf, TDM_FORMAT_AUTO, NULL);
    assert_string_equal(tdm_table_name(t), "<buffer>");
    assert_int_equal(tdm_table_row_count(t), rows);
    char want[64];
    for (size_t r = 0; r < rows; r += 997) {
        snprintf(want, sizeof want, "%zu", r);
        assert_cell(t, r, 0, want);
        snprintf(want, sizeof want, "v \"%zu\"", r);
        assert_cell(t, r, 2, want);
        assert_int_equal(tdm_table_row_line(t, r), r + 2);
    }
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_NUMERIC);
    assert_int_equal(tdm_table_infer_kind(t, 1), TDM_FIELD_NUMERIC);
    assert_int_equal(tdm_table_infer_kind(t, 2), TDM_FIELD_TEXT);
    tdm_table_free(t);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON Lines                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Which columns tandem submit and tandem simulate send as JSON numbers: every value a number
 * as JSON writes one, empty cells aside, and at least one value. */
static void test_column_is_json_number(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("a,b,c,d,e,f,g,h\n"
                          "1,-0.5,007,,1e3,x,1.,12\n"
                          "20,3.25,1,,-2E-7,1,2,\n");
    static const int want[] = {1, 1, 0, 0, 1, 0, 0, 1};
    for (size_t c = 0; c < 8; c++)
        assert_int_equal(tdm_table_column_is_json_number(t, c), want[c]);
    assert_int_equal(tdm_table_column_is_json_number(t, 8), 0);
    assert_int_equal(tdm_table_column_is_json_number(NULL, 0), 0);
    tdm_table_free(t);
}

static void test_jsonl_types(void **state)
{
    (void)state;
    tdm_table *t = jsonl_ok("{\"s\": \"h\\u00e9 \\\"q\\\"\", \"i\": 42, \"neg\": -7, "
                            "\"big\": 9223372036854775807, \"r\": 1.5, \"tenth\": 0.1, "
                            "\"sum\": 0.30000000000000004, \"huge\": 1e300, \"whole\": 2.0, "
                            "\"t\": true, \"f\": false, \"n\": null, "
                            "\"a\": [1, \"x\", {\"k\": null}], \"o\": {\"x\": 1, \"y\": [true]}, "
                            "\"empty\": \"\"}\n");
    assert_columns(t, 15, "s", "i", "neg", "big", "r", "tenth", "sum", "huge", "whole", "t", "f",
                   "n", "a", "o", "empty");
    assert_int_equal(tdm_table_row_count(t), 1);
    assert_cell(t, 0, 0, "h\xC3\xA9 \"q\"");
    assert_cell(t, 0, 1, "42");
    assert_cell(t, 0, 2, "-7");
    assert_cell(t, 0, 3, "9223372036854775807");
    assert_cell(t, 0, 4, "1.5");
    assert_cell(t, 0, 5, "0.1");
    assert_cell(t, 0, 6, "0.30000000000000004");
    assert_cell(t, 0, 7, "1e+300");
    assert_cell(t, 0, 8, "2");
    assert_cell(t, 0, 9, "true");
    assert_cell(t, 0, 10, "false");
    assert_cell(t, 0, 11, NULL);
    assert_cell(t, 0, 12, "[1,\"x\",{\"k\":null}]");
    assert_cell(t, 0, 13, "{\"x\":1,\"y\":[true]}");
    assert_cell(t, 0, 14, "");
    tdm_table_free(t);
}

static void test_jsonl_union_of_keys(void **state)
{
    (void)state;
    tdm_table *t = jsonl_ok("{\"a\": 1}\n"
                            "{\"b\": \"x\", \"a\": 2}\n"
                            "{}\n"
                            "{\"c\": \"y\", \"a\": null}\n"
                            "{\"c\": \"z\", \"b\": \"w\", \"a\": 5}\n");
    assert_columns(t, 3, "a", "b", "c");
    assert_int_equal(tdm_table_row_count(t), 5);
    const char *want[5][3] = {{"1", NULL, NULL},
                              {"2", "x", NULL},
                              {NULL, NULL, NULL},
                              {NULL, NULL, "y"},
                              {"5", "w", "z"}};
    for (size_t r = 0; r < 5; r++) {
        assert_int_equal(tdm_table_row_line(t, r), r + 1);
        for (size_t c = 0; c < 3; c++)
            assert_cell(t, r, c, want[r][c]);
    }
    tdm_table_free(t);

    /* Rows read before any column existed. */
    t = jsonl_ok("{}\n{}\n{\"k\": \"v\"}\n");
    assert_columns(t, 1, "k");
    assert_int_equal(tdm_table_row_count(t), 3);
    assert_cell(t, 0, 0, NULL);
    assert_cell(t, 1, 0, NULL);
    assert_cell(t, 2, 0, "v");
    tdm_table_free(t);

    t = jsonl_ok("{}\n\n");
    assert_int_equal(tdm_table_column_count(t), 0);
    assert_int_equal(tdm_table_row_count(t), 1);
    tdm_table_free(t);
}

static void test_jsonl_many_columns_appear(void **state)
{
    (void)state;
    /* Row r holds keys k0 .. kr, so every row is narrower than the final table. */
    size_t rows = 300, cap = rows * rows * 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = 0;
    for (size_t r = 0; r < rows; r++) {
        n += (size_t)snprintf(buf + n, cap - n, "{");
        for (size_t k = 0; k <= r; k++)
            n += (size_t)snprintf(buf + n, cap - n, "%s\"k%zu\": %zu", k ? ", " : "", k,
                                  r * 1000 + k);
        n += (size_t)snprintf(buf + n, cap - n, "}\n");
    }
    tdm_table *t = jsonl_ok(buf);
    assert_int_equal(tdm_table_column_count(t), rows);
    assert_int_equal(tdm_table_row_count(t), rows);
    char want[32];
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < rows; c++) {
            snprintf(want, sizeof want, "%zu", r * 1000 + c);
            assert_cell(t, r, c, c <= r ? want : NULL);
        }
    }
    tdm_table_free(t);
    free(buf);
}

static void test_jsonl_blank_lines(void **state)
{
    (void)state;
    tdm_table *t = jsonl_ok("\n{\"a\": 1}\r\n  \t\r\n\n{\"a\": 2}");
    assert_int_equal(tdm_table_row_count(t), 2);
    assert_int_equal(tdm_table_row_line(t, 0), 2);
    assert_int_equal(tdm_table_row_line(t, 1), 5);
    assert_cell(t, 1, 0, "2");
    tdm_table_free(t);

    t = jsonl_ok("\xEF\xBB\xBF{\"a\": 1}\n");
    assert_columns(t, 1, "a");
    tdm_table_free(t);

    t = jsonl_ok("");
    assert_int_equal(tdm_table_row_count(t), 0);
    assert_int_equal(tdm_table_column_count(t), 0);
    tdm_table_free(t);
}

static void test_jsonl_errors(void **state)
{
    (void)state;
    jsonl_fails("{\"a\": 1}\n[1, 2]\n", TDM_EPARSE,
                "t.jsonl:2: expected a JSON object, found an array");
    jsonl_fails("{\"a\": 1}\n\"text\"\n", TDM_EPARSE,
                "t.jsonl:2: expected a JSON object, found a string");
    jsonl_fails("{\"a\": 1}\n\n3\n", TDM_EPARSE,
                "t.jsonl:3: expected a JSON object, found a number");
    jsonl_fails("null\n", TDM_EPARSE, "t.jsonl:1: expected a JSON object, found null");
    jsonl_fails("{\"a\": 1}\n\n{\"a\": }\n", TDM_EPARSE, "t.jsonl:3:");
    jsonl_fails("{\"a\": 1}\n{\"a\": 1} {\"a\": 2}\n", TDM_EPARSE, "t.jsonl:2:");
    jsonl_fails("{\"a\": 1,\n\"b\": 2}\n", TDM_EPARSE, "t.jsonl:1:");
    jsonl_fails("{\"a\": \"x\\u0000y\"}\n", TDM_EPARSE,
                "t.jsonl:1: key \"a\": the string holds a NUL");
    jsonl_fails("{\"a\": 1, \"a\": 2}\n", TDM_EPARSE, "t.jsonl:1:");
    jsonl_fails("{\"a\": 1}\n{\"\": 2}\n", TDM_EPARSE, "t.jsonl:2: an empty key");
    jsonl_fails("{\"a\": \"\xff\"}\n", TDM_EPARSE, "t.jsonl:1:");
    jsonl_fails("{\"a\": 1}\n{\"id\": 123456789012345678901234}\n", TDM_EPARSE,
                "an integer too big for 64 bits");

    tdm_table_limits lim;
    tdm_table_limits_init(&lim);
    lim.max_columns = 2;
    const char *wide = "{\"a\": 1, \"b\": 2}\n{\"c\": 3}\n";
    read_fails(wide, strlen(wide), TDM_FORMAT_JSONL, "t.jsonl", &lim, TDM_ETOOBIG,
               "t.jsonl:2: column \"c\" would be column 3, over the max_columns limit of 2");
    lim.max_columns = 0;
    lim.max_record_bytes = 10;
    const char *lines = "{\"a\": 1}\n{\"a\": 12345}\n";
    read_fails(lines, strlen(lines), TDM_FORMAT_JSONL, "t.jsonl", &lim, TDM_ETOOBIG,
               "t.jsonl:2: the line is 12 bytes, longer than the max_record_bytes limit of 10");
    lim.max_record_bytes = 0;
    lim.max_rows = 1;
    read_fails(lines, strlen(lines), TDM_FORMAT_JSONL, "t.jsonl", &lim, TDM_ETOOBIG,
               "t.jsonl:2: more than 1 rows");
}

/* ------------------------------------------------------------------------------------------ */
/* Formats, files and arguments                                                               */
/* ------------------------------------------------------------------------------------------ */

static void test_format_auto_buffer(void **state)
{
    (void)state;
    tdm_table *t = read_ok(" \r\n\t{\"a\": 1}\n", TDM_FORMAT_AUTO, "x");
    assert_columns(t, 1, "a");
    tdm_table_free(t);

    t = read_ok("\xEF\xBB\xBF{\"b\": 1}\n", TDM_FORMAT_AUTO, "x");
    assert_columns(t, 1, "b");
    tdm_table_free(t);

    t = read_ok("a,b\n1,2\n", TDM_FORMAT_AUTO, "x");
    assert_columns(t, 2, "a", "b");
    tdm_table_free(t);

    /* Forced CSV reads a brace line as an ordinary header. */
    t = read_ok("{a}\n{b}\n", TDM_FORMAT_CSV, "x");
    assert_columns(t, 1, "{a}");
    assert_cell(t, 0, 0, "{b}");
    tdm_table_free(t);

    /* Forced JSON Lines refuses a CSV header. */
    read_fails("a,b\n", 4, TDM_FORMAT_JSONL, "x", NULL, TDM_EPARSE, "x:1:");
}

static void test_read_file(void **state)
{
    (void)state;
    char path[128];
    tdm_table *t = NULL;
    tdm_error err;

    /* The .csv extension wins over content that looks like JSON. */
    write_scratch("a.csv", "{a}\n{b}\n", path, sizeof path);
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), 0);
    assert_string_equal(tdm_table_name(t), path);
    assert_columns(t, 1, "{a}");
    tdm_table_free(t);

    /* An unknown extension falls back to the content. */
    write_scratch("b.dat", "{\"k\": 1}\n{\"k\": 2}\n", path, sizeof path);
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), 0);
    assert_columns(t, 1, "k");
    assert_int_equal(tdm_table_row_count(t), 2);
    tdm_table_free(t);

    /* JSON Lines extensions, in any case. */
    const char *jsonl_files[] = {"c.JSONL", "d.ndjson", "e.json"};
    for (size_t i = 0; i < 3; i++) {
        write_scratch(jsonl_files[i], "  {\"k\": 1}\n", path, sizeof path);
        assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), 0);
        assert_columns(t, 1, "k");
        tdm_table_free(t);
    }
    write_scratch("e.json", "a,b\n", path, sizeof path);
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), TDM_EPARSE);
    assert_null(t);

    /* Errors name the path. */
    write_scratch("a.csv", "a,b\n1,2\n3\n", path, sizeof path);
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), TDM_EPARSE);
    char want[160];
    snprintf(want, sizeof want, "%s:3: expected 2 fields", path);
    assert_non_null(strstr(err.message, want));

    tdm_table_limits lim;
    tdm_table_limits_init(&lim);
    lim.max_bytes = 4;
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, &lim, &t, &err), TDM_ETOOBIG);
    assert_non_null(strstr(err.message, "max_bytes"));
    assert_null(t);
}

static void test_read_file_big(void **state)
{
    (void)state;
    /* Bigger than the first read, so the read loop has to go round. */
    char path[128];
    scratch_path("big.csv", path, sizeof path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("n,s\n", f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "%d,row %d of the big file\n", i, i);
    assert_int_equal(fclose(f), 0);

    tdm_table *t = NULL;
    tdm_error err;
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), 0);
    assert_int_equal(tdm_table_row_count(t), 20000);
    assert_cell(t, 19999, 1, "row 19999 of the big file");
    tdm_table_free(t);
}

static void test_read_file_missing(void **state)
{
    (void)state;
    tdm_table *t = (tdm_table *)&t;
    tdm_error err;
    const char *path = "/nonexistent/tandem/no-such-file.csv";
    assert_int_equal(tdm_table_read_file(path, TDM_FORMAT_AUTO, NULL, &t, &err), TDM_EIO);
    assert_int_equal(err.code, TDM_EIO);
    assert_null(t);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "No such file"));

    assert_int_equal(tdm_table_read_file(scratch_dir, TDM_FORMAT_AUTO, NULL, &t, &err), TDM_EIO);
    assert_non_null(strstr(err.message, "not a regular file"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    tdm_table *t = NULL;
    tdm_error err;
    assert_int_equal(tdm_table_read_buffer("a\n", 2, (tdm_table_format)7, "x", NULL, &t, &err),
                     TDM_EINVAL);
    assert_non_null(strstr(err.message, "unknown table format 7"));
    assert_int_equal(tdm_table_read_buffer(NULL, 3, TDM_FORMAT_CSV, "x", NULL, &t, &err),
                     TDM_EINVAL);
    assert_int_equal(tdm_table_read_buffer("a", 1, TDM_FORMAT_CSV, "x", NULL, NULL, &err),
                     TDM_EINVAL);
    assert_int_equal(tdm_table_read_file(NULL, TDM_FORMAT_CSV, NULL, &t, &err), TDM_EINVAL);
    /* An empty JSON Lines buffer may be NULL. */
    assert_int_equal(tdm_table_read_buffer(NULL, 0, TDM_FORMAT_JSONL, "x", NULL, &t, NULL), 0);
    tdm_table_free(t);
    tdm_table_free(NULL);
    assert_int_equal(tdm_table_row_count(NULL), 0);
    assert_int_equal(tdm_table_column_count(NULL), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Accessors and kinds                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void test_column_index(void **state)
{
    (void)state;
    tdm_table *t = csv_ok("id,text,label,text2,t\n1,2,3,4,5\n");
    size_t col = 99;
    assert_int_equal(tdm_table_column_index(t, "label", &col), 0);
    assert_int_equal(col, 2);
    assert_int_equal(tdm_table_column_index(t, "t", &col), 0);
    assert_int_equal(col, 4);
    col = 99;
    assert_int_equal(tdm_table_column_index(t, "Label", &col), TDM_ENOTFOUND);
    assert_int_equal(tdm_table_column_index(t, "tex", &col), TDM_ENOTFOUND);
    assert_int_equal(tdm_table_column_index(t, "", &col), TDM_ENOTFOUND);
    assert_int_equal(col, 99);
    tdm_table_free(t);

    /* Enough columns to make the name index grow. */
    char buf[8192];
    size_t n = 0;
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%scol%d", i ? "," : "", i);
    snprintf(buf + n, sizeof buf - n, "\n");
    t = csv_ok(buf);
    for (int i = 0; i < 500; i += 7) {
        char name[16];
        snprintf(name, sizeof name, "col%d", i);
        assert_int_equal(tdm_table_column_index(t, name, &col), 0);
        assert_int_equal(col, (size_t)i);
    }
    assert_int_equal(tdm_table_column_index(t, "col500", &col), TDM_ENOTFOUND);
    tdm_table_free(t);
}

static void test_infer_kind(void **state)
{
    (void)state;
    tdm_table *t =
        csv_ok("num,cat,text,mixed,blank,long,city,special\n"
               " 1.5 ,A11,the card was lost,1,,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,"
               "New York,nan\n"
               "2,A12,please send a refund,x,,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,"
               "New York,inf\n"
               "-3e2,A11,where is my parcel,2,,ccccccccccccccccccccccccccccccccccccccc,"
               "New York,1\n"
               ",A13,,3,,ddddddddddddddddddddddddddddddddddddddd,New York,2\n"
               "0x10,A11,card declined at shop,4,,eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee,"
               "Paris,3\n");
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_NUMERIC);
    assert_int_equal(tdm_table_infer_kind(t, 1), TDM_FIELD_CATEGORICAL);
    assert_int_equal(tdm_table_infer_kind(t, 2), TDM_FIELD_TEXT);
    assert_int_equal(tdm_table_infer_kind(t, 3), TDM_FIELD_CATEGORICAL);
    assert_int_equal(tdm_table_infer_kind(t, 4), TDM_FIELD_CATEGORICAL);
    assert_int_equal(tdm_table_infer_kind(t, 5), TDM_FIELD_TEXT);
    assert_int_equal(tdm_table_infer_kind(t, 7), TDM_FIELD_CATEGORICAL);
    tdm_table_free(t);

    /* Values with spaces that repeat (few distinct) are categories, not prose. */
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "city\n");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\n",
                              i % 3 == 0   ? "New York"
                              : i % 3 == 1 ? "Los Angeles"
                                           : "San Jose");
    t = csv_ok(buf);
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_CATEGORICAL);
    tdm_table_free(t);

    /* JSON numbers, and a column that is never present. */
    t = jsonl_ok("{\"x\": 1, \"y\": null}\n{\"x\": 2.5}\n{\"x\": null}\n");
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_NUMERIC);
    assert_int_equal(tdm_table_infer_kind(t, 1), TDM_FIELD_CATEGORICAL);
    tdm_table_free(t);
}

static void test_field_kind_names(void **state)
{
    (void)state;
    assert_string_equal(tdm_field_kind_name(TDM_FIELD_TEXT), "text");
    assert_string_equal(tdm_field_kind_name(TDM_FIELD_CATEGORICAL), "categorical");
    assert_string_equal(tdm_field_kind_name(TDM_FIELD_NUMERIC), "numeric");
    assert_string_equal(tdm_field_kind_name((tdm_field_kind)0), "unknown");
    assert_string_equal(tdm_field_kind_name((tdm_field_kind)42), "unknown");

    tdm_field_kind kind = (tdm_field_kind)0;
    assert_int_equal(tdm_field_kind_parse("text", &kind), 0);
    assert_int_equal(kind, TDM_FIELD_TEXT);
    assert_int_equal(tdm_field_kind_parse("categorical", &kind), 0);
    assert_int_equal(kind, TDM_FIELD_CATEGORICAL);
    assert_int_equal(tdm_field_kind_parse("numeric", &kind), 0);
    assert_int_equal(kind, TDM_FIELD_NUMERIC);
    assert_int_equal(tdm_field_kind_parse("Numeric", &kind), TDM_EINVAL);
    assert_int_equal(tdm_field_kind_parse("unknown", &kind), TDM_EINVAL);
    assert_int_equal(tdm_field_kind_parse("", &kind), TDM_EINVAL);
    assert_int_equal(tdm_field_kind_parse(NULL, &kind), TDM_EINVAL);
    assert_int_equal(kind, TDM_FIELD_NUMERIC);
}

/* ------------------------------------------------------------------------------------------ */
/* Allocation failures                                                                        */
/* ------------------------------------------------------------------------------------------ */

#ifdef TDM_DEBUG
/*
 * Fails the 1st, 2nd, ... allocation of a read in turn until the read gets through, checking
 * that each failure is TDM_ENOMEM with no table; the sanitizer build checks that nothing
 * leaks on the way.
 */
static void fail_each_allocation(const char *text, tdm_table_format format, const char *path)
{
    size_t failures = 0;
    for (size_t k = 1;; k++) {
        tdm_table *t = NULL;
        tdm_error err;
        tdm__table_alloc_fail_countdown = k;
        int rc = path != NULL
                     ? tdm_table_read_file(path, format, NULL, &t, &err)
                     : tdm_table_read_buffer(text, strlen(text), format, "t", NULL, &t, &err);
        int injected = tdm__table_alloc_fail_countdown == 0;
        tdm__table_alloc_fail_countdown = 0;
        if (!injected) {
            assert_int_equal(rc, 0);
            tdm_table_free(t);
            break;
        }
        assert_int_equal(rc, TDM_ENOMEM);
        assert_int_equal(err.code, TDM_ENOMEM);
        assert_null(t);
        assert_non_null(strstr(err.message, "out of memory"));
        failures++;
    }
    assert_true(failures > 3);
}

static const char *oom_csv = "a,\"b, c\",d\n1,\"x\"\"y\",3\n\n4,5,\"multi\nline\"\n7,8,9\n";
static const char *oom_jsonl = "{\"a\": 1}\n{\"b\": [1, {\"c\": 2.5}], \"a\": \"x\"}\n{}\n"
                               "{\"d\": true, \"e\": null}\n";

static void test_alloc_failures(void **state)
{
    (void)state;
    fail_each_allocation(oom_csv, TDM_FORMAT_CSV, NULL);
    fail_each_allocation(oom_jsonl, TDM_FORMAT_JSONL, NULL);

    char path[128];
    write_scratch("d.ndjson", oom_jsonl, path, sizeof path);
    fail_each_allocation(NULL, TDM_FORMAT_AUTO, path);

    /* infer_kind cannot fail; without memory for its set it says "categorical". */
    tdm_table *t = csv_ok("t\na b\nc d\ne f\n");
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_TEXT);
    tdm__table_alloc_fail_countdown = 1;
    assert_int_equal(tdm_table_infer_kind(t, 0), TDM_FIELD_CATEGORICAL);
    tdm__table_alloc_fail_countdown = 0;
    tdm_table_free(t);
}

/* Jansson's own allocations, failing one at a time through json_set_alloc_funcs(). */
static size_t json_fail_countdown;

static void *failing_json_malloc(size_t size)
{
    if (json_fail_countdown != 0 && --json_fail_countdown == 0)
        return NULL;
    return malloc(size);
}

static void test_jansson_alloc_failures(void **state)
{
    (void)state;
    json_set_alloc_funcs(failing_json_malloc, free);
    size_t failures = 0;
    for (size_t k = 1;; k++) {
        tdm_table *t = NULL;
        tdm_error err;
        json_fail_countdown = k;
        int rc = tdm_table_read_buffer(oom_jsonl, strlen(oom_jsonl), TDM_FORMAT_JSONL, "t", NULL,
                                       &t, &err);
        int injected = json_fail_countdown == 0;
        json_fail_countdown = 0;
        if (!injected) {
            assert_int_equal(rc, 0);
            tdm_table_free(t);
            break;
        }
        /*
         * Jansson reports some of its allocation failures as syntax errors (a key it could not
         * copy reads as a missing key), so TDM_EPARSE is accepted too; what matters is that
         * there is no table and, under the sanitizer, no leak.
         */
        if (rc == TDM_ENOMEM)
            assert_non_null(strstr(err.message, "out of memory"));
        else
            assert_int_equal(rc, TDM_EPARSE);
        assert_null(t);
        failures++;
    }
    json_set_alloc_funcs(malloc, free);
    assert_true(failures > 3);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_plain),
        cmocka_unit_test(test_csv_quotes),
        cmocka_unit_test(test_csv_quoted_header),
        cmocka_unit_test(test_csv_crlf),
        cmocka_unit_test(test_csv_bom),
        cmocka_unit_test(test_csv_blank_lines),
        cmocka_unit_test(test_csv_no_final_newline),
        cmocka_unit_test(test_csv_empty_fields),
        cmocka_unit_test(test_csv_header_only),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_limits),
        cmocka_unit_test(test_csv_many_rows),
        cmocka_unit_test(test_column_is_json_number),
        cmocka_unit_test(test_jsonl_types),
        cmocka_unit_test(test_jsonl_union_of_keys),
        cmocka_unit_test(test_jsonl_many_columns_appear),
        cmocka_unit_test(test_jsonl_blank_lines),
        cmocka_unit_test(test_jsonl_errors),
        cmocka_unit_test(test_format_auto_buffer),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_read_file_big),
        cmocka_unit_test(test_read_file_missing),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_column_index),
        cmocka_unit_test(test_infer_kind),
        cmocka_unit_test(test_field_kind_names),
#ifdef TDM_DEBUG
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_jansson_alloc_failures),
#endif
    };
    return cmocka_run_group_tests_name("table", tests, make_scratch, remove_scratch);
}
