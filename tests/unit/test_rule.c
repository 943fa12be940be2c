/*
 * test_rule.c — unit tests for the review-rule language (src/policy/rule.c): precedence,
 * every operator, types and null, caps, compile errors with their columns, and random token
 * soup that must never crash.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/rule.h"
#include "tandem/process.h"

/* ------------------------------------------------------------------------------------------ */
/* An item: a few named fields                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct field {
    const char *name;
    tdm_rule_value value;
} field;

typedef struct item {
    const field *fields;
    size_t n;
    int calls;
    int fail_with; /* a lookup error to return, or 0 */
} item;

static int item_lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out)
{
    item *it = ctx;
    it->calls++;
    if (it->fail_with)
        return it->fail_with;
    for (size_t i = 0; i < it->n; i++) {
        if (strlen(it->fields[i].name) == len && memcmp(it->fields[i].name, name, len) == 0) {
            *out = it->fields[i].value;
            return 0;
        }
    }
    return TDM_ENOTFOUND;
}

static tdm_rule_value num(double x)
{
    tdm_rule_value v = {.type = TDM_RULE_NUMBER, .number = x};
    return v;
}

static tdm_rule_value str(const char *s)
{
    tdm_rule_value v = {.type = TDM_RULE_STRING, .string = s, .length = strlen(s)};
    return v;
}

static tdm_rule_value boolean(int b)
{
    tdm_rule_value v = {.type = TDM_RULE_BOOL, .boolean = b};
    return v;
}

static tdm_rule_value null(void)
{
    tdm_rule_value v = {.type = TDM_RULE_NULL};
    return v;
}

/* The item most tests run against. */
static field std_fields[6];
static item std_item;

static int setup_item(void **state)
{
    (void)state;
    std_fields[0] = (field){"amount", num(12000)};
    std_fields[1] = (field){"country", str("NL")};
    std_fields[2] = (field){"text", str("I want to talk to my LAWYER about this")};
    std_fields[3] = (field){"vip", boolean(1)};
    std_fields[4] = (field){"nothing", null()};
    std_fields[5] = (field){"zero", num(0)};
    std_item = (item){std_fields, 6, 0, 0};
    return 0;
}

static tdm__rule *compile_ok(const char *src)
{
    tdm__rule *r = NULL;
    size_t col = 99;
    char msg[300];
    int rc = tdm__rule_compile(src, strlen(src), &r, &col, msg, sizeof msg);
    if (rc != 0)
        print_error("rule '%s' failed at column %zu: %s\n", src, col, msg);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    return r;
}

/* Evaluates `src` against the standard item with label and confidence. */
static int eval_with(const char *src, const char *label, double confidence)
{
    tdm__rule *r = compile_ok(src);
    int fired = -1;
    assert_int_equal(tdm__rule_eval(r, item_lookup, &std_item, label, confidence, &fired), 0);
    assert_true(fired == 0 || fired == 1);
    /* Evaluation is deterministic: a second run agrees. */
    int again = -1;
    assert_int_equal(tdm__rule_eval(r, item_lookup, &std_item, label, confidence, &again), 0);
    assert_int_equal(fired, again);
    tdm__rule_free(r);
    return fired;
}

static int eval(const char *src)
{
    return eval_with(src, "approve", 0.9);
}

#define FIRES(src)                                                                                 \
    do {                                                                                           \
        if (!eval(src))                                                                            \
            fail_msg("expected '%s' to fire", src);                                                \
    } while (0)
#define HOLDS_NOT(src)                                                                             \
    do {                                                                                           \
        if (eval(src))                                                                             \
            fail_msg("expected '%s' not to fire", src);                                            \
    } while (0)

/* Compiling `src` must fail at `column` with a message containing `needle`. */
static void compile_fails(const char *src, size_t len, size_t column, const char *needle)
{
    tdm__rule *r = (tdm__rule *)&r;
    size_t col = 0;
    char msg[300];
    int rc = tdm__rule_compile(src, len, &r, &col, msg, sizeof msg);
    if (rc != TDM_EINVAL || col != column || strstr(msg, needle) == NULL)
        print_error("rule '%.80s': rc %d, column %zu (want %zu), message \"%s\" (want \"%s\")\n",
                    src, rc, col, column, msg, needle);
    assert_int_equal(rc, TDM_EINVAL);
    assert_null(r);
    assert_int_equal(col, column);
    assert_non_null(strstr(msg, needle));
}

