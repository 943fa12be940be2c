/*
 * test_split.c — new tables from rows of another: tdm_table_select and the stratified,
 * seeded tdm_table_split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/learn.h"

static tdm_table *read_csv(const char *csv)
{
    tdm_table *t = NULL;
    tdm_error err = {0};
    assert_int_equal(
        tdm_table_read_buffer(csv, strlen(csv), TDM_FORMAT_CSV, "rows.csv", NULL, &t, &err), 0);
    return t;
}

static void test_select(void **state)
{
    (void)state;
    tdm_table *t = read_csv("a,b\n1,x\n\"2\nline\",y\n3,z\n");
    size_t rows[] = {2, 0, 2};
    tdm_table *s = NULL;
    assert_int_equal(tdm_table_select(t, rows, 3, &s), 0);
    assert_int_equal(tdm_table_row_count(s), 3);
    assert_int_equal(tdm_table_column_count(s), 2);
    assert_string_equal(tdm_table_column_name(s, 1), "b");
    assert_string_equal(tdm_table_cell(s, 0, 0, NULL), "3");
    assert_string_equal(tdm_table_cell(s, 1, 1, NULL), "x");
    assert_string_equal(tdm_table_cell(s, 2, 1, NULL), "z");
    /* Lines still point into the original input (row 2 starts on line 5). */
    assert_int_equal(tdm_table_row_line(s, 0), 5);
    assert_int_equal(tdm_table_row_line(s, 1), 2);
    assert_string_equal(tdm_table_name(s), "rows.csv");
    tdm_table_free(s);

    /* Empty selections and bad rows. */
    assert_int_equal(tdm_table_select(t, NULL, 0, &s), 0);
    assert_int_equal(tdm_table_row_count(s), 0);
    assert_int_equal(tdm_table_column_count(s), 2);
    tdm_table_free(s);
    size_t bad[] = {0, 3};
    s = (tdm_table *)&s;
    assert_int_equal(tdm_table_select(t, bad, 2, &s), TDM_EINVAL);
    assert_null(s);
    tdm_table_free(t);

    /* Missing cells of JSON Lines stay missing. */
    const char *jl = "{\"a\": 1}\n{\"b\": \"q\"}\n";
    tdm_error err = {0};
    assert_int_equal(tdm_table_read_buffer(jl, strlen(jl), TDM_FORMAT_JSONL, "j", NULL, &t, &err),
                     0);
    size_t one[] = {1};
    assert_int_equal(tdm_table_select(t, one, 1, &s), 0);
    assert_null(tdm_table_cell(s, 0, 0, NULL));
    assert_string_equal(tdm_table_cell(s, 0, 1, NULL), "q");
    tdm_table_free(s);
    tdm_table_free(t);
}

/* 100 rows of "a", 30 of "b", 7 of "c", 1 of "d" and 5 without a label, shuffled by index. */
static tdm_table *labelled_rows(void)
{
    static char csv[8192];
    size_t len = (size_t)snprintf(csv, sizeof csv, "id,label\n");
    for (int i = 0; i < 143; i++) {
        const char *label = i % 143 < 100 ? "a"
                            : i < 130     ? "b"
                            : i < 137     ? "c"
                            : i < 138     ? "d"
                                          : "";
        len += (size_t)snprintf(csv + len, sizeof csv - len, "%d,%s\n", i, label);
    }
    return read_csv(csv);
}

static size_t count(const tdm_table *t, const char *label)
{
    size_t n = 0;
    for (size_t r = 0; r < tdm_table_row_count(t); r++)
        n += strcmp(tdm_table_cell(t, r, 1, NULL), label) == 0;
    return n;
}

static void test_split_stratified_and_seeded(void **state)
{
    (void)state;
    tdm_table *t = labelled_rows(), *train, *test;
    tdm_error err = {0};
    assert_int_equal(tdm_table_split(t, "label", 0.3, 7, &train, &test, &err), 0);
    assert_int_equal(tdm_table_row_count(train) + tdm_table_row_count(test), 143);
    assert_int_equal(count(test, "a"), 30);
    assert_int_equal(count(test, "b"), 9);
    assert_int_equal(count(test, "c"), 2);
    assert_int_equal(count(test, "d"), 0); /* a single row stays in training */
    assert_int_equal(count(test, ""), 0);  /* unlabelled rows too */
    assert_int_equal(count(train, ""), 5);
    /* Rows keep their input order. */
    for (size_t r = 1; r < tdm_table_row_count(test); r++)
        assert_true(atoi(tdm_table_cell(test, r, 0, NULL)) >
                    atoi(tdm_table_cell(test, r - 1, 0, NULL)));

    /* The same seed gives the same split; another seed another. */
    tdm_table *train2, *test2, *train3, *test3;
    assert_int_equal(tdm_table_split(t, "label", 0.3, 7, &train2, &test2, &err), 0);
    assert_int_equal(tdm_table_split(t, "label", 0.3, 8, &train3, &test3, &err), 0);
    int same = 1, same3 = 1;
    for (size_t r = 0; r < tdm_table_row_count(test); r++) {
        same &= strcmp(tdm_table_cell(test, r, 0, NULL), tdm_table_cell(test2, r, 0, NULL)) == 0;
        same3 &= strcmp(tdm_table_cell(test, r, 0, NULL), tdm_table_cell(test3, r, 0, NULL)) == 0;
    }
    assert_true(same);
    assert_false(same3);
    tdm_table_free(train);
    tdm_table_free(test);
    tdm_table_free(train2);
    tdm_table_free(test2);
    tdm_table_free(train3);
    tdm_table_free(test3);
    tdm_table_free(t);
}

static void test_split_refusals(void **state)
{
    (void)state;
    tdm_table *t = labelled_rows(), *train = NULL, *test = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_table_split(t, "class", 0.3, 1, &train, &test, &err), TDM_ENOTFOUND);
    assert_non_null(strstr(err.message, "\"class\""));
    assert_int_equal(tdm_table_split(t, "label", 0.0, 1, &train, &test, &err), TDM_EINVAL);
    assert_int_equal(tdm_table_split(t, "label", 1.0, 1, &train, &test, &err), TDM_EINVAL);
    assert_non_null(strstr(err.message, "fraction"));
    assert_null(train);
    assert_null(test);
    tdm_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_split_stratified_and_seeded),
        cmocka_unit_test(test_split_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
