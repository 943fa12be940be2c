/*
 * process.c — reads a process file (YAML) into a validated tdm_process.
 *
 * NOTES ON THE DESIGN OF THE PROCESS READER
 *
 * Reading happens in two passes, so that validation can look at a mapping as a whole (which
 * keys are missing, which two disagree) while every message still points at a line:
 *
 *   1. libyaml's event parser turns the text into a small tree of our own (`ytree`): scalars,
 *      sequences and mappings, each with its 1-based line, all held in two growable arrays.
 *      This pass refuses what is not plain data before any schema check runs: YAML syntax
 *      errors (TDM_EPARSE, with libyaml's line and column), anchors and aliases (which would
 *      otherwise let a tiny file expand into a huge one), tags, a second document, NUL
 *      characters, and nesting deeper than any process file needs.
 *   2. The validator walks the tree against the schema with a key path ("steps[1].guardrails
 *      .max_error") that every message carries. For each mapping it does, in this order:
 *      its keys, in document order (unknown keys, with a suggestion; duplicate keys); the
 *      required keys that are missing, in schema order; each value, in document order,
 *      descending into it; then checks that span several keys. The first error ends the
 *      parse, so the same file always gets the same message.
 *
 * The process keeps its strings and arrays in a chain of arena chunks that it frees
 * together; only the compiled review rules are separate allocations. Pointers handed out by
 * the accessors therefore stay put until tdm_process_free().
 *
 * Scalars are read by what the schema expects, not by YAML's guess: where text is expected
 * any scalar but null is text (so `labels: [yes, no]` and `labels: [1, 2]` are strings);
 * where a number is expected only a plain decimal scalar is accepted, parsed fully with
 * strtod and required to be finite.
 */
#define _POSIX_C_SOURCE 200809L

#include "core/process_int.h"

#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "policy/rule.h"
#include "util/util.h"

#define MAX_TREE_DEPTH    16   /* a process file nests at most 6 levels */
#define MAX_NAME          64   /* process names, step ids, queues */
#define MAX_TEXT          256  /* owners, KPIs, field names */
#define MAX_LABEL         1024 /* one label */
#define MAX_DESCRIPTION   4096
#define MAX_SLA_MINUTES   5256000.0 /* ten years */
#define MAX_BASE_MINUTES  100000.0
#define MAX_COST_PER_HOUR 1000000.0

/* ---- allocation, with failures injected by the tests ------------------------------------- */

#ifdef TDM_DEBUG
size_t tdm__process_alloc_fail_countdown = 0;

static int injected_failure(void)
{
    if (tdm__process_alloc_fail_countdown == 0)
        return 0;
    return --tdm__process_alloc_fail_countdown == 0;
}
#else
static int injected_failure(void)
{
    return 0;
}
#endif

static void *xmalloc(size_t size)
{
    return injected_failure() ? NULL : malloc(size);
}

static void *xcalloc(size_t n, size_t size)
{
    return injected_failure() ? NULL : calloc(n, size);
}

static void *xrealloc(void *ptr, size_t size)
{
    return injected_failure() ? NULL : realloc(ptr, size);
}

/* ---- the process object ------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t used;
    size_t cap;
    alignas(max_align_t) unsigned char data[];
} chunk;

#define CHUNK_SIZE 8192

struct tdm_process {
    chunk *chunks;
    const char *name;
    const char *owner;
    const char *description;
    const char *related_by; /* the item field that relates items (the same customer), or NULL */
    size_t n_kpis;
    const char **kpis;
    const char **kpi_targets;
    double baseline_minutes;
    double baseline_error;
    double baseline_cost; /* cost of a person's hour (baseline.cost_per_hour); 0 when not given */
    size_t n_steps;
    tdm_step_info *steps;
    tdm__rule ***compiled; /* per step, n_rules compiled rules (NULL until compiled) */
    tdm__rule **four_eyes; /* per step, the compiled four_eyes rule, or NULL */
};

/* Zeroed memory from the process's arena, aligned for any type; NULL when out of memory. */
static void *arena_alloc(tdm_process *p, size_t size)
{
    const size_t align = alignof(max_align_t);
    if (size > SIZE_MAX - align)
        return NULL;
    size = (size + align - 1) & ~(align - 1);
    chunk *c = p->chunks;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK_SIZE / 2 ? size : CHUNK_SIZE;
        chunk *n = xmalloc(sizeof *n + cap);
        if (n == NULL)
            return NULL;
        n->used = 0;
        n->cap = cap;
        if (size > CHUNK_SIZE / 2 && c != NULL) {
            /* A big block gets a chunk of its own, behind the current one, which stays open. */
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            p->chunks = n;
        }
        c = n;
    }
    void *ptr = c->data + c->used;
    c->used += size;
    memset(ptr, 0, size);
    return ptr;
}

static void *arena_array(tdm_process *p, size_t n, size_t size)
{
    size_t bytes;
    if (tdm__size_mul(n, size, &bytes) != 0)
        return NULL;
    return arena_alloc(p, bytes ? bytes : 1);
}

static char *arena_strndup(tdm_process *p, const char *s, size_t len)
{
    char *d = arena_alloc(p, len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* ---- the YAML tree ------------------------------------------------------------------------ */

enum { YN_SCALAR, YN_SEQ, YN_MAP };

/* One YAML node. Children are a linked list of indices; a mapping's are key, value, ... */
typedef struct ynode {
    uint8_t kind;
    uint8_t plain; /* a plain scalar (the only kind that can be null or a number) */
    uint32_t line; /* 1-based */
    uint32_t str;  /* scalar: offset of its NUL-terminated text in the pool */
    uint32_t len;
    uint32_t first; /* first child, 0 for none (node 0 is never used) */
    uint32_t last;
    uint32_t next; /* next sibling */
    uint32_t count;
} ynode;

typedef struct ytree {
    ynode *nodes;
    size_t n;
    size_t cap;
    char *pool;
    size_t pool_len;
    size_t pool_cap;
    uint32_t root;
} ytree;

static void tree_release(ytree *t)
{
    free(t->nodes);
    free(t->pool);
}

static int tree_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    size_t bytes;
    if (tdm__size_mul(ncap, elem, &bytes) != 0)
        return TDM_ENOMEM;
    void *n = xrealloc(*buf, bytes);
    if (n == NULL)
        return TDM_ENOMEM;
    *buf = n;
    *cap = ncap;
    return 0;
}

static const ynode *node_at(const ytree *t, uint32_t i)
{
    return i ? &t->nodes[i] : NULL;
}

static const char *node_text(const ytree *t, const ynode *n)
{
    return t->pool + n->str;
}

static int is_null(const ytree *t, const ynode *n)
{
    if (n->kind != YN_SCALAR || !n->plain)
        return 0;
    const char *s = node_text(t, n);
    return n->len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* Writes `s` (len bytes) for a message: quoted, escaped, cut at 48 bytes. */
static const char *show(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap < 8)
        return "";
    buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 48 || o + 8 >= cap) {
            if ((c & 0xC0) == 0x80) {
                /* Do not leave half a UTF-8 character behind. */
                while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
                    o--;
                if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0)
                    o--;
            }
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static int yaml_syntax_error(const yaml_parser_t *ps, const char *src, size_t len, const char *file,
                             tdm_error *err)
{
    if (ps->error == YAML_MEMORY_ERROR)
        return tdm__error(err, TDM_ENOMEM, "%s: out of memory while reading YAML", file);
    size_t line, column, index;
    if (ps->error == YAML_READER_ERROR) {
        index = ps->problem_offset < len ? ps->problem_offset : len;
        line = 1;
        size_t bol = 0;
        for (size_t i = 0; i < index; i++) {
            if (src[i] == '\n') {
                line++;
                bol = i + 1;
            }
        }
        column = index - bol + 1;
    } else {
        line = ps->problem_mark.line + 1;
        column = ps->problem_mark.column + 1;
        index = ps->problem_mark.index;
    }
    /* libyaml may place a mistake at the very end one line past the last; keep it inside. */
    size_t lines = 1, last_bol = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\n') {
            lines++;
            last_bol = i + 1;
        }
    }
    if (line > lines) {
        line = lines;
        column = len - last_bol + 1;
    }
    const char *problem = ps->problem ? ps->problem : "malformed YAML";
    const char *context = ps->context ? ps->context : "";
    const char *hint = "check the indentation, colons and quotes here and on the line before";
    if ((index < len && src[index] == '\t') || strstr(problem, "tab") != NULL)
        hint = "YAML indents with spaces: replace the tab";
    else if (ps->error == YAML_READER_ERROR)
        hint = "save the file as UTF-8 text";
    else if (strstr(context, "quoted scalar") != NULL)
        hint = "close the quote, and inside double quotes write \\\\ for a backslash";
    else if (strstr(context, "flow sequence") != NULL)
        hint = "close the list with ] and separate its items with commas";
    else if (strstr(context, "flow mapping") != NULL)
        hint = "close the mapping with } and separate its pairs with commas";
    else if (strstr(problem, "mapping values are not allowed") != NULL)
        hint = "put a value that holds \": \" in quotes, or fix the indentation";
    else if (strstr(context, "block") != NULL)
        hint = "keys of one mapping, and the - of one list, must line up exactly";
    size_t context_line = ps->context_mark.line + 1 < lines ? ps->context_mark.line + 1 : lines;
    if (ps->context != NULL && context_line != line)
        return tdm__error(err, TDM_EPARSE,
                          "%s:%zu: invalid YAML at column %zu: %s, %s that starts on line %zu "
                          "(%s)",
                          file, line, column, problem, ps->context, context_line, hint);
    if (ps->context != NULL)
        return tdm__error(err, TDM_EPARSE, "%s:%zu: invalid YAML at column %zu: %s, %s (%s)", file,
                          line, column, problem, ps->context, hint);
    return tdm__error(err, TDM_EPARSE, "%s:%zu: invalid YAML at column %zu: %s (%s)", file, line,
                      column, problem, hint);
}