#define BAD(src, column, needle) compile_fails(src, strlen(src), column, needle)

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_precedence(void **state)
{
    (void)state;
    FIRES("1 + 2 * 3 == 7");
    FIRES("(1 + 2) * 3 == 9");
    FIRES("10 - 2 - 3 == 5"); /* left-associative */
    FIRES("8 / 4 / 2 == 1");  /* left-associative */
    FIRES("-2 * 3 == -6");    /* unary minus binds tightest */
    FIRES("- (2 + 3) == -5"); /* on a parenthesised expression too */
    FIRES("2 - -3 == 5");     /* and after a binary minus */
    FIRES("--4 == 4");
    FIRES("true or false and false");       /* and before or */
    HOLDS_NOT("(true or false) and false"); /* parentheses override */
    HOLDS_NOT("not true or false");         /* not before or: (not true) or false */
    FIRES("not false and true");            /* not before and */
    FIRES("not 1 == 2");                    /* comparison before not */
    FIRES("amount > 10000 and not (country == \"DE\")");
    FIRES("1 + 1 == 2 and 2 * 2 == 4 or false");
}

static void test_comparisons(void **state)
{
    (void)state;
    FIRES("amount == 12000");
    HOLDS_NOT("amount != 12000");
    FIRES("amount != 12001");
    FIRES("amount > 11999.5");
    HOLDS_NOT("amount > 12000");
    FIRES("amount >= 12000");
    FIRES("amount < 1.2e4 + 1");
    HOLDS_NOT("amount < 12000");
    FIRES("amount <= 12000");
    FIRES("country == \"NL\"");
    HOLDS_NOT("country == \"nl\""); /* byte-exact */
    FIRES("country != \"nl\"");
    FIRES("\"abc\" < \"abd\""); /* byte-wise */
    FIRES("\"ab\" < \"abc\"");  /* a prefix sorts first */
    FIRES("\"B\" < \"a\"");     /* uppercase before lowercase: bytes, not locale */
    FIRES("\"abc\" >= \"abc\"");
    HOLDS_NOT("\"abc\" > \"abc\"");
    FIRES("vip == true");
    HOLDS_NOT("vip == false");
    FIRES("vip != false");
    FIRES("true == true");
    FIRES("null == null");
}

static void test_arithmetic(void **state)
{
    (void)state;
    FIRES("amount / 1000 == 12");
    FIRES("amount * 2 - 4000 == 20000");
    FIRES("amount + 0.5 > amount");
    FIRES("0.1 + 0.2 != 0.3"); /* IEEE doubles, documented */
    FIRES("-0 == 0");          /* negative zero equals zero */
    FIRES("1 / 0 == null");    /* division by zero is null */
    FIRES("amount / zero == null");
    HOLDS_NOT("1 / 0 > 0");
    HOLDS_NOT("1 / 0 < 0");
    FIRES("0 / 0 == null");
    FIRES("1e308 * 10 == null"); /* overflow is null */
    FIRES("-1e308 * 10 == null");
    FIRES("1e-320 > 0"); /* subnormals are numbers */
    FIRES("2.5e3 == 2500");
    FIRES("1E2 == 100");
    FIRES("1e+2 == 100 and 1e-2 == 0.01");
    FIRES("007 == 7");
    FIRES("country * 2 == null");
    FIRES("-country == null");
    FIRES("vip + 1 == null");
    FIRES("missing - 1 == null");
}

