/*
 * test_http_mem.c — the HTTP layer's memory: the per-request arena and the capped buffer
 * that holds request bodies (src/http/mem.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

static void test_arena(void **state)
{
    (void)state;
    tdm__arena a;
    tdm__arena_init(&a, 10000);
    /* Every allocation is aligned for any type, small or large. */
    for (size_t n = 1; n < 40; n += 7) {
        void *p = tdm__arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, 0xAB, n);
    }
    char *s = tdm__arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    /* A block bigger than the default gets its own. */
    void *big = tdm__arena_alloc(&a, 6000);
    assert_non_null(big);
    memset(big, 1, 6000);
    /* The cap counts every byte handed out. */
    assert_null(tdm__arena_alloc(&a, 5000));
    assert_null(tdm__arena_alloc(&a, SIZE_MAX));
    assert_non_null(tdm__arena_alloc(&a, 100));
    tdm__arena_release(&a);
    /* Released, it starts over. */
    assert_non_null(tdm__arena_alloc(&a, 9000));
    tdm__arena_release(&a);
    tdm__arena_release(&a);
}

static void test_buf_cap(void **state)
{
    (void)state;
    tdm__buf b;
    tdm__buf_init(&b, 10);
    assert_int_equal(tdm__buf_append(&b, "hello", 5), 0);
    assert_int_equal(tdm__buf_append(&b, "world", 5), 0); /* exactly at the cap */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    /* One byte more is refused and changes nothing. */
    assert_int_equal(tdm__buf_append(&b, "!", 1), TDM_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(tdm__buf_append(&b, "", 0), 0);
    assert_int_equal(tdm__buf_append(&b, "x", SIZE_MAX), TDM_ETOOBIG);
    size_t len;
    char *p = tdm__buf_take(&b, &len);
    assert_int_equal(len, 10);
    assert_string_equal(p, "helloworld");
    free(p);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    tdm__buf_release(&b);
}

static void test_buf_grows_and_empty(void **state)
{
    (void)state;
    tdm__buf b;
    tdm__buf_init(&b, 1 << 20);
    char chunk[1000];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tdm__buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(b.len, 1000000);
    assert_true(b.alloc <= (1 << 20) + 1); /* never reserves past the cap */
    assert_int_equal(b.data[b.len], '\0');
    tdm__buf_release(&b);
    /* An empty buffer hands out "". */
    tdm__buf_init(&b, 5);
    size_t len = 99;
    char *p = tdm__buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    free(p);
    /* A cap of zero takes nothing but an empty append. */
    tdm__buf_init(&b, 0);
    assert_int_equal(tdm__buf_append(&b, "a", 1), TDM_ETOOBIG);
    assert_int_equal(tdm__buf_append(&b, "", 0), 0);
    tdm__buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_grows_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