/* Adds a node under the open container (or as the root). Returns its index, or 0. */
static uint32_t tree_add(ytree *t, const uint32_t *stack, int depth, int kind, size_t line)
{
    if (tree_grow((void **)&t->nodes, &t->cap, t->n + 1, sizeof(ynode)) != 0)
        return 0;
    if (t->n == 0)
        t->n = 1; /* node 0 means "none" */
    uint32_t i = (uint32_t)t->n++;
    ynode *n = &t->nodes[i];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = (uint32_t)line;
    if (depth > 0) {
        ynode *parent = &t->nodes[stack[depth - 1]];
        if (parent->last)
            t->nodes[parent->last].next = i;
        else
            parent->first = i;
        parent->last = i;
        parent->count++;
    } else {
        t->root = i;
    }
    return i;
}

static int tree_build(ytree *t, const char *src, size_t len, const char *file, tdm_error *err)
{
    yaml_parser_t ps;
    if (!yaml_parser_initialize(&ps))
        return tdm__error(err, TDM_ENOMEM, "%s: out of memory while reading YAML", file);
    yaml_parser_set_input_string(&ps, (const unsigned char *)src, len);

    uint32_t stack[MAX_TREE_DEPTH];
    uint32_t key_line[MAX_TREE_DEPTH]; /* per open mapping: the line of its latest key */
    int depth = 0;
    int documents = 0;
    int rc = 0;
    for (int done = 0; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps, &ev)) {
            rc = yaml_syntax_error(&ps, src, len, file, err);
            break;
        }
        size_t line = ev.start_mark.line + 1;
        const yaml_char_t *anchor = NULL, *tag = NULL;
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            tag = ev.data.scalar.tag;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = ev.data.sequence_start.anchor;
            tag = ev.data.sequence_start.tag;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = ev.data.mapping_start.anchor;
            tag = ev.data.mapping_start.tag;
            break;
        default:
            break;
        }
        if (ev.type == YAML_ALIAS_EVENT || anchor != NULL) {
            rc = tdm__error(err, TDM_EINVAL,
                            "%s:%zu: aliases are not supported: anchors (&name) and aliases "
                            "(*name) are refused (write the values out in full)",
                            file, line);
        } else if (tag != NULL) {
            const char *name = (const char *)tag;
            const char *std = "tag:yaml.org,2002:";
            int bang = strncmp(name, std, strlen(std)) == 0;
            rc = tdm__error(err, TDM_EINVAL,
                            "%s:%zu: YAML tags (%s%.40s) are not supported (remove the tag; "
                            "quote a value to make it text)",
                            file, line, bang ? "!!" : "", bang ? name + strlen(std) : name);
        } else {
            switch (ev.type) {
            case YAML_STREAM_END_EVENT:
                done = 1;
                break;
            case YAML_DOCUMENT_START_EVENT:
                if (++documents > 1)
                    rc = tdm__error(err, TDM_EINVAL,
                                    "%s:%zu: a second YAML document (a process file holds one "
                                    "process; remove the '---' line and what follows, or put it "
                                    "in its own file)",
                                    file, line);
                break;
            case YAML_SCALAR_EVENT:
            case YAML_SEQUENCE_START_EVENT:
            case YAML_MAPPING_START_EVENT: {
                int kind = ev.type == YAML_SCALAR_EVENT           ? YN_SCALAR
                           : ev.type == YAML_SEQUENCE_START_EVENT ? YN_SEQ
                                                                  : YN_MAP;
                if (kind != YN_SCALAR && depth == MAX_TREE_DEPTH) {
                    rc = tdm__error(err, TDM_EINVAL,
                                    "%s:%zu: nested too deeply (a process file needs at most %d "
                                    "levels; check the indentation)",
                                    file, line, MAX_TREE_DEPTH);
                    break;
                }
                if (kind == YN_SCALAR) {
                    const char *v = (const char *)ev.data.scalar.value;
                    size_t vlen = ev.data.scalar.length;
                    if (memchr(v, '\0', vlen) != NULL) {
                        rc = tdm__error(err, TDM_EINVAL,
                                        "%s:%zu: a value contains a NUL character (remove the "
                                        "\\0 escape)",
                                        file, line);
                        break;
                    }
                    if (tree_grow((void **)&t->pool, &t->pool_cap, t->pool_len + vlen + 1, 1)) {
                        rc = tdm__error(err, TDM_ENOMEM, "%s: out of memory", file);
                        break;
                    }
                }
                uint32_t i = tree_add(t, stack, depth, kind, line);
                if (i == 0) {
                    rc = tdm__error(err, TDM_ENOMEM, "%s: out of memory", file);
                    break;
                }
                ynode *n = &t->nodes[i];
                if (kind == YN_SCALAR) {
                    n->str = (uint32_t)t->pool_len;
                    n->len = (uint32_t)ev.data.scalar.length;
                    n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                    memcpy(t->pool + t->pool_len, ev.data.scalar.value, n->len);
                    t->pool[t->pool_len + n->len] = '\0';
                    t->pool_len += n->len + 1;
                }
                if (depth > 0 && t->nodes[stack[depth - 1]].kind == YN_MAP) {
                    /* An empty value ("key:") is marked where the next token is; give it the
                     * key's line, which is where the reader will look. */
                    if (t->nodes[stack[depth - 1]].count % 2 == 1)
                        key_line[depth - 1] = (uint32_t)line;
                    else if (n->kind == YN_SCALAR && n->plain && n->len == 0)
                        n->line = key_line[depth - 1];
                }
                if (kind != YN_SCALAR) {
                    stack[depth++] = i;
                }
                break;
            }
            case YAML_SEQUENCE_END_EVENT:
            case YAML_MAPPING_END_EVENT:
                TDM_ASSERT(depth > 0);
                depth--;
                break;
            default:
                break;
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ps);
    return rc;
}

/* ---- validation context ------------------------------------------------------------------- */

typedef struct vctx {
    const ytree *t;
    const char *file;
    tdm_error *err;
    tdm_process *p;
    char path[160];
    size_t path_len;
} vctx;

static size_t path_key(vctx *v, const char *key)
{
    size_t old = v->path_len;
    int n = snprintf(v->path + old, sizeof v->path - old, "%s%.48s", old ? "." : "", key);
    if (n > 0)
        v->path_len = old + (size_t)n < sizeof v->path ? old + (size_t)n : sizeof v->path - 1;
    return old;
}

static size_t path_index(vctx *v, size_t i)
{
    size_t old = v->path_len;
    int n = snprintf(v->path + old, sizeof v->path - old, "[%zu]", i);
    if (n > 0)
        v->path_len = old + (size_t)n < sizeof v->path ? old + (size_t)n : sizeof v->path - 1;
    return old;
}

static void path_restore(vctx *v, size_t old)
{
    v->path_len = old;
    v->path[old] = '\0';
}

static int verr(vctx *v, const ynode *n, const char *fmt, ...) TDM_PRINTF(3, 4);

/* Records "FILE:LINE: PATH: problem" as a TDM_EINVAL error and returns TDM_EINVAL. */
static int verr(vctx *v, const ynode *n, const char *fmt, ...)
{
    char problem[TDM_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    size_t line = n ? n->line : 1;
    if (v->path_len)
        return tdm__error_field(v->err, TDM_EINVAL, v->path, "%s:%zu: %s: %s", v->file, line,
                                v->path, problem);
    return tdm__error_field(v->err, TDM_EINVAL, "", "%s:%zu: %s", v->file, line, problem);
}

static int oom(vctx *v)
{
    return tdm__error(v->err, TDM_ENOMEM, "%s: out of memory", v->file);
}

/* Describes what a node holds, for "expected X, got Y". */
static const char *what(vctx *v, const ynode *n, char *buf, size_t cap)
{
    if (n->kind == YN_SEQ)
        return "a list";
    if (n->kind == YN_MAP)
        return "a mapping";
    if (is_null(v->t, n))
        return "nothing";
    char q[80];
    snprintf(buf, cap, "%s%s", n->plain ? "" : "the quoted text ",
             show(node_text(v->t, n), n->len, q, sizeof q));
    return buf;
}

/* Text: any scalar but null, at most `max` bytes. */
static int get_text(vctx *v, const ynode *n, size_t max, const char *example, const char **out,
                    size_t *len)
{
    char b[100];
    if (n->kind != YN_SCALAR)
        return verr(v, n, "expected text, got %s (write it like %s)", what(v, n, b, sizeof b),
                    example);
    if (is_null(v->t, n))
        return verr(v, n, "has no value (write it like %s)", example);
    if (n->len > max)
        return verr(v, n, "too long: %u bytes (at most %zu)", n->len, max);
    *out = node_text(v->t, n);
    if (len)
        *len = n->len;
    return 0;
}

static int get_text_copy(vctx *v, const ynode *n, size_t max, const char *example, const char **out)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = get_text(v, n, max, example, &s, &len);
    if (rc)
        return rc;
    *out = arena_strndup(v->p, s, len);
    return *out ? 0 : oom(v);
}

