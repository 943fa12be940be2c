/*
 * csv.c — reads CSV (RFC 4180) into a table.
 *
 * NOTES ON THE DESIGN OF THE CSV READER
 *
 * The whole input is in memory, so the reader is a cursor (`pos`, and `line`, the 1-based
 * line of the byte at `pos`) moved over it by a small recursive-descent grammar:
 *
 *     table   = *blank header *(*blank record) *blank
 *     record  = field *("," field) (CRLF | LF | end of input)
 *     field   = quoted | plain
 *     quoted  = '"' *(any byte but '"' | '""') '"'
 *     plain   = *(any byte but '"', ',', CR, LF, NUL)
 *     blank   = CRLF | LF                  (a line with nothing on it)
 *
 * A field's bytes are unescaped straight into the table's arena: a plain field in one copy,
 * a quoted field in one copy per run between quotes, so no field is ever held twice. The
 * header is read as an ordinary record and then turned into column names.
 *
 * Strictness is deliberate: a quote in a plain field, text after a closing quote, a carriage
 * return on its own and a NUL byte are errors rather than guesses, because each of them
 * usually means the file is not what its writer thought (a broken export, UTF-16, a
 * different quoting convention), and guessing would shift values into the wrong columns
 * without a word. Every message names the line and says how to fix it.
 */
#include "data/table_int.h"

#include <stdio.h>
#include <string.h>

typedef struct csv_reader {
    tdm__table_builder *b;
    const char *p; /* the input */
    size_t len;
    size_t pos;       /* the next byte to read */
    size_t line;      /* the line of p[pos] */
    size_t field_end; /* where the last field ended, before its terminator */
    int header;       /* reading the header row */
} csv_reader;

/* Names field `field` of the current record for messages, in `buf`. */
static const char *field_name(const csv_reader *c, size_t field, char *buf, size_t size)
{
    const tdm_table *t = c->b->table;
    if (c->header)
        snprintf(buf, size, "header field %zu", field + 1);
    else if (field < t->n_cols)
        snprintf(buf, size, "column \"%.48s\"", t->names + t->name_offs[field]);
    else
        snprintf(buf, size, "field %zu", field + 1);
    return buf;
}