static void test_types_and_null(void **state)
{
    (void)state;
    /* Different types are never equal, always unequal, never ordered. */
    HOLDS_NOT("amount == \"12000\"");
    FIRES("amount != \"12000\"");
    HOLDS_NOT("amount < \"2\"");
    HOLDS_NOT("amount > \"2\"");
    HOLDS_NOT("vip == 1");
    FIRES("vip != 1");
    HOLDS_NOT("vip > 1"); /* booleans do not order */
    HOLDS_NOT("vip <= country");
    HOLDS_NOT("nothing < 1");
    HOLDS_NOT("nothing >= nothing");
    /* Missing fields and explicit nulls are null. */
    FIRES("missing == null");
    FIRES("nothing == null");
    HOLDS_NOT("missing != null");
    FIRES("missing != 1");
    HOLDS_NOT("missing == 0");
    HOLDS_NOT("missing < 1");
    HOLDS_NOT("missing >= 0");
    HOLDS_NOT("missing contains \"a\"");
    /* and / or / not need booleans: anything else makes them false. */
    HOLDS_NOT("missing or true");
    HOLDS_NOT("true or missing");
    HOLDS_NOT("missing and true");
    HOLDS_NOT("not missing");
    HOLDS_NOT("not country");
    HOLDS_NOT("amount or true");
    FIRES("vip and true");
    FIRES("not (vip and false)");
    FIRES("vip or missing == null");
}

static void test_label_and_confidence(void **state)
{
    (void)state;
    assert_true(eval_with("label == \"reject\"", "reject", 0.9));
    assert_false(eval_with("label == \"reject\"", "approve", 0.9));
    assert_true(eval_with("label == null", NULL, 0.9));
    assert_false(eval_with("label == \"\"", NULL, 0.9));
    assert_true(eval_with("label == \"\"", "", 0.9));
    assert_true(eval_with("label != \"reject\"", NULL, 0.9));
    assert_true(eval_with("confidence < 0.5", "x", 0.49));
    assert_false(eval_with("confidence < 0.5", "x", 0.5));
    assert_true(eval_with("confidence >= 0.5", "x", 0.5));
    assert_true(eval_with("confidence == null", "x", NAN));
    assert_false(eval_with("confidence < 0.5", "x", NAN));
    assert_true(eval_with("confidence == null", "x", INFINITY));
    assert_true(eval_with("label in [\"a\", \"terminate_account\"]", "terminate_account", 1));
    assert_true(eval_with("label contains \"ACCOUNT\"", "terminate_account", 1));
    assert_true(eval_with("confidence * 100 > 95", "x", 0.96));
}

static void test_contains(void **state)
{
    (void)state;
    FIRES("text contains \"lawyer\"");
    FIRES("text contains \"LaWyEr\"");
    FIRES("text contains \"I want\"");
    FIRES("text contains \"this\""); /* at the very end */
    FIRES("text contains \"\"");     /* the empty string is in every string */
    HOLDS_NOT("text contains \"solicitor\"");
    HOLDS_NOT("text contains \"this!\"");
    FIRES("\"aaab\" contains \"aab\""); /* needs the KMP fallback to rewind */
    FIRES("\"abababc\" contains \"ababc\"");
    HOLDS_NOT("\"ababab\" contains \"ababc\"");
    FIRES("\"\" contains \"\"");
    HOLDS_NOT("\"\" contains \"a\"");
    HOLDS_NOT("\"ab\" contains \"abc\"");
    /* Not strings: false, whichever side. */
    HOLDS_NOT("missing contains \"a\"");
    HOLDS_NOT("text contains missing");
    HOLDS_NOT("amount contains \"1\"");
    HOLDS_NOT("text contains country and false");
    FIRES("country contains country");
    /* Only ASCII letters fold: UTF-8 bytes compare exactly. */
    FIRES("\"CAF\xc3\x89\" contains \"caf\xc3\x89\"");
    HOLDS_NOT("\"CAF\xc3\x89\" contains \"caf\xc3\xa9\"");
    FIRES("\"tab\\there\" contains \"B\\tH\"");
    FIRES("\"say \\\"hi\\\"\" contains \"\\\"HI\\\"\"");
    FIRES("\"back\\\\slash\" contains \"K\\\\S\"");
    FIRES("\"two\\nlines\" contains \"o\\nl\"");
}