/* A plain decimal number: [+-] digits [. digits] [e [+-] digits], or [+-] . digits [...]. */
static int is_decimal(const char *s)
{
    size_t i = 0, digits = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (!(s[i] >= '0' && s[i] <= '9'))
            return 0;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return s[i] == '\0';
}

static int get_number(vctx *v, const ynode *n, const char *example, double *out)
{
    char b[100];
    if (n->kind != YN_SCALAR)
        return verr(v, n, "expected a number, got %s (write it like %s)", what(v, n, b, sizeof b),
                    example);
    if (is_null(v->t, n))
        return verr(v, n, "has no value (write a number, like %s)", example);
    const char *s = node_text(v->t, n);
    if (!n->plain) {
        char q[80];
        if (is_decimal(s))
            return verr(v, n, "expected a number, got the quoted text %s (remove the quotes)",
                        show(s, n->len, q, sizeof q));
        return verr(v, n, "expected a number, got the quoted text %s (write it like %s)",
                    show(s, n->len, q, sizeof q), example);
    }
    if (!is_decimal(s)) {
        char q[80];
        if (n->len > 1 && s[n->len - 1] == '%')
            return verr(v, n, "expected a number, got %s (write shares as fractions: 2%% is 0.02)",
                        show(s, n->len, q, sizeof q));
        return verr(v, n, "expected a number, got %s (write it like %s)",
                    show(s, n->len, q, sizeof q), example);
    }
    errno = 0;
    char *end = NULL;
    double x = strtod(s, &end);
    if (end != s + n->len || !isfinite(x)) {
        char q[80];
        return verr(v, n, "%s is not a finite number (write it like %s)",
                    show(s, n->len, q, sizeof q), example);
    }
    *out = x;
    return 0;
}

static int get_integer(vctx *v, const ynode *n, const char *example, long lo, long hi, long *out)
{
    char b[100];
    if (n->kind != YN_SCALAR)
        return verr(v, n, "expected a whole number, got %s (write it like %s)",
                    what(v, n, b, sizeof b), example);
    if (is_null(v->t, n))
        return verr(v, n, "has no value (write a whole number, like %s)", example);
    const char *s = node_text(v->t, n);
    size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    size_t digits = 0;
    while (s[i + digits] >= '0' && s[i + digits] <= '9')
        digits++;
    if (!n->plain || digits == 0 || s[i + digits] != '\0') {
        char q[80];
        return verr(v, n, "expected a whole number from %ld to %ld, got %s%s", lo, hi,
                    n->plain ? "" : "the quoted text ", show(s, n->len, q, sizeof q));
    }
    size_t zeros = 0;
    while (zeros + 1 < digits && s[i + zeros] == '0')
        zeros++;
    /* Nine significant digits fit a long anywhere; more are out of range in any case. */
    long x = digits - zeros > 9 ? (s[0] == '-' ? lo - 1 : hi + 1) : strtol(s, NULL, 10);
    if (x < lo || x > hi)
        return verr(v, n, "must be a whole number from %ld to %ld (got %s)", lo, hi, s);
    *out = x;
    return 0;
}

static int want_list(vctx *v, const ynode *n, const char *example)
{
    char b[100];
    if (n->kind == YN_SEQ)
        return 0;
    if (n->kind == YN_SCALAR && !is_null(v->t, n))
        return verr(v, n, "expected a list, got %s (write a list, like %s)",
                    what(v, n, b, sizeof b), example);
    return verr(v, n, "expected a list, got %s (write it like %s)", what(v, n, b, sizeof b),
                example);
}

static int want_map(vctx *v, const ynode *n, const char *example)
{
    char b[100];
    if (n->kind == YN_MAP)
        return 0;
    return verr(v, n, "expected a mapping of keys to values, got %s (write it like %s)",
                what(v, n, b, sizeof b), example);
}

/* Matches [a-z0-9][a-z0-9_-]* (extra: more allowed punctuation), at most 64 bytes. */
static int is_slug(const char *s, size_t len, const char *extra)
{
    if (len == 0 || len > MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!ok && i > 0)
            ok = c == '_' || c == '-' || (c != '\0' && strchr(extra, c) != NULL);
        if (!ok)
            return 0;
    }
    return 1;
}

/* ---- mappings and their keys -------------------------------------------------------------- */

/* Optimal string alignment distance, or a large number for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1000;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* Keys that belong somewhere else, to say where when one turns up in the wrong mapping. */
typedef struct elsewhere {
    const char *const *keys;
    size_t n;
    const char *where;
} elsewhere;

typedef struct mapspec {
    const char *const *keys;
    size_t n;
    const elsewhere *other;
    size_t n_other;
} mapspec;

#define MAX_KEYS 16

/* The pairs of one mapping, by schema key, and the order in which they were written. */
typedef struct mapvals {
    const ynode *key[MAX_KEYS];
    const ynode *val[MAX_KEYS];
    size_t order[MAX_KEYS];
    size_t n_order;
} mapvals;

static int unknown_key(vctx *v, const mapspec *spec, const ynode *key, const char *name)
{
    size_t best = 3, which = 0;
    for (size_t i = 0; i < spec->n; i++) {
        size_t d = edit_distance(name, spec->keys[i]);
        if (d < best) {
            best = d;
            which = i;
        }
    }
    char q[80];
    show(name, key->len, q, sizeof q);
    if (best <= 2)
        return verr(v, key, "unknown key %s (did you mean \"%s\"?)", q, spec->keys[which]);
    for (size_t o = 0; o < spec->n_other; o++)
        for (size_t i = 0; i < spec->other[o].n; i++)
            if (strcmp(name, spec->other[o].keys[i]) == 0)
                return verr(v, key, "unknown key %s here (%s belongs %s)", q, name,
                            spec->other[o].where);
    char allowed[200];
    size_t off = 0;
    for (size_t i = 0; i < spec->n && off < sizeof allowed; i++)
        off += (size_t)snprintf(allowed + off, sizeof allowed - off, "%s%s",
                                i ? (i + 1 == spec->n ? " and " : ", ") : "", spec->keys[i]);
    return verr(v, key, "unknown key %s (the keys here are %s)", q, allowed);
}

/* Checks the keys of `map` against `spec` and fills `mv`. */
static int read_keys(vctx *v, const ynode *map, const mapspec *spec, mapvals *mv)
{
    TDM_ASSERT(spec->n <= MAX_KEYS);
    memset(mv, 0, sizeof *mv);
    const ytree *t = v->t;
    for (const ynode *k = node_at(t, map->first); k != NULL;) {
        const ynode *val = node_at(t, k->next);
        TDM_ASSERT(val != NULL);
        if (k->kind != YN_SCALAR || is_null(t, k))
            return verr(v, k, "a key must be a name (write name: value)");
        const char *name = node_text(t, k);
        size_t idx = spec->n;
        for (size_t i = 0; i < spec->n; i++)
            if (strcmp(name, spec->keys[i]) == 0 && strlen(spec->keys[i]) == k->len)
                idx = i;
        size_t old = path_key(v, name);
        if (idx == spec->n)
            return unknown_key(v, spec, k, name);
        if (mv->key[idx] != NULL)
            return verr(v, k, "duplicate key (it is also on line %u; keep one)",
                        mv->key[idx]->line);
        path_restore(v, old);
        mv->key[idx] = k;
        mv->val[idx] = val;
        mv->order[mv->n_order++] = idx;
        k = node_at(t, val->next);
    }
    return 0;
}

/* A missing required key: the error names it, at the line of its mapping. */
static int missing(vctx *v, const ynode *map, const char *key, const char *hint)
{
    path_key(v, key);
    return verr(v, map, "missing (%s)", hint);
}

/* Finds a duplicate among n strings: the earliest second occurrence, and its first. */
typedef struct sref {
    const char *s;
    size_t i;
} sref;

static int sref_cmp(const void *a, const void *b)
{
    const sref *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c == 0)
        c = x->i < y->i ? -1 : x->i > y->i;
    return c;
}