static size_t count_newlines(const char *s, size_t n)
{
    size_t count = 0;
    const char *end = s + n;
    while (s < end && (s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
        count++;
        s++;
    }
    return count;
}

static int nul_error(const csv_reader *c, size_t field, size_t line)
{
    char name[80];
    return tdm__error(c->b->err, TDM_EPARSE,
                      "%s:%zu: %s: a NUL byte, which a cell cannot hold; remove it (if the file "
                      "is UTF-16 or binary, save it as UTF-8 text)",
                      c->b->table->name, line, field_name(c, field, name, sizeof name));
}

/* Reads a quoted field; c->pos is at its opening quote. */
static int read_quoted(csv_reader *c, size_t field)
{
    char name[80];
    size_t start_line = c->line;
    size_t pos = c->pos + 1;
    for (;;) {
        const char *q = memchr(c->p + pos, '"', c->len - pos);
        if (q == NULL) {
            return tdm__error(c->b->err, TDM_EPARSE,
                              "%s:%zu: %s: unterminated quoted field (it starts on this line); "
                              "close it with a quote (\") and double any quote inside it (\"\")",
                              c->b->table->name, start_line,
                              field_name(c, field, name, sizeof name));
        }
        size_t stop = (size_t)(q - c->p);
        const char *nul = memchr(c->p + pos, '\0', stop - pos);
        if (nul != NULL)
            return nul_error(c, field,
                             c->line + count_newlines(c->p + pos, (size_t)(nul - c->p) - pos));
        c->line += count_newlines(c->p + pos, stop - pos);
        int rc = tdm__table_append_text(c->b, c->p + pos, stop - pos);
        if (rc != 0)
            return rc;
        pos = stop + 1;
        if (pos < c->len && c->p[pos] == '"') {
            /* A doubled quote stands for one quote. Keep the first and skip the second. */
            rc = tdm__table_append_text(c->b, "\"", 1);
            if (rc != 0)
                return rc;
            pos++;
            continue;
        }
        c->pos = pos;
        return 0;
    }
}

/* Reads a plain (unquoted) field; it cannot span lines. */
static int read_plain(csv_reader *c, size_t field)
{
    char name[80];
    size_t start = c->pos, pos = c->pos;
    for (; pos < c->len; pos++) {
        char ch = c->p[pos];
        if (ch == ',' || ch == '\n' || ch == '\r')
            break;
        if (ch == '"') {
            return tdm__error(c->b->err, TDM_EPARSE,
                              "%s:%zu: %s: a quote (\") inside a field that does not start with "
                              "one; enclose the whole field in quotes and double the quote (\"\")",
                              c->b->table->name, c->line, field_name(c, field, name, sizeof name));
        }
        if (ch == '\0')
            return nul_error(c, field, c->line);
    }
    c->pos = pos;
    return tdm__table_append_text(c->b, c->p + start, pos - start);
}

/*
 * Reads one field and the comma or line end after it. *more is 1 when another field of the
 * same record follows.
 */
static int read_field(csv_reader *c, size_t field, int *more)
{
    char name[80];
    int quoted = c->pos < c->len && c->p[c->pos] == '"';
    int rc = quoted ? read_quoted(c, field) : read_plain(c, field);
    if (rc == 0)
        rc = tdm__table_end_cell(c->b);
    if (rc != 0)
        return rc;

    c->field_end = c->pos;
    *more = 0;
    size_t pos = c->pos;
    if (pos == c->len)
        return 0;
    char ch = c->p[pos];
    if (ch == ',') {
        c->pos++;
        *more = 1;
        return 0;
    }
    if (ch == '\n' || (ch == '\r' && (pos + 1 == c->len || c->p[pos + 1] == '\n'))) {
        c->pos += ch == '\r' && pos + 1 < c->len ? 2 : 1;
        c->line++;
        return 0;
    }
    if (ch == '\r') {
        return tdm__error(c->b->err, TDM_EPARSE,
                          "%s:%zu: %s: a carriage return not followed by a line feed; end lines "
                          "with LF or CRLF, or put the field in quotes",
                          c->b->table->name, c->line, field_name(c, field, name, sizeof name));
    }
    TDM_ASSERT(quoted);
    return tdm__error(c->b->err, TDM_EPARSE,
                      "%s:%zu: %s: text after the closing quote of a quoted field; put the whole "
                      "field inside the quotes and double any quote in it (\"\")",
                      c->b->table->name, c->line, field_name(c, field, name, sizeof name));
}

/* Reads one record into the arena; *n_fields receives its field count. */
static int read_record(csv_reader *c, size_t *n_fields)
{
    const tdm_table_limits *lim = &c->b->limits;
    size_t start = c->pos, start_line = c->line;
    size_t n = 0;
    for (int more = 1; more;) {
        if (c->header && n >= lim->max_columns) {
            return tdm__error(c->b->err, TDM_ETOOBIG,
                              "%s:%zu: the header has more than %zu fields (the max_columns "
                              "limit); raise the limit or check that the file is CSV",
                              c->b->table->name, start_line, lim->max_columns);
        }
        int rc = read_field(c, n, &more);
        if (rc != 0)
            return rc;
        n++;
        if (c->field_end - start > lim->max_record_bytes) {
            return tdm__error(c->b->err, TDM_ETOOBIG,
                              "%s:%zu: the record starting here is longer than %zu bytes (the "
                              "max_record_bytes limit); raise the limit or look for a quote "
                              "that closes too late",
                              c->b->table->name, start_line, lim->max_record_bytes);
        }
    }
    *n_fields = n;
    return 0;
}

/* Skips empty lines; a lone CR at the very end of the input counts as one. */
static void skip_blank_lines(csv_reader *c)
{
    while (c->pos < c->len) {
        const char *s = c->p + c->pos;
        size_t left = c->len - c->pos;
        if (s[0] == '\n') {
            c->pos++;
            c->line++;
        } else if (s[0] == '\r' && (left == 1 || s[1] == '\n')) {
            c->pos += left == 1 ? 1 : 2;
            c->line++;
        } else {
            break;
        }
    }
}

/* Turns the header record, read as cells, into the table's columns. */
static int take_header(csv_reader *c, size_t line)
{
    tdm__table_builder *b = c->b;
    size_t n = tdm__table_pending_count(b);
    for (size_t i = 0; i < n; i++) {
        size_t len, col;
        const char *name = tdm__table_pending_cell(b, i, &len);
        if (len == 0) {
            return tdm__error(b->err, TDM_EPARSE,
                              "%s:%zu: header field %zu is empty; give every column a name",
                              b->table->name, line, i + 1);
        }
        if (tdm__table_find_column(b->table, name, len, &col) == 0) {
            return tdm__error(b->err, TDM_EPARSE,
                              "%s:%zu: header field %zu repeats the name \"%.*s\" of field %zu; "
                              "give every column a different name",
                              b->table->name, line, i + 1, (int)(len < 64 ? len : 64), name,
                              col + 1);
        }
        int rc = tdm__table_add_column(b, name, len, &col);
        if (rc != 0)
            return rc;
    }
    tdm__table_clear_pending(b);
    return 0;
}

int tdm__csv_parse(tdm__table_builder *b, const char *data, size_t len)
{
    csv_reader c = {.b = b, .p = data, .len = len, .line = 1, .header = 1};
    size_t n;

    skip_blank_lines(&c);
    if (c.pos == c.len) {
        return tdm__error(b->err, TDM_EPARSE,
                          "%s: no header row (the input is empty); the first line of a CSV table "
                          "must name its columns",
                          b->table->name);
    }
    size_t header_line = c.line;
    b->line = header_line;
    int rc = read_record(&c, &n);
    if (rc == 0)
        rc = take_header(&c, header_line);
    if (rc != 0)
        return rc;

    c.header = 0;
    size_t n_cols = b->table->n_cols;
    for (;;) {
        skip_blank_lines(&c);
        if (c.pos == c.len)
            return 0;
        size_t line = c.line;
        rc = tdm__table_begin_row(b, line);
        if (rc == 0)
            rc = read_record(&c, &n);
        if (rc != 0)
            return rc;
        if (n != n_cols) {
            return tdm__error(b->err, TDM_EPARSE,
                              "%s:%zu: expected %zu fields (as in the header), found %zu; quote "
                              "any field that holds a comma, and give every record one field "
                              "per column",
                              b->table->name, line, n_cols, n);
        }
    }
}
