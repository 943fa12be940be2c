/*
 * rule.c — the review-rule language: tokenizer, parser and evaluator.
 *
 * NOTES ON THE DESIGN OF THE RULE COMPILER
 *
 * The grammar, lowest precedence first (docs/process-file.md has the user's version):
 *
 *     rule           = or EOF
 *     or             = and *("or" and)
 *     and            = not *("and" not)
 *     not            = "not" not | comparison
 *     comparison     = additive [ ("=="|"!="|"<"|"<="|">"|">=") additive
 *                               | "in" list | "not" "in" list | "contains" additive ]
 *     additive       = multiplicative *(("+"|"-") multiplicative)
 *     multiplicative = unary *(("*"|"/") unary)
 *     unary          = "-" unary | primary
 *     primary        = NUMBER | STRING | "true" | "false" | "null" | "label" | "confidence"
 *                    | NAME | "(" or ")"
 *     list           = "[" [ item *("," item) ] "]"
 *     item           = ["-"] NUMBER | STRING | "true" | "false" | "null"
 *
 * The parser is recursive descent with one token of lookahead. It emits nodes in postfix
 * order (a node follows its operands), so the program needs no child pointers and the
 * evaluator is a single loop over the nodes with a value stack: every node pushes one value
 * and pops its operands, so the stack never holds more values than there are nodes, and the
 * time is one step per node. Recursion in the parser is bounded by TDM__RULE_MAX_DEPTH
 * (nesting of parentheses, `not` and unary minus), counted explicitly, so no input can
 * exhaust the C stack.
 *
 * Every node carries a static type mask (the run-time types it may produce). The compiler
 * uses it to refuse what can never work — `5 and x`, `"a" + 1`, a bare `amount` as a
 * whole rule — with a message at the operand's column, instead of a rule that silently never
 * fires. Field lookups may produce anything, so they pass every check but the top level's,
 * which must be a condition.
 *
 * Compilation works in a heap workspace sized for the largest rule and copies the finished
 * program (nodes, list items, then strings) into one exactly-sized allocation. Unary minus
 * on a number literal is folded into the literal.
 */
#define _POSIX_C_SOURCE 200809L

#include "policy/rule.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Static type masks: the run-time types a node may produce. */
enum {
    M_NULL = 1,
    M_BOOL = 2,
    M_NUM = 4,
    M_STR = 8,
    M_ANY = 15,
};

typedef enum rule_op {
    OP_NUM,
    OP_STR,
    OP_TRUE,
    OP_FALSE,
    OP_NULL,
    OP_FIELD,
    OP_LABEL,
    OP_CONFIDENCE,
    OP_NEG,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOT_IN,
    OP_CONTAINS,
    OP_NOT,
    OP_AND,
    OP_OR,
} rule_op;

/*
 * One node, or one list item (which uses only the literal ops). For OP_STR and OP_FIELD,
 * `off`/`len` locate the bytes in the string pool (NUL-terminated there too); for OP_IN and
 * OP_NOT_IN they are the first list item and the item count.
 */
typedef struct rnode {
    uint8_t op;
    uint8_t mask;
    uint16_t column; /* 1-based column of the node's token (an operator's, for operations) */
    uint32_t off;
    uint32_t len;
    double num;
} rnode;

struct tdm__rule {
    size_t n_nodes;
    size_t n_items;
    const rnode *nodes;
    const rnode *items;
    const char *pool;
};

/* ---- tokenizer ----------------------------------------------------------------------------- */

typedef enum tok_kind {
    T_END,
    T_NUM,
    T_STR,
    T_NAME,
    T_AND,
    T_OR,
    T_NOT,
    T_IN,
    T_CONTAINS,
    T_TRUE,
    T_FALSE,
    T_NULL,
    T_LABEL,
    T_CONFIDENCE,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_LPAREN,
    T_RPAREN,
    T_LBRACKET,
    T_RBRACKET,
    T_COMMA,
} tok_kind;

typedef struct token {
    tok_kind kind;
    size_t pos; /* byte offset of the token in the source */
    size_t len; /* source bytes */
    double num;
    uint32_t str_off; /* T_STR: the unescaped bytes in the pool */
    uint32_t str_len;
} token;

#define POOL_CAP  (2 * TDM__RULE_MAX_SOURCE + 2)
#define ITEMS_CAP (TDM__RULE_MAX_SOURCE / 2 + 1)

typedef struct parser {
    const char *src;
    size_t len;
    size_t pos; /* the next byte to tokenize */
    token tok;  /* the lookahead */
    token prev; /* the token before it, for messages */
    int have_prev;
    int depth;
    int failed;
    size_t err_column;
    char *msg;
    size_t msgcap;
    size_t n_nodes;
    size_t n_items;
    size_t pool_len;
    rnode nodes[TDM__RULE_MAX_NODES];
    rnode items[ITEMS_CAP];
    char pool[POOL_CAP];
    char numbuf[TDM__RULE_MAX_SOURCE + 1];
} parser;

/* What a parsed subexpression is: its static type mask and where it starts. */
typedef struct expr {
    uint8_t mask;
    size_t start;      /* byte offset of its first token */
    size_t first_node; /* index of its first node */
} expr;