static int find_duplicate(vctx *v, const char *const *s, size_t n, size_t *dup, size_t *first,
                          int *found)
{
    *found = 0;
    if (n < 2)
        return 0;
    sref *r = xmalloc(n * sizeof *r);
    if (r == NULL)
        return oom(v);
    for (size_t i = 0; i < n; i++) {
        r[i].s = s[i];
        r[i].i = i;
    }
    qsort(r, n, sizeof *r, sref_cmp);
    for (size_t i = 0; i + 1 < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(r[i].s, r[j].s) == 0)
            j++;
        if (j > i + 1 && (!*found || r[i + 1].i < *dup)) {
            *found = 1;
            *dup = r[i + 1].i;
            *first = r[i].i;
        }
        i = j;
    }
    free(r);
    return 0;
}

/* The idx-th child of a sequence. */
static const ynode *child(const ytree *t, const ynode *seq, size_t idx)
{
    const ynode *c = node_at(t, seq->first);
    while (idx-- > 0 && c != NULL)
        c = node_at(t, c->next);
    return c;
}

/* Reports a duplicate found by find_duplicate() in the list `seq`, at its second place. */
static int duplicate_in(vctx *v, const ynode *seq, const char *const *s, size_t n,
                        const char *what_it_is)
{
    size_t dup = 0, first = 0;
    int found;
    int rc = find_duplicate(v, s, n, &dup, &first, &found);
    if (rc || !found)
        return rc;
    const ynode *at = child(v->t, seq, dup);
    const ynode *was = child(v->t, seq, first);
    char q[80];
    path_index(v, dup);
    return verr(v, at, "%s %s is listed twice (also at [%zu], line %u; keep one)", what_it_is,
                show(s[dup], strlen(s[dup]), q, sizeof q), first, was ? was->line : 0);
}

/* ---- the schema --------------------------------------------------------------------------- */

static const char *const top_keys[] = {"process",  "description", "owner",     "kpis",
                                       "baseline", "steps",       "related_by"};
enum { K_PROCESS, K_DESCRIPTION, K_OWNER, K_KPIS, K_BASELINE, K_STEPS, K_RELATED_BY };

static const char *const kpi_keys[] = {"name", "target"};
enum { KK_NAME, KK_TARGET };

static const char *const baseline_keys[] = {"minutes_per_item", "error_rate", "cost_per_hour"};
enum { KB_MINUTES, KB_ERROR, KB_COST };

static const char *const step_keys[] = {"id",     "allocation", "owner",      "inputs",
                                        "output", "model",      "guardrails", "refit"};
enum { KS_ID, KS_ALLOCATION, KS_OWNER, KS_INPUTS, KS_OUTPUT, KS_MODEL, KS_GUARDRAILS, KS_REFIT };

static const char *const input_keys[] = {"name", "kind"};
enum { KI_NAME, KI_KIND };

static const char *const output_keys[] = {"field", "labels", "favourable"};
enum { KO_FIELD, KO_LABELS, KO_FAVOURABLE };

static const char *const guard_keys[] = {"max_error",        "confidence", "audit_sample",
                                         "review_when",      "queue",      "sla_minutes",
                                         "escalation_queue", "priority",   "adverse_outcomes",
                                         "four_eyes",        "second_look"};
enum {
    KG_MAX_ERROR,
    KG_CONFIDENCE,
    KG_AUDIT,
    KG_REVIEW,
    KG_QUEUE,
    KG_SLA,
    KG_ESCALATION,
    KG_PRIORITY,
    KG_ADVERSE,
    KG_FOUR_EYES,
    KG_SECOND_LOOK
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const elsewhere top_other[] = {
    {step_keys, COUNT(step_keys), "to a step, under steps:"},
    {guard_keys, COUNT(guard_keys), "under a step's guardrails:"},
    {baseline_keys, COUNT(baseline_keys), "under baseline:"},
};
static const elsewhere step_other[] = {
    {guard_keys, COUNT(guard_keys), "under this step's guardrails:"},
    {output_keys, COUNT(output_keys), "under this step's output:"},
    {baseline_keys, COUNT(baseline_keys), "under the process's baseline:"},
};
static const elsewhere guard_other[] = {
    {step_keys, COUNT(step_keys), "to the step itself, not its guardrails"},
};
static const elsewhere output_other[] = {
    {step_keys, COUNT(step_keys), "to the step itself, not its output"},
};

static const mapspec top_spec = {top_keys, COUNT(top_keys), top_other, COUNT(top_other)};
static const mapspec kpi_spec = {kpi_keys, COUNT(kpi_keys), NULL, 0};
static const mapspec baseline_spec = {baseline_keys, COUNT(baseline_keys), NULL, 0};
static const mapspec step_spec = {step_keys, COUNT(step_keys), step_other, COUNT(step_other)};
static const mapspec input_spec = {input_keys, COUNT(input_keys), NULL, 0};
static const mapspec output_spec = {output_keys, COUNT(output_keys), output_other,
                                    COUNT(output_other)};
static const mapspec guard_spec = {guard_keys, COUNT(guard_keys), guard_other, COUNT(guard_other)};

const char *tdm_allocation_name(tdm_allocation a)
{
    switch (a) {
    case TDM_ALLOC_AI:
        return "ai";
    case TDM_ALLOC_HYBRID:
        return "hybrid";
    case TDM_ALLOC_HUMAN:
        return "human";
    }
    return "unknown";
}

static int check_range(vctx *v, const ynode *n, double x, double lo, int lo_open, double hi,
                       int hi_open, const char *what_it_means)
{
    int ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (ok)
        return 0;
    return verr(v, n, "%s is out of range: it must be %s %.15g and %s %.15g (%s)",
                node_text(v->t, n), lo_open ? "more than" : "at least", lo,
                hi_open ? "less than" : "at most", hi, what_it_means);
}

static int get_kpi_name(vctx *v, const ynode *n, const char **out)
{
    int rc = get_text_copy(v, n, MAX_TEXT, "first_response_minutes", out);
    if (rc == 0 && (*out)[0] == '\0')
        rc = verr(v, n, "is empty (name the measure, like first_response_minutes)");
    return rc;
}

static int read_kpis(vctx *v, const ynode *seq)
{
    static const char hint[] =
        "a process needs at least one linked KPI, the measure it is meant to improve, like "
        "kpis: [first_response_minutes]";
    if (is_null(v->t, seq))
        return verr(v, seq, "%s", hint);
    int rc = want_list(v, seq, "[first_response_minutes]");
    if (rc)
        return rc;
    if (seq->count == 0)
        return verr(v, seq, "%s", hint);
    if (seq->count > TDM__PROCESS_MAX_KPIS)
        return verr(v, seq, "%u KPIs; at most %d are allowed", seq->count, TDM__PROCESS_MAX_KPIS);
    tdm_process *p = v->p;
    p->kpis = arena_array(p, seq->count, sizeof *p->kpis);
    p->kpi_targets = arena_array(p, seq->count, sizeof *p->kpi_targets);
    if (p->kpis == NULL || p->kpi_targets == NULL)
        return oom(v);
    size_t i = 0;
    for (const ynode *n = node_at(v->t, seq->first); n; n = node_at(v->t, n->next), i++) {
        size_t old = path_index(v, i);
        if (n->kind == YN_MAP) {
            mapvals mv;
            if ((rc = read_keys(v, n, &kpi_spec, &mv)) != 0)
                return rc;
            if (mv.val[KK_NAME] == NULL)
                return missing(v, n, "name",
                               "a KPI written as a mapping needs a name, like "
                               "{name: first_response_minutes, target: \"< 60\"}");
            for (size_t o = 0; o < mv.n_order; o++) {
                size_t k = mv.order[o];
                size_t old2 = path_key(v, kpi_keys[k]);
                if (k == KK_NAME)
                    rc = get_kpi_name(v, mv.val[k], &p->kpis[i]);
                else if (!is_null(v->t, mv.val[k]))
                    rc = get_text_copy(v, mv.val[k], MAX_TEXT, "\"< 60\"", &p->kpi_targets[i]);
                if (rc)
                    return rc;
                path_restore(v, old2);
            }
        } else {
            if ((rc = get_kpi_name(v, n, &p->kpis[i])) != 0)
                return rc;
        }
        path_restore(v, old);
    }
    p->n_kpis = seq->count;
    return duplicate_in(v, seq, p->kpis, p->n_kpis, "the KPI");
}

static int read_baseline(vctx *v, const ynode *map)
{
    int rc = want_map(v, map, "baseline: {minutes_per_item: 4.5, error_rate: 0.06}");
    mapvals mv;
    if (rc || (rc = read_keys(v, map, &baseline_spec, &mv)) != 0)
        return rc;
    if (mv.val[KB_MINUTES] == NULL)
        return missing(v, map, "minutes_per_item",
                       "the minutes a person spends on one item without AI, like 4.5");
    if (mv.val[KB_ERROR] == NULL)
        return missing(v, map, "error_rate",
                       "the share of items handled wrongly without AI, like 0.06");
    for (size_t o = 0; o < mv.n_order; o++) {
        size_t k = mv.order[o];
        const ynode *n = mv.val[k];
        size_t old = path_key(v, baseline_keys[k]);
        double x = 0;
        if (k == KB_MINUTES) {
            if ((rc = get_number(v, n, "4.5", &x)) != 0 ||
                (rc = check_range(v, n, x, 0, 1, MAX_BASE_MINUTES, 0,
                                  "minutes a person spends on one item")) != 0)
                return rc;
            v->p->baseline_minutes = x;
        } else if (k == KB_COST) {
            if ((rc = get_number(v, n, "45", &x)) != 0 ||
                (rc = check_range(v, n, x, 0, 1, MAX_COST_PER_HOUR, 0,
                                  "what an hour of a person's time costs, in any currency")) != 0)
                return rc;
            v->p->baseline_cost = x;
        } else {
            if ((rc = get_number(v, n, "0.06", &x)) != 0 ||
                (rc = check_range(v, n, x, 0, 0, 1, 0, "a share: 0.06 means 6% of items")) != 0)
                return rc;
            v->p->baseline_error = x;
        }
        path_restore(v, old);
    }
    return 0;
}

static int read_inputs(vctx *v, const ynode *seq, tdm_step_info *s)
{
    int rc = want_list(v, seq, "[text] or [{name: amount, kind: numeric}]");
    if (rc)
        return rc;
    if (seq->count > TDM__PROCESS_MAX_INPUTS)
        return verr(v, seq, "%u inputs; a step reads at most %d fields", seq->count,
                    TDM__PROCESS_MAX_INPUTS);
    tdm_field_spec *in = arena_array(v->p, seq->count, sizeof *in);
    const char **names = xmalloc((seq->count ? seq->count : 1) * sizeof *names);
    if (in == NULL || names == NULL) {
        free(names);
        return oom(v);
    }
    size_t i = 0;
    for (const ynode *n = node_at(v->t, seq->first); n && rc == 0;
         n = node_at(v->t, n->next), i++) {
        size_t old = path_index(v, i);
        in[i].kind = TDM_FIELD_TEXT;
        if (n->kind == YN_MAP) {
            mapvals mv;
            if ((rc = read_keys(v, n, &input_spec, &mv)) != 0)
                break;
            if (mv.val[KI_NAME] == NULL) {
                rc = missing(v, n, "name",
                             "the item field to read, like {name: amount, kind: "
                             "numeric}");
                break;
            }
            for (size_t o = 0; o < mv.n_order && rc == 0; o++) {
                size_t k = mv.order[o];
                size_t old2 = path_key(v, input_keys[k]);
                if (k == KI_NAME) {
                    rc = get_text_copy(v, mv.val[k], MAX_TEXT, "amount", &in[i].name);
                    if (rc == 0 && in[i].name[0] == '\0')
                        rc = verr(v, mv.val[k], "is empty (name an item field, like amount)");
                } else if (!is_null(v->t, mv.val[k])) {
                    const char *kind;
                    rc = get_text(v, mv.val[k], MAX_TEXT, "numeric", &kind, NULL);
                    if (rc == 0 && tdm_field_kind_parse(kind, &in[i].kind) != 0) {
                        char q[80];
                        rc = verr(v, mv.val[k],
                                  "unknown kind %s (expected text, categorical or numeric)",
                                  show(kind, mv.val[k]->len, q, sizeof q));
                    }
                }
                if (rc == 0)
                    path_restore(v, old2);
            }
        } else {
            rc = get_text_copy(v, n, MAX_TEXT, "text", &in[i].name);
            if (rc == 0 && in[i].name[0] == '\0')
                rc = verr(v, n, "is empty (name an item field, like text)");
        }
        names[i] = in[i].name;
        if (rc == 0)
            path_restore(v, old);
    }
    if (rc == 0)
        rc = duplicate_in(v, seq, names, seq->count, "the input");
    free(names);
    if (rc)
        return rc;
    s->inputs = in;
    s->n_inputs = seq->count;
    return 0;
}

/* Reads a list of distinct, non-empty labels into *out, *count. */
static int read_label_list(vctx *v, const ynode *seq, const char *empty_hint,
                           const char *const **out, size_t *count)
{
    int rc = want_list(v, seq, "[approve, reject]");
    if (rc)
        return rc;
    if (seq->count == 0)
        return verr(v, seq, "an empty list (%s)", empty_hint);
    if (seq->count > TDM__PROCESS_MAX_LABELS)
        return verr(v, seq, "%u labels; a step has at most %d", seq->count,
                    TDM__PROCESS_MAX_LABELS);
    const char **labels = arena_array(v->p, seq->count, sizeof *labels);
    if (labels == NULL)
        return oom(v);
    size_t i = 0;
    for (const ynode *n = node_at(v->t, seq->first); n; n = node_at(v->t, n->next), i++) {
        size_t old = path_index(v, i);
        if ((rc = get_text_copy(v, n, MAX_LABEL, "approve", &labels[i])) != 0)
            return rc;
        if (labels[i][0] == '\0')
            return verr(v, n, "an empty label (every label needs some text)");
        path_restore(v, old);
    }
    if ((rc = duplicate_in(v, seq, labels, seq->count, "the label")) != 0)
        return rc;
    *out = labels;
    *count = seq->count;
    return 0;
}

static int read_labels(vctx *v, const ynode *seq, tdm_step_info *s)
{
    return read_label_list(v, seq,
                           "name at least one label, or leave labels out to learn them from "
                           "the training data",
                           &s->labels, &s->n_labels);
}

/* 1 when `label` is one of the step's labels, or the step learns its labels from data. */
static int known_label(const tdm_step_info *s, const char *label)
{
    if (s->n_labels == 0)
        return 1;
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->labels[i], label) == 0)
            return 1;
    return 0;
}