/* contains agrees with a plain quadratic search on random strings over a small alphabet. */
static void test_contains_random(void **state)
{
    (void)state;
    srand(12345);
    char rule[200];
    for (int iter = 0; iter < 3000; iter++) {
        char hay[40], needle[8];
        size_t hn = (size_t)(rand() % 39), nn = (size_t)(rand() % 7);
        for (size_t i = 0; i < hn; i++)
            hay[i] = "abAB"[rand() % 4];
        for (size_t i = 0; i < nn; i++)
            needle[i] = "abAB"[rand() % 4];
        hay[hn] = needle[nn] = '\0';
        int want = 0;
        for (size_t i = 0; i + nn <= hn && !want; i++) {
            size_t k = 0;
            while (k < nn && (hay[i + k] | 32) == (needle[k] | 32))
                k++;
            want = k == nn;
        }
        snprintf(rule, sizeof rule, "\"%s\" contains \"%s\"", hay, needle);
        assert_int_equal(eval(rule), want);
        /* The same through a field (a needle the compiler never saw). */
        field f[2] = {{"h", str(hay)}, {"n", str(needle)}};
        item it = {f, 2, 0, 0};
        tdm__rule *r = compile_ok("h contains n");
        int fired = -1;
        assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
        assert_int_equal(fired, want);
        tdm__rule_free(r);
    }
}

/* Needles longer than the KMP table take the quadratic path; it must agree. */
static void test_contains_long_needle(void **state)
{
    (void)state;
    size_t n = TDM__RULE_MAX_STRING + 10;
    char *hay = malloc(3 * n + 1), *needle = malloc(n + 1);
    assert_non_null(hay);
    assert_non_null(needle);
    memset(hay, 'a', 3 * n);
    hay[3 * n] = '\0';
    memset(needle, 'A', n);
    needle[n] = '\0';
    field f[2] = {{"h", str(hay)}, {"n", str(needle)}};
    item it = {f, 2, 0, 0};
    tdm__rule *r = compile_ok("h contains n");
    int fired = -1;
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1);
    needle[n - 1] = 'b';
    f[1].value = str(needle);
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
    assert_int_equal(fired, 0);
    tdm__rule_free(r);
    free(hay);
    free(needle);
}

static void test_in_lists(void **state)
{
    (void)state;
    FIRES("country in [\"DE\", \"NL\"]");
    HOLDS_NOT("country in [\"de\", \"nl\"]");
    FIRES("country not in [\"de\", \"nl\"]");
    HOLDS_NOT("country not in [\"NL\"]");
    FIRES("amount in [1, 12000, 3]");
    FIRES("amount in [12e3]");
    HOLDS_NOT("amount in [\"12000\"]"); /* same rules as == */
    FIRES("-1 in [1, -1]");
    FIRES("-amount in [-12000]");
    FIRES("missing in [null]");
    FIRES("nothing in [1, null]");
    HOLDS_NOT("missing in [1, 2]");
    FIRES("missing not in [1, 2]");
    FIRES("vip in [false, true]");
    HOLDS_NOT("amount in []");
    FIRES("amount not in []");
    FIRES("(country in [\"NL\"]) == true");
    FIRES("not country in [\"BE\"]");
    FIRES("amount + 1 in [12001]");
}

static void test_lookup_calls_and_errors(void **state)
{
    (void)state;
    /* Every mention is one lookup, in source order. */
    std_item.calls = 0;
    assert_true(eval("amount > 1 and country == \"NL\" or amount < 0"));
    assert_int_equal(std_item.calls, 2 * 3);

    /* A lookup error other than "not found" is passed on. */
    item failing = {std_fields, 6, 0, TDM_ENOMEM};
    tdm__rule *r = compile_ok("amount > 1");
    int fired = 7;
    assert_int_equal(tdm__rule_eval(r, item_lookup, &failing, NULL, 0, &fired), TDM_ENOMEM);
    assert_int_equal(fired, 0);

    /* A NULL lookup sees every field as missing. */
    assert_int_equal(tdm__rule_eval(r, NULL, NULL, NULL, 0, &fired), 0);
    assert_int_equal(fired, 0);
    tdm__rule_free(r);
    r = compile_ok("amount == null");
    assert_int_equal(tdm__rule_eval(r, NULL, NULL, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1);

    /* Malformed values from a lookup are refused; odd but valid ones are normalised. */
    field bad[1] = {{"amount", {.type = (tdm_rule_type)9}}};
    item it = {bad, 1, 0, 0};
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), TDM_EINVAL);
    bad[0].value = (tdm_rule_value){.type = TDM_RULE_STRING, .string = NULL, .length = 3};
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), TDM_EINVAL);
    bad[0].value = (tdm_rule_value){.type = TDM_RULE_NUMBER, .number = NAN};
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1); /* NaN reads as null */
    tdm__rule_free(r);
    r = compile_ok("amount == \"\"");
    bad[0].value = (tdm_rule_value){.type = TDM_RULE_STRING, .string = NULL, .length = 0};
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1); /* a NULL empty string is "" */
    tdm__rule_free(r);
    r = compile_ok("amount == true");
    bad[0].value = (tdm_rule_value){.type = TDM_RULE_BOOL, .boolean = 42};
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1); /* any non-zero boolean is true */
    tdm__rule_free(r);

    /* Strings need not be NUL-terminated. */
    const char buf[] = {'N', 'L', 'X'};
    field f[1] = {{"country", {.type = TDM_RULE_STRING, .string = buf, .length = 2}}};
    item it2 = {f, 1, 0, 0};
    r = compile_ok("country == \"NL\"");
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it2, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1);
    tdm__rule_free(r);
}

