/*
 * jsonl.c — reads JSON Lines (one JSON object per line) into a table, with Jansson.
 *
 * NOTES ON THE DESIGN OF THE JSON LINES READER
 *
 * Lines end at LF; a CR before it is JSON white space and needs no care. Each non-blank line
 * is parsed on its own with json_loadb(), so an error names its line, and the line's length
 * is checked against max_record_bytes before Jansson sees it.
 *
 * The columns are the union of the keys, in order of first appearance. A line's values are
 * first gathered into `slots`, one per column known so far (a key seen for the first time
 * becomes a new column there and then), and only then written to the table in column order,
 * because the arena must receive a row's cells in order. A row read before some column
 * existed is narrower than the final table; the builder pads it with missing cells when the
 * table is finished.
 *
 * Values become cell text as follows: strings as they are (one holding U+0000 is refused,
 * since cells are C strings), integers in decimal, reals in the shortest of %.15g, %.16g and
 * %.17g that reads back to the same double, true and false as words, arrays and objects as
 * compact JSON, and null as a missing cell. Duplicate keys in one object are refused rather
 * than letting one silently win.
 */
#include "data/table_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SHOWN 48 /* bytes of a key quoted in a message */

typedef struct jsonl_reader {
    tdm__table_builder *b;
    size_t line;
    json_t **slots; /* one value per column for the line being read */
    size_t slots_cap;
} jsonl_reader;

static int is_blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static const char *type_phrase(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    case JSON_OBJECT:
        break;
    }
    return "an object";
}

/* The shortest %g text (15 to 17 significant digits) that reads back as exactly `v`. */
static void format_real(double v, char *buf, size_t size)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

typedef struct dump_sink {
    tdm__table_builder *b;
    int rc;
} dump_sink;

static int dump_to_arena(const char *buffer, size_t size, void *data)
{
    dump_sink *sink = data;
    sink->rc = tdm__table_append_text(sink->b, buffer, size);
    return sink->rc != 0 ? -1 : 0;
}

/* Writes the cell for value `v` (NULL when the line lacks the key) of column `col`. */
static int write_value(jsonl_reader *r, const json_t *v, size_t col)
{
    tdm__table_builder *b = r->b;
    char buf[64];
    int rc = 0;

    if (v == NULL)
        return tdm__table_missing_cell(b);

    switch (json_typeof(v)) {
    case JSON_NULL:
        return tdm__table_missing_cell(b);
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (memchr(s, '\0', n) != NULL) {
            return tdm__error(b->err, TDM_EPARSE,
                              "%s:%zu: key \"%.*s\": the string holds a NUL character "
                              "(\\u0000), which a cell cannot hold; remove it",
                              b->table->name, r->line, KEY_SHOWN,
                              tdm_table_column_name(b->table, col));
        }
        rc = tdm__table_append_text(b, s, n);
        break;
    }
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        rc = tdm__table_append_text(b, buf, strlen(buf));
        break;
    case JSON_REAL:
        format_real(json_real_value(v), buf, sizeof buf);
        rc = tdm__table_append_text(b, buf, strlen(buf));
        break;
    case JSON_TRUE:
        rc = tdm__table_append_text(b, "true", 4);
        break;
    case JSON_FALSE:
        rc = tdm__table_append_text(b, "false", 5);
        break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        dump_sink sink = {b, 0};
        if (json_dump_callback(v, dump_to_arena, &sink, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
            if (sink.rc != 0)
                return sink.rc;
            /* Jansson fails to dump a tree it has just parsed only when it runs out of memory. */
            return tdm__error(b->err, TDM_ENOMEM,
                              "%s:%zu: key \"%.*s\": out of memory writing the value as JSON "
                              "text; free memory or read a smaller table",
                              b->table->name, r->line, KEY_SHOWN,
                              tdm_table_column_name(b->table, col));
        }
        break;
    }
    }
    return rc != 0 ? rc : tdm__table_end_cell(b);
}