static int read_output(vctx *v, const ynode *map, tdm_step_info *s, const ynode **field)
{
    int rc = want_map(v, map, "output: {field: category, labels: [a, b]}");
    mapvals mv;
    if (rc || (rc = read_keys(v, map, &output_spec, &mv)) != 0)
        return rc;
    if (mv.val[KO_FIELD] == NULL)
        return missing(v, map, "field",
                       "the name of the step's answer, also its column in training data, like "
                       "field: category");
    *field = mv.val[KO_FIELD];
    for (size_t o = 0; o < mv.n_order; o++) {
        size_t k = mv.order[o];
        size_t old = path_key(v, output_keys[k]);
        if (k == KO_FIELD) {
            rc = get_text_copy(v, mv.val[k], MAX_TEXT, "category", &s->output);
            if (rc == 0 && s->output[0] == '\0')
                rc = verr(v, mv.val[k], "is empty (name the answer, like category)");
        } else if (k == KO_FAVOURABLE) {
            rc = get_text_copy(v, mv.val[k], MAX_LABEL, "approve", &s->favourable);
            if (rc == 0 && s->favourable[0] == '\0')
                rc = verr(v, mv.val[k], "is empty (name the label that favours the person)");
        } else if (!is_null(v->t, mv.val[k])) {
            rc = read_labels(v, mv.val[k], s);
        }
        if (rc)
            return rc;
        path_restore(v, old);
    }
    /* Checked once both are read, whatever their order in the file. */
    if (s->favourable != NULL && !known_label(s, s->favourable)) {
        char q[80];
        size_t old = path_key(v, "favourable");
        rc = verr(v, mv.val[KO_FAVOURABLE], "%s is not one of the step's labels",
                  show(s->favourable, strlen(s->favourable), q, sizeof q));
        path_restore(v, old);
        return rc;
    }
    return 0;
}

/* related_by: an item field name, 1 to 64 ASCII letters, digits, '_' and '-'. */
static int read_related_by(vctx *v, const ynode *n)
{
    const char *f;
    size_t len;
    int rc = get_text(v, n, 1024, "customer_id", &f, &len);
    if (rc)
        return rc;
    int ok = len > 0 && len <= MAX_NAME;
    for (size_t i = 0; ok && i < len; i++)
        ok = (f[i] >= 'a' && f[i] <= 'z') || (f[i] >= 'A' && f[i] <= 'Z') ||
             (f[i] >= '0' && f[i] <= '9') || f[i] == '_' || f[i] == '-';
    if (!ok) {
        char b[80];
        return verr(v, n,
                    "%s is not an item field name (use 1 to 64 ASCII letters, digits, '_' and "
                    "'-', like customer_id)",
                    show(f, len, b, sizeof b));
    }
    v->p->related_by = arena_strndup(v->p, f, len);
    return v->p->related_by ? 0 : oom(v);
}

static int read_queue(vctx *v, const ynode *n, const char **out)
{
    const char *q;
    size_t len;
    int rc = get_text(v, n, 1024, "support", &q, &len);
    if (rc)
        return rc;
    if (!is_slug(q, len, ".")) {
        char b[80];
        return verr(v, n,
                    "%s is not a queue name (use 1 to 64 lowercase letters, digits, '_', '.' "
                    "and '-', starting with a letter or digit, like support or loans.tier-2)",
                    show(q, len, b, sizeof b));
    }
    *out = arena_strndup(v->p, q, len);
    return *out ? 0 : oom(v);
}

