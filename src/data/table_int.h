/*
 * table_int.h — the inside of a tdm_table, shared by the table core (table.c) and the two
 * parsers that fill it (csv.c and jsonl.c). Nothing here is public.
 *
 * A parser never touches the arrays of a table directly: it drives a tdm__table_builder,
 * which enforces the limits, grows the arrays and writes the messages for those failures.
 * The parser only writes messages about the syntax of its own format.
 */
#ifndef TDM_DATA_TABLE_INT_H
#define TDM_DATA_TABLE_INT_H

#include <stddef.h>

#include "tandem/learn.h"
#include "util/util.h"

/*
 * The cells of a table, row after row, live in one arena, `text`. Cell i (i = row * n_cols +
 * col) spans text[bounds[i] .. bounds[i + 1]): its bytes followed by a NUL. A present cell
 * therefore spans at least one byte and a missing cell spans none, so `bounds` is all it takes
 * to tell them apart. Column names live in a second, small arena with a hash index.
 */
struct tdm_table {
    char *name; /* the file or buffer name used in messages; NUL-terminated */
    size_t n_rows;
    size_t n_cols;

    char *text; /* the cell arena */
    size_t text_len;
    size_t text_cap;
    size_t *bounds; /* n_bounds = n_rows * n_cols + 1 entries once the table is built */
    size_t n_bounds;
    size_t bounds_cap;
    size_t *lines; /* the 1-based line on which each row starts */
    size_t lines_cap;

    char *names; /* column names, each followed by a NUL */
    size_t names_len;
    size_t names_cap;
    size_t *name_offs; /* where each column's name starts in `names` */
    size_t name_offs_cap;
    size_t *index;     /* open addressing on names: col + 1 per slot, 0 when empty */
    size_t index_mask; /* slots - 1; the slot count is a power of two */
};

/* A stretch of rows that were written with the same number of columns (JSON Lines). */
typedef struct tdm__table_run {
    size_t first_row;
    size_t width;
} tdm__table_run;

typedef struct tdm__table_builder {
    tdm_table *table;
    tdm_table_limits limits; /* with every 0 field replaced by its default */
    tdm_error *err;
    size_t line;          /* the line being read, named in out-of-memory messages */
    size_t cells_written; /* cells the rows begun so far must hold, to check the parsers */
    tdm__table_run *runs;
    size_t n_runs;
    size_t runs_cap;
} tdm__table_builder;

/*
 * Allocation for the whole data module. Under TDM_DEBUG, a test may set
 * tdm__table_alloc_fail_countdown to n > 0 so that the n-th allocation from then on fails
 * (once), to prove that every failure path frees what it made.
 */
void *tdm__table_malloc(size_t size);
void *tdm__table_realloc(void *ptr, size_t size);
#ifdef TDM_DEBUG
extern size_t tdm__table_alloc_fail_countdown;
#endif

/*
 * Grows an array geometrically until it holds at least `need` elements of `elem` bytes.
 * `array` is the address of the array's pointer (a `T **` for any T), `cap` of its capacity
 * in elements. Returns 0 or TDM_ENOMEM (the array is unchanged then, never half-grown).
 */
int tdm__table_grow(void *array, size_t *cap, size_t need, size_t elem);

/* Sets up `b` with a new, empty table named `name`. Returns 0 or TDM_ENOMEM (message set). */
int tdm__table_builder_init(tdm__table_builder *b, const char *name, const tdm_table_limits *limits,
                            tdm_error *err);

/* Frees the table under construction, if it was not handed out, and the builder's state. */
void tdm__table_builder_release(tdm__table_builder *b);

/*
 * Lays the rows out densely (rows written before a column was added gain missing cells),
 * trims the arrays and hands the table to *out. The builder no longer owns it. Returns 0 or
 * TDM_ENOMEM.
 */
int tdm__table_builder_finish(tdm__table_builder *b, tdm_table **out);

/* Finds a column by name (`len` bytes, no NUL needed). Returns 0 and *col, or TDM_ENOTFOUND. */
int tdm__table_find_column(const tdm_table *table, const char *name, size_t len, size_t *col);

/*
 * Adds a column whose name (non-empty, not yet used, without NUL bytes) is `len` bytes at
 * `name`. Returns 0 and its index in *col, TDM_ETOOBIG past max_columns or TDM_ENOMEM, with
 * the message naming line `b->line`.
 */
int tdm__table_add_column(tdm__table_builder *b, const char *name, size_t len, size_t *col);

/*
 * Starts a row that begins on line `line`. The parser then writes exactly as many cells as
 * the table has columns at this point. Returns 0, TDM_ETOOBIG past max_rows, or TDM_ENOMEM.
 */
int tdm__table_begin_row(tdm__table_builder *b, size_t line);

/* Appends bytes to the cell being written. Returns 0 or TDM_ENOMEM. */
int tdm__table_append_text(tdm__table_builder *b, const char *data, size_t len);

/* Ends the cell being written (possibly empty). Returns 0 or TDM_ENOMEM. */
int tdm__table_end_cell(tdm__table_builder *b);

/* Writes a missing cell. Returns 0 or TDM_ENOMEM. */
int tdm__table_missing_cell(tdm__table_builder *b);

/*
 * The CSV header is read as an ordinary record of cells, before any row has begun, so that
 * quoting works the same for names and values. tdm__table_pending_count() and
 * tdm__table_pending_cell() read those cells back; tdm__table_clear_pending() then empties the
 * arena for the rows.
 */
size_t tdm__table_pending_count(const tdm__table_builder *b);
const char *tdm__table_pending_cell(const tdm__table_builder *b, size_t i, size_t *len);
void tdm__table_clear_pending(tdm__table_builder *b);

/* The parsers. `data` excludes any byte-order mark. Return 0 or a TDM_E* code, message set. */
int tdm__csv_parse(tdm__table_builder *b, const char *data, size_t len);
int tdm__jsonl_parse(tdm__table_builder *b, const char *data, size_t len);

#endif /* TDM_DATA_TABLE_INT_H */