/* Makes room for one slot per column. */
static int reserve_slots(jsonl_reader *r, size_t n)
{
    size_t old = r->slots_cap;
    if (tdm__table_grow(&r->slots, &r->slots_cap, n, sizeof *r->slots) != 0) {
        return tdm__error(r->b->err, TDM_ENOMEM,
                          "%s:%zu: out of memory reading the line; free memory or read a "
                          "smaller table",
                          r->b->table->name, r->line);
    }
    for (size_t i = old; i < r->slots_cap; i++)
        r->slots[i] = NULL;
    return 0;
}

/* Reads the object on one line (s, n), already known not to be blank, into a row. */
static int read_object(jsonl_reader *r, const char *s, size_t n)
{
    tdm__table_builder *b = r->b;
    tdm_table *t = b->table;
    json_error_t jerr;
    json_t *obj =
        json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (obj == NULL) {
        /* Jansson leaves the text empty when it cannot even allocate its lexer. */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0') {
            return tdm__error(b->err, TDM_ENOMEM,
                              "%s:%zu: out of memory parsing the line; free memory or read a "
                              "smaller table",
                              t->name, r->line);
        }
        if (strncmp(jerr.text, "too big integer", 15) == 0) {
            return tdm__error(b->err, TDM_EPARSE,
                              "%s:%zu:%d: an integer too big for 64 bits; write it as a "
                              "string (in quotes) or as a real (with a decimal point)",
                              t->name, r->line, jerr.column);
        }
        return tdm__error(b->err, TDM_EPARSE, "%s:%zu:%d: invalid JSON: %s; fix or remove the line",
                          t->name, r->line, jerr.column, jerr.text);
    }

    int rc = 0;
    if (!json_is_object(obj)) {
        rc = tdm__error(b->err, TDM_EPARSE,
                        "%s:%zu: expected a JSON object, found %s; write one object per line, "
                        "such as {\"text\": \"...\", \"label\": \"...\"}",
                        t->name, r->line, type_phrase(obj));
        goto done;
    }

    if ((rc = reserve_slots(r, t->n_cols)) != 0)
        goto done;
    for (size_t i = 0; i < t->n_cols; i++)
        r->slots[i] = NULL;

    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        size_t klen = strlen(key), col;
        if (klen == 0) {
            rc = tdm__error(b->err, TDM_EPARSE,
                            "%s:%zu: an empty key (\"\"); give every field of the object a name",
                            t->name, r->line);
            goto done;
        }
        if (tdm__table_find_column(t, key, klen, &col) != 0) {
            if ((rc = tdm__table_add_column(b, key, klen, &col)) != 0 ||
                (rc = reserve_slots(r, t->n_cols)) != 0)
                goto done;
        }
        r->slots[col] = value;
    }

    if ((rc = tdm__table_begin_row(b, r->line)) != 0)
        goto done;
    for (size_t col = 0; col < t->n_cols && rc == 0; col++)
        rc = write_value(r, r->slots[col], col);

done:
    json_decref(obj);
    return rc;
}

int tdm__jsonl_parse(tdm__table_builder *b, const char *data, size_t len)
{
    jsonl_reader r = {.b = b};
    int rc = 0;
    size_t pos = 0;
    while (pos < len && rc == 0) {
        const char *s = data + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        r.line++;
        b->line = r.line;
        if (is_blank_line(s, n))
            continue;
        if (n > b->limits.max_record_bytes) {
            rc = tdm__error(b->err, TDM_ETOOBIG,
                            "%s:%zu: the line is %zu bytes, longer than the max_record_bytes "
                            "limit of %zu; raise the limit or shorten the record",
                            b->table->name, r.line, n, b->limits.max_record_bytes);
            break;
        }
        rc = read_object(&r, s, n);
    }
    free(r.slots);
    return rc;
}