static int read_rules(vctx *v, const ynode *seq, size_t step, tdm_step_info *s)
{
    int rc = want_list(v, seq, "['amount > 10000', 'label == \"reject\"']");
    if (rc)
        return rc;
    if (seq->count > TDM__PROCESS_MAX_RULES)
        return verr(v, seq, "%u rules; a step has at most %d", seq->count, TDM__PROCESS_MAX_RULES);
    tdm_process *p = v->p;
    const char **rules = arena_array(p, seq->count, sizeof *rules);
    tdm__rule **compiled = arena_array(p, seq->count, sizeof *compiled);
    if (rules == NULL || compiled == NULL)
        return oom(v);
    /* Record the array first, so tdm_process_free() frees what is compiled so far. */
    p->compiled[step] = compiled;
    s->rules = rules;
    size_t i = 0;
    for (const ynode *n = node_at(v->t, seq->first); n; n = node_at(v->t, n->next), i++) {
        size_t old = path_index(v, i);
        const char *src;
        size_t len;
        if ((rc = get_text(v, n, SIZE_MAX, "'amount > 10000'", &src, &len)) != 0)
            return rc;
        char msg[300];
        size_t column = 0;
        rc = tdm__rule_compile(src, len, &compiled[i], &column, msg, sizeof msg);
        if (rc == TDM_ENOMEM)
            return oom(v);
        if (rc)
            return verr(v, n, "column %zu: %s", column, msg);
        s->n_rules = i + 1;
        if ((rules[i] = arena_strndup(p, src, len)) == NULL)
            return oom(v);
        path_restore(v, old);
    }
    return 0;
}

/* four_eyes: "always", or a rule after which a second person must confirm. */
static int read_four_eyes(vctx *v, const ynode *n, size_t step, tdm_step_info *s)
{
    const char *src;
    size_t len;
    int rc = get_text(v, n, 4096, "always", &src, &len);
    if (rc)
        return rc;
    if ((s->four_eyes = arena_strndup(v->p, src, len)) == NULL)
        return oom(v);
    if (len == 6 && memcmp(src, "always", 6) == 0)
        return 0;
    char msg[300];
    size_t column = 0;
    rc = tdm__rule_compile(src, len, &v->p->four_eyes[step], &column, msg, sizeof msg);
    if (rc == TDM_ENOMEM)
        return oom(v);
    if (rc)
        return verr(v, n, "column %zu: %s (write always, or a rule like amount > 50000)", column,
                    msg);
    return 0;
}

typedef struct guard_nodes {
    const ynode *audit;
    const ynode *queue;
    const ynode *escalation;
    const ynode *adverse;
} guard_nodes;

static int read_guardrails(vctx *v, const ynode *map, size_t step, tdm_step_info *s,
                           guard_nodes *gn)
{
    int rc = want_map(v, map, "guardrails: {queue: support, max_error: 0.01}");
    mapvals mv;
    if (rc || (rc = read_keys(v, map, &guard_spec, &mv)) != 0)
        return rc;
    if (mv.val[KG_QUEUE] == NULL || is_null(v->t, mv.val[KG_QUEUE]))
        return missing(v, map, "queue",
                       "every step needs the queue its tasks go to, like queue: support");
    gn->audit = mv.val[KG_AUDIT];
    gn->queue = mv.val[KG_QUEUE];
    for (size_t o = 0; o < mv.n_order; o++) {
        size_t k = mv.order[o];
        const ynode *n = mv.val[k];
        size_t old = path_key(v, guard_keys[k]);
        double x = 0;
        long l = 0;
        switch (k) {
        case KG_MAX_ERROR:
            if ((rc = get_number(v, n, "0.01", &x)) == 0 &&
                (rc = check_range(v, n, x, 0, 1, 0.5, 0,
                                  "the highest error rate allowed on decisions the AI makes "
                                  "alone: 0.01 means 1%")) == 0)
                s->max_error = x;
            break;
        case KG_CONFIDENCE:
            if ((rc = get_number(v, n, "0.95", &x)) == 0 &&
                (rc = check_range(v, n, x, 0.5, 0, 1, 1,
                                  "how sure the risk bound must be: 0.95 is usual")) == 0)
                s->confidence = x;
            break;
        case KG_AUDIT:
            if ((rc = get_number(v, n, "0.02", &x)) == 0 &&
                (rc = check_range(v, n, x, 0, 0, 1, 0,
                                  "the share of autonomous decisions people check anyway: 0.02 "
                                  "means 2%")) == 0)
                s->audit_sample = x;
            break;
        case KG_REVIEW:
            if (!is_null(v->t, n))
                rc = read_rules(v, n, step, s);
            break;
        case KG_QUEUE:
            rc = read_queue(v, n, &s->queue);
            break;
        case KG_SLA:
            if ((rc = get_number(v, n, "240", &x)) == 0 &&
                (rc = check_range(v, n, x, 0, 1, MAX_SLA_MINUTES, 0,
                                  "minutes until a queued task is due; ten years at most")) == 0)
                s->sla_minutes = x;
            break;
        case KG_ESCALATION:
            if (!is_null(v->t, n)) {
                gn->escalation = n;
                rc = read_queue(v, n, &s->escalation_queue);
            }
            break;
        case KG_PRIORITY:
            if ((rc = get_integer(v, n, "10", -1000, 1000, &l)) == 0)
                s->priority = (int)l;
            break;
        case KG_FOUR_EYES:
            if (!is_null(v->t, n))
                rc = read_four_eyes(v, n, step, s);
            break;
        case KG_SECOND_LOOK:
            if (!is_null(v->t, n) && (rc = get_number(v, n, "0.9", &x)) == 0 &&
                (rc = check_range(v, n, x, 0, 1, 1, 0,
                                  "the AI's confidence from which a person's contradicting "
                                  "answer goes to a second person: 0.9 is usual")) == 0)
                s->second_look = x;
            break;
        case KG_ADVERSE:
            if (!is_null(v->t, n)) {
                gn->adverse = n;
                rc = read_label_list(v, n,
                                     "name the outcomes only a person may decide, like "
                                     "[reject], or leave adverse_outcomes out",
                                     &s->adverse, &s->n_adverse);
            }
            break;
        }
        if (rc)
            return rc;
        path_restore(v, old);
    }
    return 0;
}