static void test_whole_rules(void **state)
{
    (void)state;
    FIRES("true");
    HOLDS_NOT("false");
    FIRES("(true)");
    FIRES("  amount\t>\n10000\r\n");
    FIRES("label in [\"approve\"] and confidence > 0.5");
    FIRES("not (amount < 100) and (country == \"NL\" or country == \"BE\")");
    FIRES("not not true");
    /* Names: letters, digits and _; keywords are case-sensitive. */
    field f[3] = {{"_x1", num(1)}, {"And", num(2)}, {"labelled", str("y")}};
    item it = {f, 3, 0, 0};
    tdm__rule *r = compile_ok("_x1 == 1 and And == 2 and labelled == \"y\"");
    int fired = 0;
    assert_int_equal(tdm__rule_eval(r, item_lookup, &it, NULL, 0, &fired), 0);
    assert_int_equal(fired, 1);
    tdm__rule_free(r);
    /* Negative literals fold: "-5" is one node. */
    r = compile_ok("amount == -5");
    assert_int_equal(tdm__rule_node_count(r), 3);
    tdm__rule_free(r);
    r = compile_ok("amount in [1, 2, 3]");
    assert_int_equal(tdm__rule_node_count(r), 2);
    tdm__rule_free(r);
}

static void test_compile_errors(void **state)
{
    (void)state;
    BAD("", 1, "the rule is empty");
    BAD("   ", 4, "the rule is empty");
    BAD("amount >", 9, "expected a value after '>', found the end of the rule");
    BAD("amount > > 1", 10, "expected a value after '>', found '>'");
    BAD("(amount > 1", 12, "expected ')' to close the '(' at column 1");
    BAD("amount > 1)", 11, "unmatched ')'");
    BAD("label in [\"a\", \"b\"", 19, "expected ']' to close the list opened at column 10");
    BAD("label in [\"a\" \"b\"]", 15, "expected ',' or ']' after a list item, found '\"b\"'");
    BAD("label in [\"a\",]", 15, "expected a list item after ','");
    BAD("label in [amount]", 11, "list items must be numbers, \"strings\", true, false or null");
    BAD("label in [-\"a\"]", 12, "expected a number after '-' in a list");
    BAD("label in \"a\"", 10, "to look for text inside a string, use contains");
    BAD("label in amount", 10, "expected a list after 'in'");
    BAD("label not in amount", 14, "expected a list after 'not in'");
    BAD("label not \"a\"", 7, "'not' here must be followed by 'in'");
    BAD("[1, 2] == x", 1, "a list can only follow in or not in");
    BAD("x == [1]", 6, "a list can only follow in or not in");
    BAD("1 < 2 < 3", 7, "comparisons do not chain");
    BAD("a == b == c", 8, "comparisons do not chain");
    BAD("a in [1] in [2]", 10, "comparisons do not chain");
    BAD("a = 1", 3, "write == to compare");
    BAD("!a", 1, "write not, or != to compare");
    BAD("a && b", 3, "write and");
    BAD("a || b", 3, "write or");
    BAD("a == 'x'", 6, "strings take double quotes");
    BAD("a == .5", 6, "numbers need a leading digit");
    BAD("a.b == 1", 2, "field names are letters, digits and _");
    BAD("a == 1.", 6, "malformed number (write digits after the point");
    BAD("a == 1e", 6, "an exponent needs digits");
    BAD("a == 1e+", 6, "an exponent needs digits");
    BAD("a == 12abc", 6, "names cannot start with a digit");
    BAD("a == 1.2.3", 6, "malformed number");
    BAD("a == 1e999", 6, "number out of range");
    BAD("a == \"abc", 6, "unterminated string");
    BAD("a == \"abc\\", 6, "unterminated string");
    BAD("a == \"a\\qb\"", 8, "unknown escape '\\q'");
    BAD("a == \"a\nb\"", 8, "control character in a string");
    BAD("a == \"a\x01\"", 8, "control character in a string");
    BAD("a == 1 b", 8, "unexpected 'b' after a complete condition (join conditions with and / or)");
    BAD("a == 1 and", 11, "expected a value after 'and', found the end of the rule");
    BAD("a == #", 6, "unexpected character '#'");
    BAD("caf\xc3\xa9 == 1", 4, "unexpected byte 0xC3");
    BAD("a ~ 1", 3, "unexpected character '~'");
    BAD("in == 1", 1, "expected a value, found 'in'");
    BAD("not", 4, "expected a value after 'not', found the end of the rule");
    BAD("()", 2, "expected a value after '(', found ')'");
    /* Static checks: what can never work is refused where it is written. */
    BAD("5", 1, "a rule must be a condition, like amount > 10000");
    BAD("amount", 1, "a rule must be a condition");
    BAD("(amount)", 1, "a rule must be a condition");
    BAD("amount + 1", 1, "a rule must be a condition");
    BAD("\"yes\"", 1, "a rule must be a condition");
    BAD("null", 1, "a rule must be a condition");
    BAD("label", 1, "a rule must be a condition");
    BAD("5 and x > 1", 1, "the left side of 'and' is never true or false");
    BAD("x > 1 or \"a\"", 10, "the right side of 'or' is never true or false");
    BAD("not 5", 5, "what follows 'not' is never true or false");
    BAD("not label", 5, "what follows 'not' is never true or false");
    BAD("confidence and true", 1, "the left side of 'and' is never true or false");
    BAD("\"a\" + 1 > 0", 1, "'+' works on numbers, and its left side is never a number");
    BAD("1 * (x > 1) > 0", 5, "'*' works on numbers, and its right side is never a number");
    BAD("-\"a\" == 1", 2, "'-' works on numbers, and its operand is never a number");
    BAD("label - 1 == 0", 1, "'-' works on numbers, and its left side is never a number");
    BAD("true < 1", 1, "'<' compares numbers or strings, and its left side is neither");
    BAD("1 >= null", 6, "'>=' compares numbers or strings, and its right side is neither");
    BAD("5 contains \"a\"", 1, "'contains' looks inside strings, and its left side is never");
    BAD("text contains 5", 15, "'contains' looks for a string, and its right side is never");
    BAD("text contains confidence", 15, "its right side is never a string");
    /* An embedded NUL byte. */
    compile_fails("a == 1\0 or b", 12, 7, "a rule cannot contain a NUL byte");
}

