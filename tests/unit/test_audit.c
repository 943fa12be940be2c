/*
 * test_audit.c — unit tests for the audit trail's entry data written as text
 * (tdm__audit_data, src/audit/audit.c): the text must be byte for byte what jansson writes
 * for the same object with the flags tdm__audit_append() uses, since both end up in the
 * hash chain side by side.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "audit/audit.h"

/* jansson's text for `obj` (stolen), as tdm__audit_append() writes it. */
static char *jansson_text(json_t *obj)
{
    assert_non_null(obj);
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(obj);
    assert_non_null(s);
    return s;
}

static void expect_same(tdm__audit_data *d, json_t *obj)
{
    char *want = jansson_text(obj);
    const char *got = tdm__audit_data_text(d);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        print_error("want %s\n got %s\n", want, got);
    assert_string_equal(got, want);
    free(want);
    tdm__audit_data_release(d);
}

static void test_empty(void **state)
{
    (void)state;
    tdm__audit_data d;
    tdm__audit_data_init(&d);
    expect_same(&d, json_object());
}

static void test_members_in_order(void **state)
{
    (void)state;
    tdm__audit_data d;
    tdm__audit_data_init(&d);
    tdm__audit_data_str(&d, "item", "itm_0193a1b2c3d4e5f6a7b8c9d0");
    tdm__audit_data_int(&d, "item_version", 3);
    tdm__audit_data_bool(&d, "replaced", 1);
    tdm__audit_data_bool(&d, "autonomous", 0);
    tdm__audit_data_int(&d, "negative", INT64_MIN);
    tdm__audit_data_int(&d, "big", INT64_MAX);
    tdm__audit_data_int(&d, "zero", 0);
    expect_same(&d, json_pack("{s:s, s:I, s:b, s:b, s:I, s:I, s:I}", "item",
                              "itm_0193a1b2c3d4e5f6a7b8c9d0", "item_version", (json_int_t)3,
                              "replaced", 1, "autonomous", 0, "negative", (json_int_t)INT64_MIN,
                              "big", (json_int_t)INT64_MAX, "zero", (json_int_t)0));
}

static void test_strings_escaped_as_jansson(void **state)
{
    (void)state;
    const char *values[] = {
        "",
        "plain",
        "quote \" and backslash \\ and slash /",
        "tab\there, newline\nthere, return\r, backspace\b, form feed\f",
        "\x01\x02\x1f control, \x7f delete",
        "caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80 and \xe2\x80\xa8 line separator",
    };
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        tdm__audit_data d;
        tdm__audit_data_init(&d);
        tdm__audit_data_str(&d, "text", values[i]);
        tdm__audit_data_str(&d, "k\"ey\n", values[i]);
        expect_same(&d, json_pack("{s:s, s:s}", "text", values[i], "k\"ey\n", values[i]));
    }
}

static void test_reals_as_jansson(void **state)
{
    (void)state;
    const double values[] = {0.0,           1.0,  -2.0,    0.97,           0.9729,
                             1.0 / 3.0,     1e-7, 2.5e-12, 123456789012.0, 1e21,
                             0.99999999999, -0.5, 100.0,   1e300,          4.9e-324};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        tdm__audit_data d;
        tdm__audit_data_init(&d);
        tdm__audit_data_real(&d, "confidence", values[i]);
        expect_same(&d, json_pack("{s:f}", "confidence", values[i]));
    }
}

/* Leaves "e-e-e-..." in the stack below the caller, where the next call's locals will be: a
 * number made on the stack must not read past its own end (an integral real, "5.0", used to
 * pick up an "e-" there as an exponent and move a negative number of bytes). */
static __attribute__((noinline)) void stain_stack(void)
{
    volatile char junk[512];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = i % 2 ? '-' : 'e';
}

static void test_integral_real_on_a_stained_stack(void **state)
{
    (void)state;
    const double values[] = {5.0, -7.0, 100.0, 0.0, 1234567890.0};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        tdm__audit_data d;
        tdm__audit_data_init(&d);
        stain_stack();
        tdm__audit_data_real(&d, "n_above", values[i]);
        expect_same(&d, json_pack("{s:f}", "n_above", values[i]));
    }
}

static void test_raw_values(void **state)
{
    (void)state;
    tdm__audit_data d;
    tdm__audit_data_init(&d);
    tdm__audit_data_raw(&d, "value", "\"card_arrival\"");
    tdm__audit_data_raw(&d, "proposal", "{\"a\":[1,2,{\"b\":null}]}");
    expect_same(&d, json_pack("{s:s, s:{s:[i, i, {s:n}]}}", "value", "card_arrival", "proposal",
                              "a", 1, 2, "b"));
}

/* Longer than the inline buffer: the text moves to the heap and stays whole. */
static void test_grows_past_the_inline_buffer(void **state)
{
    (void)state;
    char long_text[5000];
    for (size_t i = 0; i < sizeof long_text - 1; i++)
        long_text[i] = (char)('a' + i % 26);
    long_text[sizeof long_text - 1] = '\0';
    tdm__audit_data d;
    tdm__audit_data_init(&d);
    json_t *want = json_object();
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        tdm__audit_data_str(&d, key, i % 2 ? long_text + i * 100 : "\n");
        json_object_set_new(want, key, json_string(i % 2 ? long_text + i * 100 : "\n"));
    }
    expect_same(&d, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_members_in_order),
        cmocka_unit_test(test_strings_escaped_as_jansson),
        cmocka_unit_test(test_reals_as_jansson),
        cmocka_unit_test(test_integral_real_on_a_stained_stack),
        cmocka_unit_test(test_raw_values),
        cmocka_unit_test(test_grows_past_the_inline_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