static int read_step(vctx *v, const ynode *map, size_t index, tdm_step_info *s)
{
    int rc = want_map(v, map, "- id: triage (one mapping per step)");
    mapvals mv;
    if (rc || (rc = read_keys(v, map, &step_spec, &mv)) != 0)
        return rc;
    static const struct {
        size_t key;
        const char *hint;
    } required[] = {
        {KS_ID, "every step needs an id, like id: triage"},
        {KS_ALLOCATION, "every step needs an allocation: ai, hybrid or human"},
        {KS_OWNER, "every step needs an accountable owner, like owner: maria@example.com"},
        {KS_OUTPUT, "every step needs an output, like output: {field: category}"},
        {KS_GUARDRAILS, "every step needs guardrails with at least its queue, like guardrails: "
                        "{queue: support}"},
    };
    for (size_t r = 0; r < COUNT(required); r++)
        if (mv.val[required[r].key] == NULL)
            return missing(v, map, step_keys[required[r].key], required[r].hint);

    /* Defaults; audit_sample's depends on the allocation and is settled below. */
    s->max_error = 0.01;
    s->confidence = 0.95;
    s->refit = 1;
    s->sla_minutes = 1440;
    s->priority = 0;
    const ynode *field = NULL;
    guard_nodes gn = {0};
    for (size_t o = 0; o < mv.n_order; o++) {
        size_t k = mv.order[o];
        const ynode *n = mv.val[k];
        size_t old = path_key(v, step_keys[k]);
        const char *text;
        size_t len;
        switch (k) {
        case KS_ID:
            if ((rc = get_text(v, n, 1024, "triage", &text, &len)) != 0)
                break;
            if (!is_slug(text, len, "")) {
                char q[80];
                rc = verr(v, n,
                          "%s is not a step id (use 1 to 64 lowercase letters, digits, '_' and "
                          "'-', starting with a letter or digit, like triage)",
                          show(text, len, q, sizeof q));
                break;
            }
            s->id = arena_strndup(v->p, text, len);
            rc = s->id ? 0 : oom(v);
            break;
        case KS_ALLOCATION:
            if ((rc = get_text(v, n, 1024, "hybrid", &text, &len)) != 0)
                break;
            if (strcmp(text, "ai") == 0)
                s->allocation = TDM_ALLOC_AI;
            else if (strcmp(text, "hybrid") == 0)
                s->allocation = TDM_ALLOC_HYBRID;
            else if (strcmp(text, "human") == 0)
                s->allocation = TDM_ALLOC_HUMAN;
            else {
                char q[80];
                rc = verr(v, n, "unknown allocation %s (expected ai, hybrid or human)",
                          show(text, len, q, sizeof q));
            }
            break;
        case KS_OWNER:
            rc = get_text_copy(v, n, MAX_TEXT, "maria@example.com", &s->owner);
            if (rc == 0 && s->owner[0] == '\0')
                rc = verr(v, n, "is empty (name the person accountable for this step)");
            break;
        case KS_INPUTS:
            if (!is_null(v->t, n))
                rc = read_inputs(v, n, s);
            break;
        case KS_OUTPUT:
            rc = read_output(v, n, s, &field);
            break;
        case KS_MODEL:
            if (is_null(v->t, n))
                break;
            if ((rc = get_text(v, n, 1024, "linear", &text, &len)) != 0)
                break;
            if (strcmp(text, "linear") != 0) {
                char q[80];
                rc = verr(v, n, "unknown model kind %s (known kinds: linear)",
                          show(text, len, q, sizeof q));
                break;
            }
            s->model = "linear";
            break;
        case KS_REFIT:
            if (is_null(v->t, n))
                break;
            if ((rc = get_text(v, n, 1024, "auto", &text, &len)) != 0)
                break;
            if (strcmp(text, "auto") != 0 && strcmp(text, "off") != 0) {
                char q[80];
                rc = verr(v, n,
                          "unknown refit %s (auto: refit the model from what people taught it "
                          "as answers accumulate; off: learn online only)",
                          show(text, len, q, sizeof q));
                break;
            }
            s->refit = strcmp(text, "auto") == 0;
            break;
        case KS_GUARDRAILS:
            rc = read_guardrails(v, n, index, s, &gn);
            break;
        }
        if (rc)
            return rc;
        path_restore(v, old);
    }

    /* Checks across keys. */
    const char *alloc = tdm_allocation_name(s->allocation);
    if (s->allocation == TDM_ALLOC_HUMAN) {
        if (mv.val[KS_MODEL] != NULL && !is_null(v->t, mv.val[KS_MODEL])) {
            path_key(v, "model");
            return verr(v, mv.val[KS_MODEL],
                        "a human step has no model (remove model, or make the step hybrid)");
        }
        if (mv.val[KS_REFIT] != NULL && !is_null(v->t, mv.val[KS_REFIT])) {
            path_key(v, "refit");
            return verr(v, mv.val[KS_REFIT],
                        "a human step has no model to refit (remove refit, or make the step "
                        "hybrid)");
        }
        s->model = NULL;
        s->refit = 0;
    } else {
        if (s->model == NULL)
            s->model = "linear";
        if (mv.val[KS_INPUTS] == NULL || is_null(v->t, mv.val[KS_INPUTS]))
            return missing(v, map, "inputs",
                           s->allocation == TDM_ALLOC_AI
                               ? "an ai step needs the item fields its model reads, like "
                                 "inputs: [text]"
                               : "a hybrid step needs the item fields its model reads, like "
                                 "inputs: [text]");
        if (s->n_inputs == 0) {
            path_key(v, "inputs");
            return verr(v, mv.val[KS_INPUTS],
                        "an empty list (a%s %s step needs at least one field for its model to "
                        "read, like inputs: [text])",
                        s->allocation == TDM_ALLOC_AI ? "n" : "", alloc);
        }
    }
    for (size_t i = 0; i < s->n_inputs; i++) {
        if (strcmp(s->inputs[i].name, s->output) == 0) {
            char q[80];
            path_key(v, "output");
            path_key(v, "field");
            return verr(v, field,
                        "%s is also one of the step's inputs (a model cannot read its own "
                        "answer; name the answer differently or drop the input)",
                        show(s->output, strlen(s->output), q, sizeof q));
        }
    }
    if (gn.audit == NULL)
        s->audit_sample = s->allocation == TDM_ALLOC_AI ? 0.02 : 0;
    for (size_t i = 0; i < s->n_adverse; i++) {
        const char *a = s->adverse[i];
        int favourable = s->favourable != NULL && strcmp(a, s->favourable) == 0;
        if (known_label(s, a) && !favourable)
            continue;
        char q[80];
        path_key(v, "guardrails");
        path_key(v, "adverse_outcomes");
        path_index(v, i);
        return verr(v, gn.adverse,
                    favourable ? "%s is also the step's favourable outcome (an outcome cannot "
                                 "be both)"
                               : "%s is not one of the step's labels",
                    show(a, strlen(a), q, sizeof q));
    }
    if (s->escalation_queue != NULL && strcmp(s->escalation_queue, s->queue) == 0) {
        char q[80];
        path_key(v, "guardrails");
        path_key(v, "escalation_queue");
        return verr(v, gn.escalation,
                    "the same queue as queue, %s (escalations go to another queue, like "
                    "%s-leads)",
                    show(s->queue, strlen(s->queue), q, sizeof q), s->queue);
    }
    return 0;
}

static int read_steps(vctx *v, const ynode *seq)
{
    int rc = want_list(v, seq, "a list of steps, each starting with - id: NAME");
    if (rc)
        return rc;
    if (seq->count == 0)
        return verr(v, seq, "an empty list (a process needs at least one step)");
    if (seq->count > TDM__PROCESS_MAX_STEPS)
        return verr(v, seq, "%u steps; a process has at most %d (split it into several processes)",
                    seq->count, TDM__PROCESS_MAX_STEPS);
    tdm_process *p = v->p;
    p->steps = arena_array(p, seq->count, sizeof *p->steps);
    p->compiled = arena_array(p, seq->count, sizeof *p->compiled);
    p->four_eyes = arena_array(p, seq->count, sizeof *p->four_eyes);
    if (p->steps == NULL || p->compiled == NULL || p->four_eyes == NULL)
        return oom(v);
    p->n_steps = seq->count;
    size_t i = 0;
    for (const ynode *n = node_at(v->t, seq->first); n; n = node_at(v->t, n->next), i++) {
        size_t old = path_index(v, i);
        if ((rc = read_step(v, n, i, &p->steps[i])) != 0)
            return rc;
        path_restore(v, old);
    }
    const char **ids = xmalloc(p->n_steps * sizeof *ids);
    if (ids == NULL)
        return oom(v);
    for (i = 0; i < p->n_steps; i++)
        ids[i] = p->steps[i].id;
    size_t dup = 0, first = 0;
    int found;
    rc = find_duplicate(v, ids, p->n_steps, &dup, &first, &found);
    free(ids);
    if (rc == 0 && found) {
        const ynode *at = child(v->t, seq, dup);
        const ynode *id_node = NULL;
        for (const ynode *k = node_at(v->t, at->first); k; k = node_at(v->t, k->next)) {
            const ynode *val = node_at(v->t, k->next);
            if (strcmp(node_text(v->t, k), "id") == 0)
                id_node = val;
            k = val;
        }
        char q[80];
        path_index(v, dup);
        path_key(v, "id");
        rc = verr(v, id_node ? id_node : at,
                  "duplicate step id %s (steps[%zu] on line %u has it too; step ids must be "
                  "unique within a process)",
                  show(p->steps[dup].id, strlen(p->steps[dup].id), q, sizeof q), first,
                  child(v->t, seq, first)->line);
    }
    return rc;
}

static int read_process(vctx *v, const ynode *root)
{
    mapvals mv;
    int rc = read_keys(v, root, &top_spec, &mv);
    if (rc)
        return rc;
    static const struct {
        size_t key;
        const char *hint;
    } required[] = {
        {K_PROCESS, "a process file starts with the process name, like process: support-triage"},
        {K_OWNER, "every process needs an accountable owner, like owner: maria@example.com"},
        {K_KPIS, "a process needs at least one linked KPI, the measure it is meant to improve, "
                 "like kpis: [first_response_minutes]"},
        {K_BASELINE, "the pre-AI baseline, like baseline: {minutes_per_item: 4.5, error_rate: "
                     "0.06}"},
        {K_STEPS, "a process needs at least one step"},
    };
    for (size_t r = 0; r < COUNT(required); r++)
        if (mv.val[required[r].key] == NULL)
            return missing(v, root, top_keys[required[r].key], required[r].hint);

    tdm_process *p = v->p;
    p->description = "";
    for (size_t o = 0; o < mv.n_order; o++) {
        size_t k = mv.order[o];
        const ynode *n = mv.val[k];
        size_t old = path_key(v, top_keys[k]);
        const char *text;
        size_t len;
        switch (k) {
        case K_PROCESS:
            if ((rc = get_text(v, n, 1024, "support-triage", &text, &len)) != 0)
                break;
            if (!is_slug(text, len, "")) {
                char q[80];
                rc = verr(v, n,
                          "%s is not a process name (use 1 to 64 lowercase letters, digits, '_' "
                          "and '-', starting with a letter or digit, like support-triage)",
                          show(text, len, q, sizeof q));
                break;
            }
            p->name = arena_strndup(p, text, len);
            rc = p->name ? 0 : oom(v);
            break;
        case K_DESCRIPTION:
            if (!is_null(v->t, n))
                rc = get_text_copy(v, n, MAX_DESCRIPTION, "\"Route customer messages.\"",
                                   &p->description);
            break;
        case K_OWNER:
            rc = get_text_copy(v, n, MAX_TEXT, "maria@example.com", &p->owner);
            if (rc == 0 && p->owner[0] == '\0')
                rc = verr(v, n, "is empty (name the person accountable for the process)");
            break;
        case K_KPIS:
            rc = read_kpis(v, n);
            break;
        case K_BASELINE:
            rc = read_baseline(v, n);
            break;
        case K_STEPS:
            rc = read_steps(v, n);
            break;
        case K_RELATED_BY:
            rc = read_related_by(v, n);
            break;
        }
        if (rc)
            return rc;
        path_restore(v, old);
    }
    return 0;
}