static void test_caps(void **state)
{
    (void)state;
    /* 129 names joined by 128 ors: 257 nodes. 128 names: 255 nodes; 256 with a not. */
    char src[TDM__RULE_MAX_SOURCE + 16];
    size_t o = 0;
    for (int i = 0; i < 128; i++)
        o += (size_t)sprintf(src + o, "%sa", i ? " or " : "");
    tdm__rule *r = compile_ok(src);
    assert_int_equal(tdm__rule_node_count(r), 255);
    tdm__rule_free(r);
    char src2[sizeof src + 8];
    snprintf(src2, sizeof src2, "not (%s)", src);
    r = compile_ok(src2);
    assert_int_equal(tdm__rule_node_count(r), TDM__RULE_MAX_NODES);
    tdm__rule_free(r);
    size_t before = o;
    o += (size_t)sprintf(src + o, " or a");
    BAD(src, before + 2, "the rule is too complex (more than 256 parts");
    /* Many nodes through arithmetic too. */
    o = (size_t)sprintf(src, "0");
    for (int i = 0; i < 200; i++)
        o += (size_t)sprintf(src + o, "+1");
    sprintf(src + o, " > 0");
    BAD(src, 256, "too complex");

    /* Strings: 1024 bytes after unescaping pass, 1025 do not. */
    char *s = malloc(TDM__RULE_MAX_SOURCE + 16);
    assert_non_null(s);
    o = (size_t)sprintf(s, "x == \"");
    memset(s + o, 'z', TDM__RULE_MAX_STRING);
    o += TDM__RULE_MAX_STRING;
    strcpy(s + o, "\"");
    r = compile_ok(s);
    tdm__rule_free(r);
    o = (size_t)sprintf(s, "x == \"");
    memset(s + o, 'z', TDM__RULE_MAX_STRING + 1);
    o += TDM__RULE_MAX_STRING + 1;
    strcpy(s + o, "\"");
    BAD(s, 6, "string longer than 1024 bytes");
    /* Escapes count once: 1024 "\n" are 2048 source bytes but 1024 string bytes. */
    o = (size_t)sprintf(s, "x == \"");
    for (int i = 0; i < TDM__RULE_MAX_STRING; i++)
        o += (size_t)sprintf(s + o, "\\n");
    strcpy(s + o, "\"");
    r = compile_ok(s);
    tdm__rule_free(r);

    /* Lists: 1000 items pass, 1001 do not. */
    o = (size_t)sprintf(s, "x in [");
    for (int i = 0; i < TDM__RULE_MAX_LIST; i++)
        o += (size_t)sprintf(s + o, "%s%d", i ? "," : "", i % 10);
    strcpy(s + o, "]");
    r = compile_ok(s);
    tdm__rule_free(r);
    size_t at = o + 2;
    strcpy(s + o, ",1]");
    BAD(s, at, "a list holds at most 1000 items");
    /* Several lists share no cap but the node and source caps. */
    o = 0;
    for (int l = 0; l < 3; l++)
        o += (size_t)sprintf(s + o, "%sx in [1,2,3,4,5,6,7,8,9,10]", l ? " or " : "");
    r = compile_ok(s);
    tdm__rule_free(r);

    /* Source: 4096 bytes pass, 4097 do not. */
    memset(s, ' ', TDM__RULE_MAX_SOURCE);
    memcpy(s, "x == 1", 6);
    s[TDM__RULE_MAX_SOURCE] = '\0';
    r = compile_ok(s);
    tdm__rule_free(r);
    s[TDM__RULE_MAX_SOURCE] = ' ';
    s[TDM__RULE_MAX_SOURCE + 1] = '\0';
    BAD(s, TDM__RULE_MAX_SOURCE + 1, "the rule is longer than 4096 bytes");

    /* Depth: 64 levels of parentheses pass, 65 do not; so do not-chains and minus-chains. */
    o = 0;
    for (int i = 0; i < 64; i++)
        s[o++] = '(';
    o += (size_t)sprintf(s + o, "x > 1");
    for (int i = 0; i < 64; i++)
        s[o++] = ')';
    s[o] = '\0';
    r = compile_ok(s);
    tdm__rule_free(r);
    o = 0;
    for (int i = 0; i < 65; i++)
        s[o++] = '(';
    strcpy(s + o, "x > 1");
    BAD(s, 65, "nested too deeply (more than 64 levels)");
    o = 0;
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(s + o, "not ");
    strcpy(s + o, "true");
    BAD(s, 257, "nested too deeply");
    o = 0;
    for (int i = 0; i < 3000; i++)
        s[o++] = '-';
    strcpy(s + o, "1 > 0");
    BAD(s, 65, "nested too deeply");
    free(s);
}