static int fail(parser *p, size_t pos, const char *fmt, ...) TDM_PRINTF(3, 4);

static int fail(parser *p, size_t pos, const char *fmt, ...)
{
    if (!p->failed) {
        p->failed = 1;
        p->err_column = pos + 1;
        if (p->msg != NULL && p->msgcap > 0) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->msg, p->msgcap, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(int c)
{
    return is_name_start(c) || is_digit(c);
}

static const struct {
    const char *word;
    tok_kind kind;
} keywords[] = {
    {"and", T_AND},           {"or", T_OR},
    {"not", T_NOT},           {"in", T_IN},
    {"contains", T_CONTAINS}, {"true", T_TRUE},
    {"false", T_FALSE},       {"null", T_NULL},
    {"label", T_LABEL},       {"confidence", T_CONFIDENCE},
};

/* Describes a token for a message: 'text' (cut short), or "the end of the rule". */
static const char *describe(const parser *p, const token *t, char *buf, size_t cap)
{
    if (t->kind == T_END)
        return "the end of the rule";
    int n = t->len > 24 ? 24 : (int)t->len;
    snprintf(buf, cap, "'%.*s%s'", n, p->src + t->pos, t->len > 24 ? "..." : "");
    return buf;
}

static int lex_string(parser *p, size_t start)
{
    size_t i = start + 1;
    size_t out = p->pool_len;
    size_t n = 0;
    for (;;) {
        if (i >= p->len)
            return fail(p, start, "unterminated string (close it with \")");
        unsigned char c = (unsigned char)p->src[i];
        if (c == '"')
            break;
        if (c < 0x20 || c == 0x7f)
            return fail(p, i,
                        "control character in a string (write \\n for a newline, \\t for "
                        "a tab)");
        if (c == '\\') {
            if (i + 1 >= p->len)
                return fail(p, start, "unterminated string (close it with \")");
            char e = p->src[i + 1];
            switch (e) {
            case '"':
            case '\\':
                c = (unsigned char)e;
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            default:
                if ((unsigned char)e >= 0x21 && (unsigned char)e < 0x7f)
                    return fail(p, i,
                                "unknown escape '\\%c' in a string (known: \\\" \\\\ \\n \\t)", e);
                return fail(p, i, "unknown escape in a string (known: \\\" \\\\ \\n \\t)");
            }
            i += 2;
        } else {
            i++;
        }
        if (n == TDM__RULE_MAX_STRING)
            return fail(p, start,
                        "string longer than %d bytes (shorten it, or test a shorter part with "
                        "contains)",
                        TDM__RULE_MAX_STRING);
        TDM_ASSERT(out + n + 1 < POOL_CAP);
        p->pool[out + n++] = (char)c;
    }
    p->pool[out + n] = '\0';
    p->pool_len = out + n + 1;
    p->tok.kind = T_STR;
    p->tok.str_off = (uint32_t)out;
    p->tok.str_len = (uint32_t)n;
    p->pos = i + 1;
    return 0;
}

static int lex_number(parser *p, size_t start)
{
    size_t i = start;
    while (i < p->len && is_digit(p->src[i]))
        i++;
    if (i < p->len && p->src[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(p->src[i]))
            return fail(p, start, "malformed number (write digits after the point, like 0.5)");
        while (i < p->len && is_digit(p->src[i]))
            i++;
    }
    if (i < p->len && (p->src[i] == 'e' || p->src[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->len && (p->src[j] == '+' || p->src[j] == '-'))
            j++;
        if (j < p->len && is_digit(p->src[j])) {
            i = j;
            while (i < p->len && is_digit(p->src[i]))
                i++;
        } else {
            return fail(p, start, "malformed number (an exponent needs digits, like 1e6)");
        }
    }
    if (i < p->len && (is_name_char(p->src[i]) || p->src[i] == '.'))
        return fail(p, start,
                    "malformed number (numbers are written like 42, 0.5 or 1e6; names cannot "
                    "start with a digit)");
    size_t n = i - start;
    memcpy(p->numbuf, p->src + start, n);
    p->numbuf[n] = '\0';
    errno = 0;
    char *end = NULL;
    double v = strtod(p->numbuf, &end);
    if (end != p->numbuf + n)
        return fail(p, start, "malformed number");
    if (!isfinite(v))
        return fail(p, start, "number out of range (at most about 1.8e308)");
    p->tok.kind = T_NUM;
    p->tok.num = v;
    p->pos = i;
    return 0;
}

/* Reads the next token into p->tok. */
static int next(parser *p)
{
    p->prev = p->tok;
    p->have_prev = 1;
    while (p->pos < p->len) {
        char c = p->src[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
    size_t start = p->pos;
    p->tok.pos = start;
    p->tok.len = 1;
    if (start >= p->len) {
        p->tok.kind = T_END;
        p->tok.len = 0;
        return 0;
    }
    const char *s = p->src;
    unsigned char c = (unsigned char)s[start];
    unsigned char d = start + 1 < p->len ? (unsigned char)s[start + 1] : 0;
    int rc = 0;
    p->pos = start + 1;
    switch (c) {
    case '(':
        p->tok.kind = T_LPAREN;
        break;
    case ')':
        p->tok.kind = T_RPAREN;
        break;
    case '[':
        p->tok.kind = T_LBRACKET;
        break;
    case ']':
        p->tok.kind = T_RBRACKET;
        break;
    case ',':
        p->tok.kind = T_COMMA;
        break;
    case '+':
        p->tok.kind = T_PLUS;
        break;
    case '-':
        p->tok.kind = T_MINUS;
        break;
    case '*':
        p->tok.kind = T_STAR;
        break;
    case '/':
        p->tok.kind = T_SLASH;
        break;
    case '<':
    case '>':
        if (d == '=') {
            p->tok.kind = c == '<' ? T_LE : T_GE;
            p->pos++;
        } else {
            p->tok.kind = c == '<' ? T_LT : T_GT;
        }
        break;
    case '=':
        if (d != '=')
            return fail(p, start, "'=' is not an operator (write == to compare)");
        p->tok.kind = T_EQ;
        p->pos++;
        break;
    case '!':
        if (d != '=')
            return fail(p, start, "'!' is not an operator (write not, or != to compare)");
        p->tok.kind = T_NE;
        p->pos++;
        break;
    case '&':
        return fail(p, start, "'&' is not an operator (write and)");
    case '|':
        return fail(p, start, "'|' is not an operator (write or)");
    case '\'':
        return fail(p, start, "strings take double quotes (write \"like this\")");
    case '.':
        return fail(p, start,
                    "unexpected '.' (numbers need a leading digit, like 0.5; field names are "
                    "letters, digits and _)");
    case '"':
        rc = lex_string(p, start);
        break;
    default:
        if (is_digit(c)) {
            rc = lex_number(p, start);
        } else if (is_name_start(c)) {
            size_t i = start + 1;
            while (i < p->len && is_name_char(s[i]))
                i++;
            p->pos = i;
            p->tok.kind = T_NAME;
            for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++) {
                if (strlen(keywords[k].word) == i - start &&
                    memcmp(keywords[k].word, s + start, i - start) == 0) {
                    p->tok.kind = keywords[k].kind;
                    break;
                }
            }
        } else if (c >= 0x21 && c < 0x7f) {
            return fail(p, start,
                        "unexpected character '%c' (rules are made of names, numbers, "
                        "\"strings\", [lists] and operators such as == < and or not in "
                        "contains)",
                        c);
        } else {
            return fail(p, start,
                        "unexpected byte 0x%02X (names are ASCII letters, digits and _; put "
                        "other text inside \"strings\")",
                        c);
        }
    }
    if (rc != 0)
        return rc;
    p->tok.len = p->pos - start;
    return 0;
}

/* ---- parser -------------------------------------------------------------------------------- */

static int emit(parser *p, rule_op op, uint8_t mask, size_t pos, uint32_t off, uint32_t len,
                double num)
{
    if (p->n_nodes == TDM__RULE_MAX_NODES)
        return fail(p, pos,
                    "the rule is too complex (more than %d parts; split it into several rules, "
                    "one per reason to review)",
                    TDM__RULE_MAX_NODES);
    rnode *n = &p->nodes[p->n_nodes++];
    n->op = (uint8_t)op;
    n->mask = mask;
    n->column = (uint16_t)(pos + 1);
    n->off = off;
    n->len = len;
    n->num = num;
    return 0;
}

static int parse_or(parser *p, expr *e);

static int enter(parser *p, size_t pos)
{
    if (++p->depth > TDM__RULE_MAX_DEPTH)
        return fail(p, pos, "the rule is nested too deeply (more than %d levels)",
                    TDM__RULE_MAX_DEPTH);
    return 0;
}

static int expect_value_error(parser *p)
{
    char b1[40], b2[40];
    if (!p->have_prev && p->tok.kind == T_END)
        return fail(p, p->tok.pos, "the rule is empty (write a condition, like amount > 10000)");
    if (p->tok.kind == T_LBRACKET)
        return fail(p, p->tok.pos,
                    "a list can only follow in or not in (like label in [\"a\", \"b\"])");
    if (!p->have_prev)
        return fail(p, p->tok.pos,
                    "expected a value, found %s (values are field names, numbers, \"strings\", "
                    "true, false, null, label, confidence and (parenthesised conditions))",
                    describe(p, &p->tok, b2, sizeof b2));
    return fail(p, p->tok.pos,
                "expected a value after %s, found %s (values are field names, numbers, "
                "\"strings\", true, false, null, label, confidence and (parenthesised "
                "conditions))",
                describe(p, &p->prev, b1, sizeof b1), describe(p, &p->tok, b2, sizeof b2));
}

static int parse_primary(parser *p, expr *e)
{
    token t = p->tok;
    e->start = t.pos;
    e->first_node = p->n_nodes;
    switch (t.kind) {
    case T_NUM:
        e->mask = M_NUM;
        return emit(p, OP_NUM, M_NUM, t.pos, 0, 0, t.num) || next(p);
    case T_STR:
        e->mask = M_STR;
        return emit(p, OP_STR, M_STR, t.pos, t.str_off, t.str_len, 0) || next(p);
    case T_TRUE:
    case T_FALSE:
        e->mask = M_BOOL;
        return emit(p, t.kind == T_TRUE ? OP_TRUE : OP_FALSE, M_BOOL, t.pos, 0, 0, 0) || next(p);
    case T_NULL:
        e->mask = M_NULL;
        return emit(p, OP_NULL, M_NULL, t.pos, 0, 0, 0) || next(p);
    case T_LABEL:
        e->mask = M_STR | M_NULL;
        return emit(p, OP_LABEL, e->mask, t.pos, 0, 0, 0) || next(p);
    case T_CONFIDENCE:
        e->mask = M_NUM | M_NULL;
        return emit(p, OP_CONFIDENCE, e->mask, t.pos, 0, 0, 0) || next(p);
    case T_NAME: {
        size_t off = p->pool_len;
        TDM_ASSERT(off + t.len + 1 <= POOL_CAP);
        memcpy(p->pool + off, p->src + t.pos, t.len);
        p->pool[off + t.len] = '\0';
        p->pool_len = off + t.len + 1;
        e->mask = M_ANY;
        return emit(p, OP_FIELD, M_ANY, t.pos, (uint32_t)off, (uint32_t)t.len, 0) || next(p);
    }
    case T_LPAREN: {
        if (enter(p, t.pos) || next(p) || parse_or(p, e))
            return -1;
        if (p->tok.kind != T_RPAREN) {
            char b[40];
            return fail(p, p->tok.pos, "expected ')' to close the '(' at column %zu, found %s",
                        t.pos + 1, describe(p, &p->tok, b, sizeof b));
        }
        p->depth--;
        e->start = t.pos;
        return next(p);
    }
    default:
        return expect_value_error(p);
    }
}

static const char *op_name(tok_kind k)
{
    switch (k) {
    case T_PLUS:
        return "+";
    case T_MINUS:
        return "-";
    case T_STAR:
        return "*";
    case T_SLASH:
        return "/";
    case T_EQ:
        return "==";
    case T_NE:
        return "!=";
    case T_LT:
        return "<";
    case T_LE:
        return "<=";
    case T_GT:
        return ">";
    case T_GE:
        return ">=";
    case T_AND:
        return "and";
    case T_OR:
        return "or";
    case T_NOT:
        return "not";
    case T_IN:
        return "in";
    case T_CONTAINS:
        return "contains";
    default:
        return "?";
    }
}

static int need_number(parser *p, const expr *e, tok_kind op, const char *side)
{
    if (e->mask & M_NUM)
        return 0;
    return fail(p, e->start, "'%s' works on numbers, and its %s is never a number", op_name(op),
                side);
}

static int parse_unary(parser *p, expr *e)
{
    if (p->tok.kind != T_MINUS)
        return parse_primary(p, e);
    size_t pos = p->tok.pos;
    size_t first = p->n_nodes;
    expr o;
    if (enter(p, pos) || next(p) || parse_unary(p, &o) || need_number(p, &o, T_MINUS, "operand"))
        return -1;
    p->depth--;
    e->start = pos;
    e->first_node = first;
    if (p->n_nodes == first + 1 && p->nodes[first].op == OP_NUM) {
        /* A negative literal: fold the sign in. */
        p->nodes[first].num = -p->nodes[first].num;
        p->nodes[first].column = (uint16_t)(pos + 1);
        e->mask = M_NUM;
        return 0;
    }
    e->mask = M_NUM | M_NULL;
    return emit(p, OP_NEG, e->mask, pos, 0, 0, 0);
}

static int parse_multiplicative(parser *p, expr *e)
{
    if (parse_unary(p, e))
        return -1;
    while (p->tok.kind == T_STAR || p->tok.kind == T_SLASH) {
        tok_kind op = p->tok.kind;
        size_t pos = p->tok.pos;
        expr r;
        if (need_number(p, e, op, "left side") || next(p) || parse_unary(p, &r) ||
            need_number(p, &r, op, "right side"))
            return -1;
        e->mask = M_NUM | M_NULL;
        if (emit(p, op == T_STAR ? OP_MUL : OP_DIV, e->mask, pos, 0, 0, 0))
            return -1;
    }
    return 0;
}

static int parse_additive(parser *p, expr *e)
{
    if (parse_multiplicative(p, e))
        return -1;
    while (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS) {
        tok_kind op = p->tok.kind;
        size_t pos = p->tok.pos;
        expr r;
        if (need_number(p, e, op, "left side") || next(p) || parse_multiplicative(p, &r) ||
            need_number(p, &r, op, "right side"))
            return -1;
        e->mask = M_NUM | M_NULL;
        if (emit(p, op == T_PLUS ? OP_ADD : OP_SUB, e->mask, pos, 0, 0, 0))
            return -1;
    }
    return 0;
}

static int parse_list(parser *p, const char *after, uint32_t *first, uint32_t *count)
{
    if (p->tok.kind != T_LBRACKET) {
        if (p->tok.kind == T_STR)
            return fail(p, p->tok.pos,
                        "expected a list after '%s', like [\"a\", \"b\"] (to look for text inside "
                        "a string, use contains)",
                        after);
        return fail(p, p->tok.pos, "expected a list after '%s', like [\"a\", \"b\"]", after);
    }
    size_t open = p->tok.pos;
    *first = (uint32_t)p->n_items;
    *count = 0;
    if (next(p))
        return -1;
    if (p->tok.kind == T_RBRACKET)
        return next(p);
    for (;;) {
        char b[40];
        token t = p->tok;
        double sign = 1;
        if (t.kind == T_MINUS) {
            if (next(p))
                return -1;
            if (p->tok.kind != T_NUM)
                return fail(p, p->tok.pos, "expected a number after '-' in a list, found %s",
                            describe(p, &p->tok, b, sizeof b));
            sign = -1;
            t.kind = T_NUM;
            t.num = p->tok.num;
        }
        rnode item = {0};
        item.column = (uint16_t)(t.pos + 1);
        switch (t.kind) {
        case T_NUM:
            item.op = OP_NUM;
            item.mask = M_NUM;
            item.num = sign * t.num;
            break;
        case T_STR:
            item.op = OP_STR;
            item.mask = M_STR;
            item.off = t.str_off;
            item.len = t.str_len;
            break;
        case T_TRUE:
        case T_FALSE:
            item.op = t.kind == T_TRUE ? OP_TRUE : OP_FALSE;
            item.mask = M_BOOL;
            break;
        case T_NULL:
            item.op = OP_NULL;
            item.mask = M_NULL;
            break;
        case T_RBRACKET:
            return fail(p, t.pos, "expected a list item after ',' (lists are [\"a\", \"b\"])");
        default:
            return fail(p, t.pos,
                        "list items must be numbers, \"strings\", true, false or null, found %s "
                        "(lists are [\"a\", \"b\"])",
                        describe(p, &t, b, sizeof b));
        }
        if (*count == TDM__RULE_MAX_LIST)
            return fail(p, t.pos,
                        "a list holds at most %d items (split it over several rules, or review "
                        "by a field instead)",
                        TDM__RULE_MAX_LIST);
        TDM_ASSERT(p->n_items < ITEMS_CAP);
        p->items[p->n_items++] = item;
        (*count)++;
        if (next(p))
            return -1;
        if (p->tok.kind == T_COMMA) {
            if (next(p))
                return -1;
            continue;
        }
        if (p->tok.kind == T_RBRACKET)
            return next(p);
        if (p->tok.kind == T_END)
            return fail(p, p->tok.pos,
                        "expected ']' to close the list opened at column %zu (lists are [\"a\", "
                        "\"b\"])",
                        open + 1);
        return fail(p, p->tok.pos,
                    "expected ',' or ']' after a list item, found %s (lists are [\"a\", \"b\"])",
                    describe(p, &p->tok, b, sizeof b));
    }
}

static int is_comparison(tok_kind k)
{
    return k == T_EQ || k == T_NE || k == T_LT || k == T_LE || k == T_GT || k == T_GE ||
           k == T_IN || k == T_CONTAINS;
}

static int parse_comparison(parser *p, expr *e)
{
    if (parse_additive(p, e))
        return -1;
    tok_kind op = p->tok.kind;
    size_t oppos = p->tok.pos;
    if (op == T_IN || op == T_NOT) {
        uint32_t first = 0, count = 0;
        if (op == T_NOT) {
            char b[40];
            if (next(p))
                return -1;
            if (p->tok.kind != T_IN)
                return fail(p, oppos,
                            "'not' here must be followed by 'in', found %s (write x not in [...], "
                            "or put not before a condition: not (x == 1))",
                            describe(p, &p->tok, b, sizeof b));
        }
        if (next(p) || parse_list(p, op == T_IN ? "in" : "not in", &first, &count))
            return -1;
        if (emit(p, op == T_IN ? OP_IN : OP_NOT_IN, M_BOOL, oppos, first, count, 0))
            return -1;
    } else if (is_comparison(op)) {
        expr r;
        if (next(p) || parse_additive(p, &r))
            return -1;
        rule_op code;
        switch (op) {
        case T_EQ:
            code = OP_EQ;
            break;
        case T_NE:
            code = OP_NE;
            break;
        case T_LT:
            code = OP_LT;
            break;
        case T_LE:
            code = OP_LE;
            break;
        case T_GT:
            code = OP_GT;
            break;
        case T_GE:
            code = OP_GE;
            break;
        default:
            code = OP_CONTAINS;
            break;
        }
        if (code == OP_CONTAINS) {
            if (!(e->mask & M_STR))
                return fail(p, e->start,
                            "'contains' looks inside strings, and its left side is "
                            "never a string");
            if (!(r.mask & M_STR))
                return fail(p, r.start,
                            "'contains' looks for a string, and its right side is "
                            "never a string");
        } else if (code != OP_EQ && code != OP_NE) {
            if (!(e->mask & (M_NUM | M_STR)))
                return fail(p, e->start,
                            "'%s' compares numbers or strings, and its left side is neither",
                            op_name(op));
            if (!(r.mask & (M_NUM | M_STR)))
                return fail(p, r.start,
                            "'%s' compares numbers or strings, and its right side is neither",
                            op_name(op));
        }
        if (emit(p, code, M_BOOL, oppos, 0, 0, 0))
            return -1;
    } else {
        return 0;
    }
    e->mask = M_BOOL;
    if (is_comparison(p->tok.kind))
        return fail(p, p->tok.pos,
                    "comparisons do not chain (join them with and: a < b and b < c)");
    return 0;
}

static int need_bool(parser *p, const expr *e, const char *what)
{
    if (e->mask & M_BOOL)
        return 0;
    return fail(p, e->start, "%s is never true or false (write a condition, like amount > 10000)",
                what);
}

static int parse_not(parser *p, expr *e)
{
    if (p->tok.kind != T_NOT)
        return parse_comparison(p, e);
    size_t pos = p->tok.pos;
    size_t first = p->n_nodes;
    expr o;
    if (enter(p, pos) || next(p) || parse_not(p, &o) || need_bool(p, &o, "what follows 'not'"))
        return -1;
    p->depth--;
    e->start = pos;
    e->first_node = first;
    e->mask = M_BOOL;
    return emit(p, OP_NOT, M_BOOL, pos, 0, 0, 0);
}

static int parse_and(parser *p, expr *e)
{
    if (parse_not(p, e))
        return -1;
    while (p->tok.kind == T_AND) {
        size_t pos = p->tok.pos;
        expr r;
        if (need_bool(p, e, "the left side of 'and'") || next(p) || parse_not(p, &r) ||
            need_bool(p, &r, "the right side of 'and'"))
            return -1;
        e->mask = M_BOOL;
        if (emit(p, OP_AND, M_BOOL, pos, 0, 0, 0))
            return -1;
    }
    return 0;
}

static int parse_or(parser *p, expr *e)
{
    if (parse_and(p, e))
        return -1;
    while (p->tok.kind == T_OR) {
        size_t pos = p->tok.pos;
        expr r;
        if (need_bool(p, e, "the left side of 'or'") || next(p) || parse_and(p, &r) ||
            need_bool(p, &r, "the right side of 'or'"))
            return -1;
        e->mask = M_BOOL;
        if (emit(p, OP_OR, M_BOOL, pos, 0, 0, 0))
            return -1;
    }
    return 0;
}

static int parse_rule(parser *p)
{
    expr e;
    if (next(p))
        return -1;
    p->have_prev = 0;
    if (parse_or(p, &e))
        return -1;
    if (p->tok.kind != T_END) {
        char b[40];
        if (p->tok.kind == T_RPAREN)
            return fail(p, p->tok.pos, "unmatched ')' (remove it, or add the '(' it closes)");
        return fail(p, p->tok.pos,
                    "unexpected %s after a complete condition (join conditions with and / or)",
                    describe(p, &p->tok, b, sizeof b));
    }
    if (e.mask != M_BOOL)
        return fail(p, e.start,
                    "a rule must be a condition, like amount > 10000 or label == "
                    "\"reject\"");
    return 0;
}

#ifdef TDM_DEBUG
size_t tdm__rule_alloc_fail_countdown = 0;

static void *xmalloc(size_t size)
{
    if (tdm__rule_alloc_fail_countdown != 0 && --tdm__rule_alloc_fail_countdown == 0)
        return NULL;
    return malloc(size);
}
#else
static void *xmalloc(size_t size)
{
    return malloc(size);
}
#endif

int tdm__rule_compile(const char *src, size_t len, tdm__rule **out, size_t *err_column, char *msg,
                      size_t msgcap)
{
    TDM_ASSERT(out != NULL);
    *out = NULL;
    if (err_column != NULL)
        *err_column = 0;
    if (msg != NULL && msgcap > 0)
        msg[0] = '\0';
    if (src == NULL && len > 0)
        return TDM_EINVAL;
    if (len > TDM__RULE_MAX_SOURCE) {
        if (msg != NULL && msgcap > 0)
            snprintf(msg, msgcap,
                     "the rule is longer than %d bytes (split it into several rules, one per "
                     "reason to review)",
                     TDM__RULE_MAX_SOURCE);
        if (err_column != NULL)
            *err_column = TDM__RULE_MAX_SOURCE + 1;
        return TDM_EINVAL;
    }
    if (src != NULL && memchr(src, '\0', len) != NULL) {
        if (msg != NULL && msgcap > 0)
            snprintf(msg, msgcap, "a rule cannot contain a NUL byte");
        if (err_column != NULL)
            *err_column = (size_t)((const char *)memchr(src, '\0', len) - src) + 1;
        return TDM_EINVAL;
    }

    parser *p = xmalloc(sizeof *p);
    if (p == NULL)
        return TDM_ENOMEM;
    p->src = src ? src : "";
    p->len = len;
    p->pos = 0;
    memset(&p->tok, 0, sizeof p->tok);
    p->prev = p->tok;
    p->have_prev = 0;
    p->depth = 0;
    p->failed = 0;
    p->err_column = 0;
    p->msg = msg;
    p->msgcap = msgcap;
    p->n_nodes = 0;
    p->n_items = 0;
    p->pool_len = 0;

    if (parse_rule(p) != 0) {
        TDM_ASSERT(p->failed);
        if (err_column != NULL)
            *err_column = p->err_column;
        free(p);
        return TDM_EINVAL;
    }

    size_t nodes_bytes = p->n_nodes * sizeof(rnode);
    size_t items_bytes = p->n_items * sizeof(rnode);
    tdm__rule *r = xmalloc(sizeof *r + nodes_bytes + items_bytes + p->pool_len);
    if (r == NULL) {
        free(p);
        return TDM_ENOMEM;
    }
    rnode *nodes = (rnode *)(r + 1);
    rnode *items = nodes + p->n_nodes;
    char *pool = (char *)(items + p->n_items);
    memcpy(nodes, p->nodes, nodes_bytes);
    memcpy(items, p->items, items_bytes);
    memcpy(pool, p->pool, p->pool_len);
    r->n_nodes = p->n_nodes;
    r->n_items = p->n_items;
    r->nodes = nodes;
    r->items = items;
    r->pool = pool;
    free(p);
    *out = r;
    return 0;
}

void tdm__rule_free(tdm__rule *r)
{
    free(r);
}

size_t tdm__rule_node_count(const tdm__rule *r)
{
    return r ? r->n_nodes : 0;
}

/* ---- evaluator ----------------------------------------------------------------------------- */

static tdm_rule_value null_value(void)
{
    tdm_rule_value v = {0};
    v.type = TDM_RULE_NULL;
    return v;
}

static tdm_rule_value bool_value(int b)
{
    tdm_rule_value v = {0};
    v.type = TDM_RULE_BOOL;
    v.boolean = b != 0;
    return v;
}

static tdm_rule_value number_value(double x)
{
    tdm_rule_value v = {0};
    if (!isfinite(x))
        return null_value(); /* overflow, 0/0 and friends read as "no value" */
    v.type = TDM_RULE_NUMBER;
    v.number = x;
    return v;
}

static tdm_rule_value literal_value(const tdm__rule *r, const rnode *n)
{
    tdm_rule_value v = {0};
    switch ((rule_op)n->op) {
    case OP_NUM:
        v.type = TDM_RULE_NUMBER;
        v.number = n->num;
        break;
    case OP_STR:
        v.type = TDM_RULE_STRING;
        v.string = r->pool + n->off;
        v.length = n->len;
        break;
    case OP_TRUE:
    case OP_FALSE:
        v = bool_value(n->op == OP_TRUE);
        break;
    default:
        v = null_value();
        break;
    }
    return v;
}

static int values_equal(const tdm_rule_value *a, const tdm_rule_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case TDM_RULE_NULL:
        return 1;
    case TDM_RULE_BOOL:
        return a->boolean == b->boolean;
    case TDM_RULE_NUMBER:
        return a->number == b->number;
    case TDM_RULE_STRING:
        return a->length == b->length &&
               (a->length == 0 || memcmp(a->string, b->string, a->length) == 0);
    }
    return 0;
}

/* <0, 0, >0 in *cmp for two numbers or two strings; returns 0 when they do not compare. */
static int values_order(const tdm_rule_value *a, const tdm_rule_value *b, int *cmp)
{
    if (a->type == TDM_RULE_NUMBER && b->type == TDM_RULE_NUMBER) {
        *cmp = a->number < b->number ? -1 : a->number > b->number ? 1 : 0;
        return 1;
    }
    if (a->type == TDM_RULE_STRING && b->type == TDM_RULE_STRING) {
        size_t n = a->length < b->length ? a->length : b->length;
        int c = n ? memcmp(a->string, b->string, n) : 0;
        if (c == 0)
            c = a->length < b->length ? -1 : a->length > b->length ? 1 : 0;
        *cmp = c;
        return 1;
    }
    return 0;
}

static unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/*
 * ASCII-case-insensitive substring search. Needles up to TDM__RULE_MAX_STRING bytes (every
 * literal) use Knuth-Morris-Pratt with a table on the stack, so the time is linear in the
 * haystack whatever its content; longer needles, which only a field can supply, fall back to
 * the plain quadratic search.
 */
static int contains_ci(const char *hay, size_t hn, const char *needle, size_t nn)
{
    const unsigned char *h = (const unsigned char *)hay;
    const unsigned char *n = (const unsigned char *)needle;
    if (nn == 0)
        return 1;
    if (nn > hn)
        return 0;
    if (nn > TDM__RULE_MAX_STRING) {
        for (size_t i = 0; i + nn <= hn; i++) {
            size_t k = 0;
            while (k < nn && fold(h[i + k]) == fold(n[k]))
                k++;
            if (k == nn)
                return 1;
        }
        return 0;
    }
    uint16_t next_k[TDM__RULE_MAX_STRING];
    next_k[0] = 0;
    for (size_t i = 1, k = 0; i < nn; i++) {
        while (k > 0 && fold(n[i]) != fold(n[k]))
            k = next_k[k - 1];
        if (fold(n[i]) == fold(n[k]))
            k++;
        next_k[i] = (uint16_t)k;
    }
    for (size_t i = 0, k = 0; i < hn; i++) {
        while (k > 0 && fold(h[i]) != fold(n[k]))
            k = next_k[k - 1];
        if (fold(h[i]) == fold(n[k]))
            k++;
        if (k == nn)
            return 1;
    }
    return 0;
}

static int lookup_field(const tdm__rule *r, const rnode *n, tdm_rule_lookup lookup, void *ctx,
                        tdm_rule_value *out)
{
    *out = null_value();
    if (lookup == NULL)
        return 0;
    tdm_rule_value v = null_value();
    int rc = lookup(ctx, r->pool + n->off, n->len, &v);
    if (rc == TDM_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    switch (v.type) {
    case TDM_RULE_NULL:
        break;
    case TDM_RULE_BOOL:
        *out = bool_value(v.boolean);
        break;
    case TDM_RULE_NUMBER:
        *out = number_value(v.number);
        break;
    case TDM_RULE_STRING:
        if (v.string == NULL && v.length > 0)
            return TDM_EINVAL;
        out->type = TDM_RULE_STRING;
        out->string = v.string ? v.string : "";
        out->length = v.length;
        break;
    default:
        return TDM_EINVAL;
    }
    return 0;
}

int tdm__rule_eval(const tdm__rule *r, tdm_rule_lookup lookup, void *ctx, const char *label,
                   double confidence, int *fired)
{
    TDM_ASSERT(r != NULL && fired != NULL);
    *fired = 0;
    tdm_rule_value stack[TDM__RULE_MAX_NODES];
    size_t sp = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const rnode *n = &r->nodes[i];
        tdm_rule_value v;
        switch ((rule_op)n->op) {
        case OP_NUM:
        case OP_STR:
        case OP_TRUE:
        case OP_FALSE:
        case OP_NULL:
            v = literal_value(r, n);
            break;
        case OP_FIELD: {
            int rc = lookup_field(r, n, lookup, ctx, &v);
            if (rc != 0)
                return rc;
            break;
        }
        case OP_LABEL:
            if (label == NULL) {
                v = null_value();
            } else {
                v = null_value();
                v.type = TDM_RULE_STRING;
                v.string = label;
                v.length = strlen(label);
            }
            break;
        case OP_CONFIDENCE:
            v = number_value(confidence);
            break;
        case OP_NEG:
            TDM_ASSERT(sp >= 1);
            sp--;
            v = stack[sp].type == TDM_RULE_NUMBER ? number_value(-stack[sp].number) : null_value();
            break;
        case OP_NOT:
            TDM_ASSERT(sp >= 1);
            sp--;
            v = bool_value(stack[sp].type == TDM_RULE_BOOL && !stack[sp].boolean);
            break;
        case OP_IN:
        case OP_NOT_IN: {
            TDM_ASSERT(sp >= 1);
            sp--;
            int found = 0;
            for (uint32_t k = 0; k < n->len && !found; k++) {
                tdm_rule_value item = literal_value(r, &r->items[n->off + k]);
                found = values_equal(&stack[sp], &item);
            }
            v = bool_value(n->op == OP_IN ? found : !found);
            break;
        }
        default: {
            TDM_ASSERT(sp >= 2);
            const tdm_rule_value *a = &stack[sp - 2];
            const tdm_rule_value *b = &stack[sp - 1];
            int both_numbers = a->type == TDM_RULE_NUMBER && b->type == TDM_RULE_NUMBER;
            int cmp = 0;
            switch ((rule_op)n->op) {
            case OP_ADD:
                v = both_numbers ? number_value(a->number + b->number) : null_value();
                break;
            case OP_SUB:
                v = both_numbers ? number_value(a->number - b->number) : null_value();
                break;
            case OP_MUL:
                v = both_numbers ? number_value(a->number * b->number) : null_value();
                break;
            case OP_DIV:
                v = both_numbers && b->number != 0 ? number_value(a->number / b->number)
                                                   : null_value();
                break;
            case OP_EQ:
                v = bool_value(values_equal(a, b));
                break;
            case OP_NE:
                v = bool_value(!values_equal(a, b));
                break;
            case OP_LT:
                v = bool_value(values_order(a, b, &cmp) && cmp < 0);
                break;
            case OP_LE:
                v = bool_value(values_order(a, b, &cmp) && cmp <= 0);
                break;
            case OP_GT:
                v = bool_value(values_order(a, b, &cmp) && cmp > 0);
                break;
            case OP_GE:
                v = bool_value(values_order(a, b, &cmp) && cmp >= 0);
                break;
            case OP_CONTAINS:
                v = bool_value(a->type == TDM_RULE_STRING && b->type == TDM_RULE_STRING &&
                               contains_ci(a->string, a->length, b->string, b->length));
                break;
            case OP_AND:
                v = bool_value(a->type == TDM_RULE_BOOL && b->type == TDM_RULE_BOOL && a->boolean &&
                               b->boolean);
                break;
            case OP_OR:
                v = bool_value(a->type == TDM_RULE_BOOL && b->type == TDM_RULE_BOOL &&
                               (a->boolean || b->boolean));
                break;
            default:
                TDM_ASSERT(0);
                v = null_value();
                break;
            }
            sp -= 2;
            break;
        }
        }
        TDM_ASSERT(sp < TDM__RULE_MAX_NODES);
        stack[sp++] = v;
    }
    TDM_ASSERT(sp == 1);
    *fired = sp == 1 && stack[0].type == TDM_RULE_BOOL && stack[0].boolean;
    return 0;
}
