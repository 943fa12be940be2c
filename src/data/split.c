/*
 * split.c — new tables from rows of another: a selection, and a seeded, stratified
 * train/test split.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/table_int.h"
#include "tandem/learn.h"
#include "util/util.h"

int tdm_table_select(const tdm_table *t, const size_t *rows, size_t n, tdm_table **out)
{
    if (t == NULL || out == NULL || (n > 0 && rows == NULL))
        return TDM_EINVAL;
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (rows[i] >= t->n_rows)
            return TDM_EINVAL;

    /* The builder is the one way tables are made, so a selection obeys the same layout
     * invariants as a parsed table. The limits are the source's own: it already fit. */
    tdm_table_limits limits;
    tdm_table_limits_init(&limits);
    if (limits.max_rows < n)
        limits.max_rows = n;
    tdm__table_builder b;
    int rc = tdm__table_builder_init(&b, t->name, &limits, NULL);
    for (size_t c = 0; rc == 0 && c < t->n_cols; c++) {
        const char *name = tdm_table_column_name(t, c);
        size_t col;
        rc = tdm__table_add_column(&b, name, strlen(name), &col);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = tdm__table_begin_row(&b, t->lines[rows[i]]);
        for (size_t c = 0; rc == 0 && c < t->n_cols; c++) {
            size_t len;
            const char *cell = tdm_table_cell(t, rows[i], c, &len);
            if (cell == NULL) {
                rc = tdm__table_missing_cell(&b);
            } else {
                rc = tdm__table_append_text(&b, cell, len);
                if (rc == 0)
                    rc = tdm__table_end_cell(&b);
            }
        }
    }
    if (rc == 0)
        rc = tdm__table_builder_finish(&b, out);
    if (rc != 0) {
        tdm__table_builder_release(&b);
        return rc == TDM_ETOOBIG ? TDM_ENOMEM : rc;
    }
    return 0;
}

typedef struct labelled_row {
    const char *label; /* NULL for an unlabelled row */
    size_t row;
} labelled_row;

static int by_label_then_row(const void *a, const void *b)
{
    const labelled_row *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    if (c != 0)
        return c;
    return (x->row > y->row) - (x->row < y->row);
}

static int by_row(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int tdm_table_split(const tdm_table *t, const char *label_column, double fraction, uint64_t seed,
                    tdm_table **train, tdm_table **test, tdm_error *err)
{
    if (t == NULL || label_column == NULL || train == NULL || test == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_table_split: missing argument");
    *train = NULL;
    *test = NULL;
    if (!(fraction > 0 && fraction < 1))
        return tdm__error(err, TDM_EINVAL, "test fraction %g must be between 0 and 1", fraction);
    size_t col;
    if (tdm_table_column_index(t, label_column, &col) != 0)
        return tdm__error(err, TDM_ENOTFOUND, "%s: no column named \"%s\" for the label",
                          tdm_table_name(t), label_column);

    size_t n = tdm_table_row_count(t);
    labelled_row *lr = malloc((n ? n : 1) * sizeof *lr);
    size_t *train_rows = malloc((n ? n : 1) * sizeof *train_rows);
    size_t *test_rows = malloc((n ? n : 1) * sizeof *test_rows);
    size_t n_train = 0, n_test = 0, n_labelled = 0;
    int rc = TDM_ENOMEM;
    if (lr == NULL || train_rows == NULL || test_rows == NULL)
        goto out;
    for (size_t r = 0; r < n; r++) {
        size_t len;
        const char *label = tdm_table_cell(t, r, col, &len);
        if (label == NULL || len == 0)
            train_rows[n_train++] = r;
        else
            lr[n_labelled++] = (labelled_row){label, r};
    }
    /* Sorting by label then row makes the groups independent of input order quirks; the
     * seeded shuffle inside each group then decides which rows are held out. */
    qsort(lr, n_labelled, sizeof *lr, by_label_then_row);
    tdm__rng rng;
    tdm__rng_seed(&rng, seed);
    for (size_t i = 0; i < n_labelled;) {
        size_t j = i;
        while (j < n_labelled && strcmp(lr[j].label, lr[i].label) == 0)
            j++;
        size_t count = j - i;
        for (size_t k = count; k > 1; k--) {
            size_t pick = (size_t)tdm__rng_below(&rng, k);
            labelled_row tmp = lr[i + k - 1];
            lr[i + k - 1] = lr[i + pick];
            lr[i + pick] = tmp;
        }
        size_t hold = (size_t)llround(fraction * (double)count);
        if (hold == 0 && count >= 2)
            hold = 1;
        if (hold >= count && count >= 2)
            hold = count - 1;
        for (size_t k = 0; k < count; k++) {
            if (k < hold)
                test_rows[n_test++] = lr[i + k].row;
            else
                train_rows[n_train++] = lr[i + k].row;
        }
        i = j;
    }
    qsort(train_rows, n_train, sizeof *train_rows, by_row);
    qsort(test_rows, n_test, sizeof *test_rows, by_row);
    rc = tdm_table_select(t, train_rows, n_train, train);
    if (rc == 0)
        rc = tdm_table_select(t, test_rows, n_test, test);
    if (rc != 0) {
        tdm_table_free(*train);
        *train = NULL;
    }
out:
    free(lr);
    free(train_rows);
    free(test_rows);
    return rc == 0 ? 0 : tdm__error_code(err, rc);
}
