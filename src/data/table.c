/*
 * table.c — tdm_table: reading a whole table into memory, and the accessors the rest of
 * tandem uses to look at it.
 *
 * NOTES ON THE DESIGN OF THE TABLE
 *
 * A table is written once, by a parser (csv.c or jsonl.c) driving a tdm__table_builder, and
 * read many times after that. It is laid out for that: every cell of every row lives in one
 * arena (`text`) that grows geometrically, and a cell is a pair of consecutive entries of
 * `bounds`: cell i spans text[bounds[i] .. bounds[i + 1]), which is its bytes and a NUL. A
 * present cell spans at least its NUL, so an empty span means a missing cell. Reading a table
 * of a million cells therefore costs a few dozen allocations, not a million, and a cell costs
 * one size_t beyond its text.
 *
 * Invariants of a finished table:
 *   - n_bounds == n_rows * n_cols + 1, bounds[0] == 0, bounds never decreases, and
 *     bounds[n_bounds - 1] == text_len;
 *   - a present cell's span ends in its NUL, and its bytes hold no other NUL (the parsers reject
 *     inputs that would put one there), so a cell is also a proper C string;
 *   - column names are non-empty, distinct and NUL-free; `index` finds each of them.
 *
 * CSV rows always have n_cols cells. JSON Lines discovers columns as it goes, so a row has as
 * many cells as there were columns when it was read; `runs` remembers those widths, and
 * finishing the table moves the bounds into a dense n_rows x n_cols layout in place, from the
 * last row back, padding each row with missing cells (empty spans at the row's end).
 *
 * Failure never leaves a half-made table: the builder owns everything until
 * tdm__table_builder_finish() hands it out, and tdm__table_builder_release() frees whatever
 * is left on every path. Sizes are computed with overflow checks: a hostile input can make
 * an allocation fail, never make one too small.
 *
 * Number text is read and written in the C locale; tandem never calls setlocale().
 */
#define _POSIX_C_SOURCE 200809L

#include "data/table_int.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAX_BYTES        ((size_t)1 << 30)
#define DEFAULT_MAX_RECORD_BYTES ((size_t)16 << 20)
#define DEFAULT_MAX_COLUMNS      ((size_t)4096)
#define DEFAULT_MAX_ROWS         ((size_t)100000000)

/* Read a file in steps of this many bytes when it did not say its size (a pipe, /proc). */
#define READ_CHUNK ((size_t)64 << 10)

#define UTF8_BOM "\xEF\xBB\xBF"

/* ------------------------------------------------------------------------------------------ */
/* Allocation                                                                                 */
/* ------------------------------------------------------------------------------------------ */

#ifdef TDM_DEBUG
size_t tdm__table_alloc_fail_countdown = 0;

static int injected_failure(void)
{
    if (tdm__table_alloc_fail_countdown == 0)
        return 0;
    return --tdm__table_alloc_fail_countdown == 0;
}
#else
static int injected_failure(void)
{
    return 0;
}
#endif

void *tdm__table_malloc(size_t size)
{
    if (injected_failure())
        return NULL;
    return malloc(size != 0 ? size : 1);
}

void *tdm__table_realloc(void *ptr, size_t size)
{
    if (injected_failure())
        return NULL;
    return realloc(ptr, size != 0 ? size : 1);
}

int tdm__table_grow(void *array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t new_cap = *cap != 0 ? *cap : 16;
    while (new_cap < need)
        new_cap = new_cap <= SIZE_MAX / 2 ? new_cap * 2 : need;
    size_t bytes;
    if (tdm__size_mul(new_cap, elem, &bytes) != 0)
        return TDM_ENOMEM;
    /* The pointer is read and written as bytes, whatever its type, without aliasing casts. */
    void *old;
    memcpy(&old, array, sizeof old);
    void *p = tdm__table_realloc(old, bytes);
    if (p == NULL)
        return TDM_ENOMEM;
    memcpy(array, &p, sizeof p);
    *cap = new_cap;
    return 0;
}