static void test_rule_check(void **state)
{
    (void)state;
    tdm_error err;
    assert_int_equal(tdm_rule_check("amount > 10000", &err), 0);
    assert_int_equal(err.code, 0);
    assert_int_equal(tdm_rule_check("label in [\"a\", \"b\"", &err), TDM_EINVAL);
    assert_int_equal(err.code, TDM_EINVAL);
    assert_string_equal(err.message,
                        "column 19: expected ']' to close the list opened at column 10 (lists "
                        "are [\"a\", \"b\"])");
    assert_int_equal(tdm_rule_check(NULL, &err), TDM_EINVAL);
    assert_int_equal(tdm_rule_check("x", NULL), TDM_EINVAL);
    assert_int_equal(tdm_rule_check("text contains \"lawyer\"", NULL), 0);
}

/*
 * Random token soup: sequences of valid and invalid tokens, some truncated. Each must compile
 * or fail with a column inside the source (plus one), and what compiles must evaluate. Run
 * under AddressSanitizer, this is the check that nothing reads or writes out of bounds.
 */
static void test_random_soup(void **state)
{
    (void)state;
    static const char *const tokens[] = {
        "amount",
        "country",
        "text",
        "vip",
        "missing",
        "label",
        "confidence",
        "and",
        "or",
        "not",
        "in",
        "contains",
        "true",
        "false",
        "null",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "(",
        ")",
        "[",
        "]",
        ",",
        "0",
        "1",
        "-1",
        "2.5",
        "1e3",
        "1e999",
        "\"NL\"",
        "\"lawyer\"",
        "\"\"",
        "\"a\\\"b\"",
        "\"unterminated",
        "'x'",
        "=",
        "!",
        "&",
        ".5",
        "1.",
        "\\",
        "\t",
        "\n",
        " ",
        "#",
        "\xc3\xa9",
        "\"\\q\"",
        "not in",
        "12ab",
    };
    const size_t n_tokens = sizeof tokens / sizeof tokens[0];
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    char src[600];
    int compiled = 0, refused = 0;
    for (int iter = 0; iter < 40000; iter++) {
        size_t o = 0;
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int n = (int)((seed >> 33) % 24);
        for (int k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *t = tokens[(seed >> 33) % n_tokens];
            size_t len = strlen(t);
            if (o + len + 2 >= sizeof src)
                break;
            memcpy(src + o, t, len);
            o += len;
            if ((seed >> 20) % 3 != 0)
                src[o++] = ' ';
        }
        /* Sometimes cut it short, anywhere. */
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if (o > 0 && (seed >> 40) % 4 == 0)
            o = (size_t)((seed >> 12) % o);
        tdm__rule *r = NULL;
        size_t col = 0;
        char msg[300];
        /* Compile exactly o bytes from a heap copy, so ASan sees any read past the end. */
        char *heap = malloc(o ? o : 1);
        assert_non_null(heap);
        memcpy(heap, src, o);
        int rc = tdm__rule_compile(heap, o, &r, &col, msg, sizeof msg);
        if (rc == 0) {
            compiled++;
            assert_non_null(r);
            assert_true(tdm__rule_node_count(r) >= 1);
            int fired = -1;
            assert_int_equal(tdm__rule_eval(r, item_lookup, &std_item, "x", 0.5, &fired), 0);
            assert_true(fired == 0 || fired == 1);
            int again = -1;
            assert_int_equal(tdm__rule_eval(r, item_lookup, &std_item, "x", 0.5, &again), 0);
            assert_int_equal(fired, again);
            tdm__rule_free(r);
        } else {
            refused++;
            assert_int_equal(rc, TDM_EINVAL);
            assert_null(r);
            assert_true(col >= 1 && col <= o + 1);
            assert_true(strlen(msg) > 10);
        }
        free(heap);
    }
    /* The soup must exercise both outcomes. */
    assert_true(compiled > 100);
    assert_true(refused > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_precedence, setup_item),
        cmocka_unit_test_setup(test_comparisons, setup_item),
        cmocka_unit_test_setup(test_arithmetic, setup_item),
        cmocka_unit_test_setup(test_types_and_null, setup_item),
        cmocka_unit_test_setup(test_label_and_confidence, setup_item),
        cmocka_unit_test_setup(test_contains, setup_item),
        cmocka_unit_test_setup(test_contains_random, setup_item),
        cmocka_unit_test_setup(test_contains_long_needle, setup_item),
        cmocka_unit_test_setup(test_in_lists, setup_item),
        cmocka_unit_test_setup(test_lookup_calls_and_errors, setup_item),
        cmocka_unit_test_setup(test_whole_rules, setup_item),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test_setup(test_caps, setup_item),
        cmocka_unit_test(test_rule_check),
        cmocka_unit_test_setup(test_random_soup, setup_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