/* ---- public API --------------------------------------------------------------------------- */

void tdm_process_free(tdm_process *p)
{
    if (p == NULL)
        return;
    if (p->compiled != NULL) {
        for (size_t s = 0; s < p->n_steps; s++) {
            if (p->compiled[s] == NULL)
                continue;
            for (size_t r = 0; r < p->steps[s].n_rules; r++)
                tdm__rule_free(p->compiled[s][r]);
        }
    }
    for (size_t s = 0; p->four_eyes != NULL && s < p->n_steps; s++)
        tdm__rule_free(p->four_eyes[s]);
    chunk *c = p->chunks;
    while (c != NULL) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(p);
}

int tdm_process_parse(const char *yaml, size_t len, const char *filename, tdm_process **out,
                      tdm_error *err)
{
    tdm__error_clear(err);
    if (out == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_process_parse: out is NULL");
    *out = NULL;
    const char *file = filename && filename[0] ? filename : "<process>";
    if (yaml == NULL && len > 0)
        return tdm__error(err, TDM_EINVAL, "%s: no text to parse", file);
    if (len > TDM__PROCESS_MAX_BYTES)
        return tdm__error(err, TDM_ETOOBIG,
                          "%s: the file is %zu bytes; process files are limited to 1 MiB "
                          "(1048576 bytes)",
                          file, len);

    ytree t = {0};
    int rc = tree_build(&t, yaml ? yaml : "", len, file, err);
    if (rc) {
        tree_release(&t);
        return rc;
    }
    const ynode *root = node_at(&t, t.root);
    if (root == NULL || is_null(&t, root)) {
        tree_release(&t);
        return tdm__error(err, TDM_EINVAL,
                          "%s:1: the file is empty (a process file starts with process: NAME; "
                          "see docs/process-file.md)",
                          file);
    }
    if (root->kind != YN_MAP) {
        rc = tdm__error(err, TDM_EINVAL,
                        "%s:%u: expected a mapping at the top of the file, got %s (a process file "
                        "is key: value lines, starting with process: NAME)",
                        file, root->line, root->kind == YN_SEQ ? "a list" : "a single value");
        tree_release(&t);
        return rc;
    }

    tdm_process *p = xcalloc(1, sizeof *p);
    if (p == NULL) {
        tree_release(&t);
        return tdm__error(err, TDM_ENOMEM, "%s: out of memory", file);
    }
    vctx v = {.t = &t, .file = file, .err = err, .p = p};
    v.path[0] = '\0';
    rc = read_process(&v, root);
    tree_release(&t);
    if (rc) {
        tdm_process_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int tdm_process_load(const char *path, tdm_process **out, tdm_error *err)
{
    tdm__error_clear(err);
    if (out == NULL || path == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_process_load: no path or no out");
    *out = NULL;
    char ebuf[128];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        if (strerror_r(e, ebuf, sizeof ebuf) != 0)
            snprintf(ebuf, sizeof ebuf, "error %d", e);
        return tdm__error(err, TDM_EIO, "%s: cannot open: %s (check the path and permissions)",
                          path, ebuf);
    }
    size_t cap = 16384, len = 0;
    char *buf = xmalloc(cap);
    int rc = buf ? 0 : TDM_ENOMEM;
    while (rc == 0) {
        if (len == cap) {
            if (cap > TDM__PROCESS_MAX_BYTES) {
                rc = tdm__error(err, TDM_ETOOBIG,
                                "%s: the file is larger than 1 MiB, the limit for process files",
                                path);
                break;
            }
            size_t ncap =
                cap * 2 > TDM__PROCESS_MAX_BYTES + 1 ? TDM__PROCESS_MAX_BYTES + 1 : cap * 2;
            char *nb = xrealloc(buf, ncap);
            if (nb == NULL) {
                rc = TDM_ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                int e = errno;
                if (strerror_r(e, ebuf, sizeof ebuf) != 0)
                    snprintf(ebuf, sizeof ebuf, "error %d", e);
                rc = tdm__error(err, TDM_EIO, "%s: cannot read: %s", path, ebuf);
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0 && len > TDM__PROCESS_MAX_BYTES)
        rc = tdm__error(err, TDM_ETOOBIG,
                        "%s: the file is larger than 1 MiB, the limit for process files", path);
    if (rc == TDM_ENOMEM)
        rc = tdm__error(err, TDM_ENOMEM, "%s: out of memory", path);
    if (rc == 0)
        rc = tdm_process_parse(buf, len, path, out, err);
    free(buf);
    return rc;
}

const char *tdm_process_name(const tdm_process *p)
{
    return p->name;
}

const char *tdm_process_owner(const tdm_process *p)
{
    return p->owner;
}

const char *tdm_process_related_by(const tdm_process *p)
{
    return p->related_by;
}

const char *tdm_process_description(const tdm_process *p)
{
    return p->description;
}

size_t tdm_process_kpi_count(const tdm_process *p)
{
    return p->n_kpis;
}

const char *tdm_process_kpi(const tdm_process *p, size_t i)
{
    return i < p->n_kpis ? p->kpis[i] : NULL;
}

const char *tdm__process_kpi_target(const tdm_process *p, size_t i)
{
    return i < p->n_kpis ? p->kpi_targets[i] : NULL;
}

double tdm_process_baseline_minutes(const tdm_process *p)
{
    return p->baseline_minutes;
}

double tdm_process_baseline_error(const tdm_process *p)
{
    return p->baseline_error;
}

double tdm_process_baseline_cost(const tdm_process *p)
{
    return p->baseline_cost;
}

size_t tdm_process_step_count(const tdm_process *p)
{
    return p->n_steps;
}

const tdm_step_info *tdm_process_step(const tdm_process *p, size_t i)
{
    return p != NULL && i < p->n_steps ? &p->steps[i] : NULL;
}

int tdm_process_step_index(const tdm_process *p, const char *id, size_t *index)
{
    if (p == NULL || id == NULL)
        return TDM_EINVAL;
    for (size_t i = 0; i < p->n_steps; i++) {
        if (strcmp(p->steps[i].id, id) == 0) {
            if (index != NULL)
                *index = i;
            return 0;
        }
    }
    return TDM_ENOTFOUND;
}

int tdm_process_four_eyes(const tdm_process *p, size_t step, tdm_rule_lookup lookup, void *ctx,
                          const char *label, double confidence)
{
    if (p == NULL || step >= p->n_steps || p->steps[step].four_eyes == NULL)
        return 0;
    if (p->four_eyes[step] == NULL)
        return 1; /* always */
    int hit = 0;
    /* A rule that cannot be evaluated asks for the second person: when in doubt, four eyes. */
    if (tdm__rule_eval(p->four_eyes[step], lookup, ctx, label, confidence, &hit) != 0)
        return 1;
    return hit != 0;
}

int tdm_process_second_look(const tdm_process *p, size_t step, const char *proposal,
                            const char *label, double confidence)
{
    if (p == NULL || step >= p->n_steps || proposal == NULL || label == NULL)
        return 0;
    double from = p->steps[step].second_look;
    return from > 0 && confidence >= from && strcmp(proposal, label) != 0;
}

int tdm_process_adverse(const tdm_process *p, size_t step, const char *label)
{
    if (p == NULL || label == NULL || step >= p->n_steps)
        return 0;
    const tdm_step_info *s = &p->steps[step];
    for (size_t i = 0; i < s->n_adverse; i++)
        if (strcmp(s->adverse[i], label) == 0)
            return 1;
    return 0;
}

int tdm_process_review(const tdm_process *p, size_t step, tdm_rule_lookup lookup, void *ctx,
                       const char *label, double confidence, size_t *fired)
{
    if (fired != NULL)
        *fired = SIZE_MAX;
    if (p == NULL || fired == NULL || step >= p->n_steps)
        return TDM_EINVAL;
    const tdm_step_info *s = &p->steps[step];
    for (size_t i = 0; i < s->n_rules; i++) {
        int hit = 0;
        int rc = tdm__rule_eval(p->compiled[step][i], lookup, ctx, label, confidence, &hit);
        if (rc) {
            /* Fail safe: a rule that could not be evaluated sends the item to a person even
             * for a caller that ignores the error. */
            *fired = i;
            return rc;
        }
        if (hit) {
            *fired = i;
            return 0;
        }
    }
    return 0;
}

int tdm_rule_check(const char *source, tdm_error *err)
{
    tdm__error_clear(err);
    if (source == NULL)
        return tdm__error(err, TDM_EINVAL,
                          "no rule given (write a condition, like amount > "
                          "10000)");
    tdm__rule *r = NULL;
    char msg[300];
    size_t column = 0;
    int rc = tdm__rule_compile(source, strlen(source), &r, &column, msg, sizeof msg);
    if (rc == TDM_ENOMEM)
        return tdm__error(err, TDM_ENOMEM, "out of memory");
    if (rc)
        return tdm__error(err, TDM_EINVAL, "column %zu: %s", column, msg);
    tdm__rule_free(r);
    return 0;
}