/* Gives back the slack of geometric growth once a table is complete; failing is harmless. */
static void shrink(void *array, size_t *cap, size_t used, size_t elem)
{
    void *old;
    memcpy(&old, array, sizeof old);
    if (old == NULL || used == 0 || used >= *cap)
        return;
    void *p = realloc(old, used * elem);
    if (p != NULL) {
        memcpy(array, &p, sizeof p);
        *cap = used;
    }
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s);
    if (n == SIZE_MAX)
        return NULL;
    char *p = tdm__table_malloc(n + 1);
    if (p != NULL)
        memcpy(p, s, n + 1);
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Column names                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* FNV-1a: names are short and few, and this needs no dependency. */
static uint64_t hash_bytes(const char *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static size_t name_length(const tdm_table *t, size_t col)
{
    size_t end = col + 1 < t->n_cols ? t->name_offs[col + 1] : t->names_len;
    return end - t->name_offs[col] - 1;
}

static void index_insert(size_t *index, size_t mask, const char *name, size_t len, size_t col)
{
    size_t i = (size_t)hash_bytes(name, len) & mask;
    while (index[i] != 0)
        i = (i + 1) & mask;
    index[i] = col + 1;
}

int tdm__table_find_column(const tdm_table *table, const char *name, size_t len, size_t *col)
{
    if (table->index == NULL)
        return TDM_ENOTFOUND;
    size_t mask = table->index_mask;
    for (size_t i = (size_t)hash_bytes(name, len) & mask; table->index[i] != 0;
         i = (i + 1) & mask) {
        size_t c = table->index[i] - 1;
        if (name_length(table, c) == len &&
            memcmp(table->names + table->name_offs[c], name, len) == 0) {
            *col = c;
            return 0;
        }
    }
    return TDM_ENOTFOUND;
}

int tdm__table_add_column(tdm__table_builder *b, const char *name, size_t len, size_t *col)
{
    tdm_table *t = b->table;
    TDM_ASSERT(len > 0 && memchr(name, '\0', len) == NULL);
    TDM_ASSERT(tdm__table_find_column(t, name, len, col) == TDM_ENOTFOUND);

    if (t->n_cols >= b->limits.max_columns) {
        return tdm__error(b->err, TDM_ETOOBIG,
                          "%s:%zu: column \"%.*s\" would be column %zu, over the max_columns "
                          "limit of %zu; raise the limit or use fewer columns",
                          t->name, b->line, (int)(len < 64 ? len : 64), name, t->n_cols + 1,
                          b->limits.max_columns);
    }

    /* Every allocation happens before anything changes, so a failure leaves the table as is. */
    size_t n = t->n_cols + 1;
    size_t slots = t->index_mask + 1;
    size_t *index = NULL;
    if (t->index == NULL || n > slots / 2) {
        slots = t->index == NULL ? 16 : slots * 2;
        while (n > slots / 2)
            slots *= 2;
        size_t bytes;
        if (tdm__size_mul(slots, sizeof *index, &bytes) != 0 ||
            (index = tdm__table_malloc(bytes)) == NULL)
            goto nomem;
        memset(index, 0, bytes);
    }
    if (len > SIZE_MAX - 1 - t->names_len ||
        tdm__table_grow(&t->names, &t->names_cap, t->names_len + len + 1, 1) != 0 ||
        tdm__table_grow(&t->name_offs, &t->name_offs_cap, n, sizeof(size_t)) != 0) {
        free(index);
        goto nomem;
    }

    t->name_offs[t->n_cols] = t->names_len;
    memcpy(t->names + t->names_len, name, len);
    t->names[t->names_len + len] = '\0';
    t->names_len += len + 1;
    t->n_cols = n;

    if (index != NULL) {
        free(t->index);
        t->index = index;
        t->index_mask = slots - 1;
        for (size_t c = 0; c + 1 < n; c++)
            index_insert(index, t->index_mask, t->names + t->name_offs[c], name_length(t, c), c);
    }
    index_insert(t->index, t->index_mask, name, len, n - 1);
    *col = n - 1;
    return 0;

nomem:
    return tdm__error(b->err, TDM_ENOMEM,
                      "%s:%zu: out of memory adding column \"%.*s\"; free memory or read a "
                      "smaller table",
                      t->name, b->line, (int)(len < 64 ? len : 64), name);
}

/* ------------------------------------------------------------------------------------------ */
/* The builder                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void resolve_limits(const tdm_table_limits *in, tdm_table_limits *out)
{
    tdm_table_limits_init(out);
    if (in == NULL)
        return;
    if (in->max_bytes != 0)
        out->max_bytes = in->max_bytes;
    if (in->max_record_bytes != 0)
        out->max_record_bytes = in->max_record_bytes;
    if (in->max_columns != 0)
        out->max_columns = in->max_columns;
    if (in->max_rows != 0)
        out->max_rows = in->max_rows;
}

static void table_destroy(tdm_table *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t->text);
    free(t->bounds);
    free(t->lines);
    free(t->names);
    free(t->name_offs);
    free(t->index);
    free(t);
}

static int out_of_memory(tdm__table_builder *b)
{
    return tdm__error(b->err, TDM_ENOMEM,
                      "%s:%zu: out of memory reading the table (%zu bytes of cells so far); free "
                      "memory or read a smaller table",
                      b->table->name, b->line, b->table->text_len);
}

int tdm__table_builder_init(tdm__table_builder *b, const char *name, const tdm_table_limits *limits,
                            tdm_error *err)
{
    memset(b, 0, sizeof *b);
    b->err = err;
    b->line = 1;
    resolve_limits(limits, &b->limits);

    tdm_table *t = tdm__table_malloc(sizeof *t);
    if (t == NULL)
        goto nomem;
    memset(t, 0, sizeof *t);
    t->name = copy_string(name);
    if (t->name == NULL || tdm__table_grow(&t->bounds, &t->bounds_cap, 1, sizeof(size_t)) != 0) {
        table_destroy(t);
        goto nomem;
    }
    t->bounds[0] = 0;
    t->n_bounds = 1;
    b->table = t;
    return 0;

nomem:
    return tdm__error(err, TDM_ENOMEM, "%s: out of memory starting to read the table", name);
}

void tdm__table_builder_release(tdm__table_builder *b)
{
    table_destroy(b->table);
    free(b->runs);
    memset(b, 0, sizeof *b);
}

int tdm__table_begin_row(tdm__table_builder *b, size_t line)
{
    tdm_table *t = b->table;
    TDM_ASSERT(t->n_bounds - 1 == b->cells_written);
    b->line = line;
    if (t->n_rows >= b->limits.max_rows) {
        return tdm__error(b->err, TDM_ETOOBIG,
                          "%s:%zu: more than %zu rows (the max_rows limit); raise the limit or "
                          "split the input",
                          t->name, line, b->limits.max_rows);
    }
    if (tdm__table_grow(&t->lines, &t->lines_cap, t->n_rows + 1, sizeof(size_t)) != 0)
        return out_of_memory(b);
    if (b->n_runs == 0 || b->runs[b->n_runs - 1].width != t->n_cols) {
        if (tdm__table_grow(&b->runs, &b->runs_cap, b->n_runs + 1, sizeof(tdm__table_run)) != 0)
            return out_of_memory(b);
        b->runs[b->n_runs].first_row = t->n_rows;
        b->runs[b->n_runs].width = t->n_cols;
        b->n_runs++;
    }
    t->lines[t->n_rows++] = line;
    b->cells_written += t->n_cols;
    return 0;
}

int tdm__table_append_text(tdm__table_builder *b, const char *data, size_t len)
{
    tdm_table *t = b->table;
    if (len == 0)
        return 0;
    if (len > SIZE_MAX - t->text_len ||
        tdm__table_grow(&t->text, &t->text_cap, t->text_len + len, 1) != 0)
        return out_of_memory(b);
    memcpy(t->text + t->text_len, data, len);
    t->text_len += len;
    return 0;
}

static int push_bound(tdm__table_builder *b)
{
    tdm_table *t = b->table;
    if (tdm__table_grow(&t->bounds, &t->bounds_cap, t->n_bounds + 1, sizeof(size_t)) != 0)
        return out_of_memory(b);
    t->bounds[t->n_bounds++] = t->text_len;
    return 0;
}

int tdm__table_end_cell(tdm__table_builder *b)
{
    int rc = tdm__table_append_text(b, "", 1);
    return rc != 0 ? rc : push_bound(b);
}

int tdm__table_missing_cell(tdm__table_builder *b)
{
    return push_bound(b);
}

size_t tdm__table_pending_count(const tdm__table_builder *b)
{
    TDM_ASSERT(b->table->n_rows == 0);
    return b->table->n_bounds - 1;
}

const char *tdm__table_pending_cell(const tdm__table_builder *b, size_t i, size_t *len)
{
    const tdm_table *t = b->table;
    TDM_ASSERT(i + 1 < t->n_bounds && t->bounds[i + 1] > t->bounds[i]);
    *len = t->bounds[i + 1] - t->bounds[i] - 1;
    return t->text + t->bounds[i];
}

void tdm__table_clear_pending(tdm__table_builder *b)
{
    TDM_ASSERT(b->table->n_rows == 0);
    b->table->text_len = 0;
    b->table->n_bounds = 1;
}

/*
 * Moves the bounds of rows written narrower than the final column count into the dense
 * layout, from the last row back. Row r was written at old index s (s <= r * n_cols, as no
 * earlier row was wider), so its destination never covers bounds not yet moved: those all lie
 * at or before s. A row's closing bound is also the next row's opening one and is still in
 * place when the row is moved, because later rows only write at or after their own
 * destination.
 */
static void relayout(tdm__table_builder *b)
{
    tdm_table *t = b->table;
    size_t n = t->n_cols;
    size_t src_end = t->n_bounds - 1;
    for (size_t k = b->n_runs; k-- > 0;) {
        size_t w = b->runs[k].width;
        size_t first = b->runs[k].first_row;
        size_t stop = k + 1 < b->n_runs ? b->runs[k + 1].first_row : t->n_rows;
        for (size_t r = stop; r-- > first;) {
            size_t src = src_end - w;
            size_t dst = r * n;
            size_t end_value = t->bounds[src_end];
            TDM_ASSERT(src <= dst);
            memmove(&t->bounds[dst], &t->bounds[src], (w + 1) * sizeof(size_t));
            for (size_t c = w + 1; c <= n; c++)
                t->bounds[dst + c] = end_value;
            src_end = src;
        }
    }
    TDM_ASSERT(src_end == 0);
    t->n_bounds = t->n_rows * n + 1;
}

int tdm__table_builder_finish(tdm__table_builder *b, tdm_table **out)
{
    tdm_table *t = b->table;
    TDM_ASSERT(t->n_bounds - 1 == b->cells_written);

    int dense = b->n_runs == 0 || (b->n_runs == 1 && b->runs[0].width == t->n_cols);
    if (!dense) {
        size_t cells;
        if (tdm__size_mul(t->n_rows, t->n_cols, &cells) != 0 || cells == SIZE_MAX ||
            tdm__table_grow(&t->bounds, &t->bounds_cap, cells + 1, sizeof(size_t)) != 0)
            return out_of_memory(b);
        relayout(b);
    }

    shrink(&t->text, &t->text_cap, t->text_len, 1);
    shrink(&t->bounds, &t->bounds_cap, t->n_bounds, sizeof(size_t));
    shrink(&t->lines, &t->lines_cap, t->n_rows, sizeof(size_t));
    shrink(&t->names, &t->names_cap, t->names_len, 1);
    shrink(&t->name_offs, &t->name_offs_cap, t->n_cols, sizeof(size_t));

    *out = t;
    b->table = NULL;
    tdm__table_builder_release(b);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading                                                                                    */
/* ------------------------------------------------------------------------------------------ */

void tdm_table_limits_init(tdm_table_limits *limits)
{
    if (limits == NULL)
        return;
    limits->max_bytes = DEFAULT_MAX_BYTES;
    limits->max_record_bytes = DEFAULT_MAX_RECORD_BYTES;
    limits->max_columns = DEFAULT_MAX_COLUMNS;
    limits->max_rows = DEFAULT_MAX_ROWS;
}

static int is_blank_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The format a buffer's content suggests: JSON Lines when it starts with '{'. */
static tdm_table_format sniff_format(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && is_blank_byte(data[i]))
        i++;
    return i < len && data[i] == '{' ? TDM_FORMAT_JSONL : TDM_FORMAT_CSV;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int ends_with_nocase(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    if (m > n)
        return 0;
    for (size_t i = 0; i < m; i++)
        if (ascii_lower((unsigned char)s[n - m + i]) != suffix[i])
            return 0;
    return 1;
}

/* The format a path's extension names, or TDM_FORMAT_AUTO when it names none. */
static tdm_table_format format_from_path(const char *path)
{
    size_t n = strlen(path);
    if (ends_with_nocase(path, n, ".csv"))
        return TDM_FORMAT_CSV;
    if (ends_with_nocase(path, n, ".jsonl") || ends_with_nocase(path, n, ".ndjson") ||
        ends_with_nocase(path, n, ".json"))
        return TDM_FORMAT_JSONL;
    return TDM_FORMAT_AUTO;
}

/* Parses `len` bytes (limits already checked against the whole input) into a new table. */
static int parse_memory(const char *data, size_t len, tdm_table_format format, const char *name,
                        const tdm_table_limits *limits, tdm_table **out, tdm_error *err)
{
    if (len >= 3 && memcmp(data, UTF8_BOM, 3) == 0) {
        data += 3;
        len -= 3;
    }
    if (format == TDM_FORMAT_AUTO)
        format = sniff_format(data, len);

    tdm__table_builder b;
    int rc = tdm__table_builder_init(&b, name, limits, err);
    if (rc != 0)
        return rc;
    rc = format == TDM_FORMAT_JSONL ? tdm__jsonl_parse(&b, data, len)
                                    : tdm__csv_parse(&b, data, len);
    if (rc == 0)
        rc = tdm__table_builder_finish(&b, out);
    if (rc != 0)
        tdm__table_builder_release(&b);
    return rc;
}

static int check_format(tdm_table_format format, const char *name, tdm_error *err)
{
    if (format == TDM_FORMAT_AUTO || format == TDM_FORMAT_CSV || format == TDM_FORMAT_JSONL)
        return 0;
    return tdm__error(err, TDM_EINVAL,
                      "%s: unknown table format %d; use TDM_FORMAT_AUTO, TDM_FORMAT_CSV or "
                      "TDM_FORMAT_JSONL",
                      name, (int)format);
}

int tdm_table_read_buffer(const char *data, size_t len, tdm_table_format format, const char *name,
                          const tdm_table_limits *limits, tdm_table **out, tdm_error *err)
{
    tdm__error_clear(err);
    if (name == NULL)
        name = "<buffer>";
    if (out == NULL)
        return tdm__error(err, TDM_EINVAL, "%s: no place to store the table (out is NULL)", name);
    *out = NULL;
    if (data == NULL && len != 0)
        return tdm__error(err, TDM_EINVAL, "%s: data is NULL but len is %zu", name, len);
    int rc = check_format(format, name, err);
    if (rc != 0)
        return rc;

    tdm_table_limits lim;
    resolve_limits(limits, &lim);
    if (len > lim.max_bytes) {
        return tdm__error(err, TDM_ETOOBIG,
                          "%s: the input is %zu bytes, over the max_bytes limit of %zu; raise the "
                          "limit or split the input",
                          name, len, lim.max_bytes);
    }
    return parse_memory(data != NULL ? data : "", len, format, name, &lim, out, err);
}

/*
 * Reads the whole of `path` into a new buffer, refusing more than max_bytes. The size from
 * fstat() is checked first so an oversized file is refused before any of it is read, but the
 * loop trusts only what fread() returns, since a file can change size while it is read.
 */
static int read_file(const char *path, size_t max_bytes, char **data, size_t *len, tdm_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return tdm__error(err, TDM_EIO, "%s: cannot open: %s; check the path and its permissions",
                          path, strerror(errno));
    }

    int rc = 0;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = tdm__error(err, TDM_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = tdm__error(err, TDM_EIO,
                        "%s: not a regular file; give the path of a CSV or JSON Lines file", path);
        goto done;
    }
    if (st.st_size > 0 && (uintmax_t)st.st_size > max_bytes) {
        rc = tdm__error(err, TDM_ETOOBIG,
                        "%s: the file is %jd bytes, over the max_bytes limit of %zu; raise the "
                        "limit or split the file",
                        path, (intmax_t)st.st_size, max_bytes);
        goto done;
    }

    /*
     * One byte more than the size, so that reaching end-of-file needs no second allocation;
     * and never more than one byte over the limit, which is enough to know it was crossed.
     */
    size_t limit = max_bytes < SIZE_MAX ? max_bytes + 1 : SIZE_MAX;
    size_t want =
        st.st_size > 0 && (uintmax_t)st.st_size < limit ? (size_t)st.st_size + 1 : READ_CHUNK;
    if (want > limit)
        want = limit;
    for (;;) {
        if (n == cap) {
            size_t new_cap = cap == 0 ? want : cap <= limit / 2 ? cap * 2 : limit;
            char *p = tdm__table_realloc(buf, new_cap);
            if (p == NULL) {
                rc = tdm__error(err, TDM_ENOMEM,
                                "%s: out of memory reading the file (%zu bytes so far); free "
                                "memory or read a smaller file",
                                path, n);
                goto done;
            }
            buf = p;
            cap = new_cap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max_bytes) {
            rc = tdm__error(err, TDM_ETOOBIG,
                            "%s: the file is over the max_bytes limit of %zu bytes; raise the "
                            "limit or split the file",
                            path, max_bytes);
            goto done;
        }
        if (n < cap) {
            if (ferror(f)) {
                rc = tdm__error(err, TDM_EIO, "%s: cannot read: %s", path, strerror(errno));
                goto done;
            }
            if (feof(f))
                break;
        }
    }

done:
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

int tdm_table_read_file(const char *path, tdm_table_format format, const tdm_table_limits *limits,
                        tdm_table **out, tdm_error *err)
{
    tdm__error_clear(err);
    if (out != NULL)
        *out = NULL;
    if (path == NULL)
        return tdm__error(err, TDM_EINVAL, "no path given for the table to read");
    if (out == NULL)
        return tdm__error(err, TDM_EINVAL, "%s: no place to store the table (out is NULL)", path);
    int rc = check_format(format, path, err);
    if (rc != 0)
        return rc;

    tdm_table_limits lim;
    resolve_limits(limits, &lim);
    char *data;
    size_t len;
    rc = read_file(path, lim.max_bytes, &data, &len, err);
    if (rc != 0)
        return rc;
    if (format == TDM_FORMAT_AUTO)
        format = format_from_path(path);
    rc = parse_memory(data != NULL ? data : "", len, format, path, &lim, out, err);
    free(data);
    return rc;
}

void tdm_table_free(tdm_table *table)
{
    table_destroy(table);
}

/* ------------------------------------------------------------------------------------------ */
/* Accessors                                                                                  */
/* ------------------------------------------------------------------------------------------ */

size_t tdm_table_row_count(const tdm_table *table)
{
    return table != NULL ? table->n_rows : 0;
}

size_t tdm_table_column_count(const tdm_table *table)
{
    return table != NULL ? table->n_cols : 0;
}

const char *tdm_table_column_name(const tdm_table *table, size_t col)
{
    TDM_ASSERT(table != NULL && col < table->n_cols);
    if (table == NULL || col >= table->n_cols)
        return NULL;
    return table->names + table->name_offs[col];
}

int tdm_table_column_index(const tdm_table *table, const char *name, size_t *col)
{
    if (table == NULL || name == NULL || col == NULL)
        return TDM_EINVAL;
    return tdm__table_find_column(table, name, strlen(name), col);
}

const char *tdm_table_cell(const tdm_table *table, size_t row, size_t col, size_t *len)
{
    TDM_ASSERT(table != NULL && row < table->n_rows && col < table->n_cols);
    if (len != NULL)
        *len = 0;
    if (table == NULL || row >= table->n_rows || col >= table->n_cols)
        return NULL;
    size_t i = row * table->n_cols + col;
    size_t start = table->bounds[i], end = table->bounds[i + 1];
    if (start == end)
        return NULL;
    if (len != NULL)
        *len = end - start - 1;
    return table->text + start;
}

size_t tdm_table_row_line(const tdm_table *table, size_t row)
{
    TDM_ASSERT(table != NULL && row < table->n_rows);
    if (table == NULL || row >= table->n_rows)
        return 0;
    return table->lines[row];
}

const char *tdm_table_name(const tdm_table *table)
{
    return table != NULL ? table->name : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Field kinds                                                                                */
/* ------------------------------------------------------------------------------------------ */

const char *tdm_field_kind_name(tdm_field_kind kind)
{
    switch (kind) {
    case TDM_FIELD_TEXT:
        return "text";
    case TDM_FIELD_CATEGORICAL:
        return "categorical";
    case TDM_FIELD_NUMERIC:
        return "numeric";
    }
    return "unknown";
}

int tdm_field_kind_parse(const char *name, tdm_field_kind *kind)
{
    static const tdm_field_kind kinds[] = {TDM_FIELD_TEXT, TDM_FIELD_CATEGORICAL,
                                           TDM_FIELD_NUMERIC};
    if (name == NULL || kind == NULL)
        return TDM_EINVAL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(name, tdm_field_kind_name(kinds[i])) == 0) {
            *kind = kinds[i];
            return 0;
        }
    }
    return TDM_EINVAL;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Narrows [*s, *s + *len) to its text without leading and trailing white space. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

/* Whether a (NUL-terminated) cell is a finite number, white space around it allowed. */
static int is_number(const char *cell)
{
    char *end;
    double v = strtod(cell, &end);
    if (end == cell || !isfinite(v))
        return 0;
    while (is_space(*end))
        end++;
    return *end == '\0';
}

/*
 * Whether at least `need` of the column's non-blank values are distinct. Only `need` values
 * are ever held, so the set stays small even for a long column. Without memory for the set
 * the answer is no, which makes the guess "categorical", the safe default.
 */
static int has_distinct(const tdm_table *t, size_t col, size_t need)
{
    size_t slots = 16;
    while (slots / 2 < need) {
        if (slots > SIZE_MAX / 2 / sizeof(size_t))
            return 0;
        slots *= 2;
    }
    size_t *set = tdm__table_malloc(slots * sizeof *set);
    if (set == NULL)
        return 0;
    memset(set, 0, slots * sizeof *set);

    size_t mask = slots - 1, distinct = 0;
    for (size_t r = 0; r < t->n_rows && distinct < need; r++) {
        size_t len;
        const char *v = tdm_table_cell(t, r, col, &len);
        if (v == NULL)
            continue;
        trim(&v, &len);
        if (len == 0)
            continue;
        size_t i = (size_t)hash_bytes(v, len) & mask;
        for (; set[i] != 0; i = (i + 1) & mask) {
            size_t olen;
            const char *o = tdm_table_cell(t, set[i] - 1, col, &olen);
            trim(&o, &olen);
            if (olen == len && memcmp(o, v, len) == 0)
                break;
        }
        if (set[i] == 0) {
            set[i] = r + 1;
            distinct++;
        }
    }
    free(set);
    return distinct >= need;
}

tdm_field_kind tdm_table_infer_kind(const tdm_table *table, size_t col)
{
    TDM_ASSERT(table != NULL && col < table->n_cols);
    if (table == NULL || col >= table->n_cols)
        return TDM_FIELD_CATEGORICAL;

    size_t n = 0, numeric = 0, spaced = 0, total_len = 0;
    for (size_t r = 0; r < table->n_rows; r++) {
        size_t len;
        const char *cell = tdm_table_cell(table, r, col, &len);
        if (cell == NULL)
            continue;
        const char *v = cell;
        trim(&v, &len);
        if (len == 0)
            continue;
        n++;
        total_len += len;
        numeric += (size_t)is_number(cell);
        for (size_t i = 0; i < len; i++) {
            if (is_space(v[i])) {
                spaced++;
                break;
            }
        }
    }

    if (n == 0)
        return TDM_FIELD_CATEGORICAL;
    if (numeric == n)
        return TDM_FIELD_NUMERIC;
    if (total_len / n >= 32)
        return TDM_FIELD_TEXT;
    if (spaced >= n - spaced && has_distinct(table, col, n / 5 + (n % 5 != 0)))
        return TDM_FIELD_TEXT;
    return TDM_FIELD_CATEGORICAL;
}

/* The index past the run of digits at s[i .. n). */
static size_t skip_digits(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* True when s[0 .. n) is a number as JSON writes one (see tdm_table_column_is_json_number). */
static int is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        i = skip_digits(s, i, n);
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = i + 1;
        if ((i = skip_digits(s, d, n)) == d)
            return 0; /* a point needs digits after it */
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        if ((i = skip_digits(s, d, n)) == d)
            return 0; /* so does an exponent */
    }
    return i == n;
}

int tdm_table_column_is_json_number(const tdm_table *table, size_t col)
{
    if (table == NULL || col >= tdm_table_column_count(table))
        return 0;
    int any = 0;
    for (size_t r = 0; r < tdm_table_row_count(table); r++) {
        size_t n;
        const char *v = tdm_table_cell(table, r, col, &n);
        if (v == NULL || n == 0)
            continue;
        if (!is_json_number(v, n))
            return 0;
        any = 1;
    }
    return any;
}
