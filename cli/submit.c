/*
 * submit.c — `tandem submit`: sends items from a CSV or JSON Lines file to a process, in
 * batches, and prints one result line per item.
 *
 * CSV rows become JSON objects: a column whose every non-empty value is a JSON number is
 * sent as numbers, every other column as strings (the "id" column always as a string, as
 * the engine wants ids), and empty cells are left out. JSON Lines are sent as they are.
 * Each batch is stored all or nothing; when one is refused the command stops there and
 * says which lines it held and that the batches before it were stored.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"

static const char submit_usage[] =
    "usage: tandem submit --process NAME FILE (--db PATH | --url URL) [--batch N]\n"
    "                     [--actor NAME]\n"
    "\n"
    "Sends the items in FILE to process NAME, which routes each one: decided by the AI\n"
    "within its guarantee, or queued for a person. Prints one JSON line per item, in\n"
    "input order: {\"id\", \"status\": \"decided\", \"step\", \"decision\"} or {\"id\",\n"
    "\"status\": \"queued\", \"step\", \"task_id\", \"proposal\"}.\n"
    "\n"
    "FILE is CSV with a header row (.csv) or JSON Lines, one object per line (.jsonl,\n"
    ".ndjson, .json); other names are told apart by their first byte; \"-\" reads standard\n"
    "input. CSV columns whose every value is a number are sent as numbers, the others as\n"
    "strings; empty cells are left out; an \"id\" column names the items.\n"
    "\n"
    "options:\n"
    "  --process NAME        the process that takes the items\n" CLI_TARGET_HELP
    "  --batch N             items per request, 1 to 100000 (default 1000); each batch is\n"
    "                        stored all or nothing\n" CLI_ACTOR_HELP
    "  -h, --help            show this help\n";

typedef struct submit_state {
    cli_client *client;
    const char *process;
    const char *path;
    size_t batches_done;
} submit_state;

/* Sends one batch of JSON Lines and prints its results. Returns 0 or CLI_EXIT_FAIL. */
static int send_batch(submit_state *st, const char *body, size_t len, size_t first_line,
                      size_t last_line)
{
    char *json = NULL;
    size_t json_len = 0;
    tdm_error err = {0};
    if (cli_client_submit(st->client, st->process, body, len, &json, &json_len, &err) != 0) {
        char lines[64];
        if (first_line == last_line)
            snprintf(lines, sizeof lines, "line %zu", first_line);
        else
            snprintf(lines, sizeof lines, "lines %zu-%zu", first_line, last_line);
        cli_error("%s, %s: %s (this batch was not stored%s)", st->path, lines, err.message,
                  st->batches_done ? "; the batches before it were" : "");
        return CLI_EXIT_FAIL;
    }
    fwrite(json, 1, json_len, stdout);
    if (json_len > 0 && json[json_len - 1] != '\n')
        putchar('\n');
    free(json);
    st->batches_done++;
    if (fflush(stdout) != 0) {
        cli_error("cannot write the results to standard output");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* ---- JSON Lines: sent as they are, in slices of `batch` non-blank lines ------------------ */

static int is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

static int submit_jsonl(submit_state *st, const char *data, size_t len, size_t batch)
{
    size_t pos = 0, line = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    size_t start = pos, start_line = 0, items = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - data) : len;
        line++;
        if (!is_blank(data + pos, end - pos)) {
            if (items == 0) {
                start = pos;
                start_line = line;
            }
            items++;
        }
        pos = nl != NULL ? end + 1 : len;
        if (items == batch) {
            int rc = send_batch(st, data + start, pos - start, start_line, line);
            if (rc != 0)
                return rc;
            items = 0;
        }
    }
    if (items > 0)
        return send_batch(st, data + start, len - start, start_line, line);
    if (st->batches_done == 0) {
        cli_error("%s: no items (one JSON object per line)", st->path);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* ---- CSV: rows to JSON objects --------------------------------------------------------------- */

/* Writes `s` as a JSON string; -1 when it is not valid UTF-8. */
static int put_string(FILE *out, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j == NULL)
        return -1;
    char *text = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    if (text == NULL)
        return -1;
    fputs(text, out);
    free(text);
    return 0;
}

static int submit_table(submit_state *st, const tdm_table *t, size_t batch)
{
    size_t cols = tdm_table_column_count(t), rows = tdm_table_row_count(t);
    unsigned char *numeric = calloc(cols ? cols : 1, 1);
    if (numeric == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (size_t c = 0; c < cols; c++)
        numeric[c] =
            strcmp(tdm_table_column_name(t, c), "id") != 0 && tdm_table_column_is_json_number(t, c);
    int rc = 0;
    for (size_t first = 0; first < rows && rc == 0; first += batch) {
        size_t last = first + batch < rows ? first + batch : rows;
        char *body = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&body, &len);
        if (m == NULL) {
            cli_error("out of memory");
            rc = CLI_EXIT_FAIL;
            break;
        }
        for (size_t r = first; r < last && rc == 0; r++) {
            int fields = 0;
            fputc('{', m);
            for (size_t c = 0; c < cols; c++) {
                size_t n;
                const char *v = tdm_table_cell(t, r, c, &n);
                if (v == NULL || n == 0)
                    continue;
                if (fields++ > 0)
                    fputs(", ", m);
                const char *name = tdm_table_column_name(t, c);
                int bad = put_string(m, name, strlen(name)) != 0;
                fputs(": ", m);
                if (numeric[c])
                    fwrite(v, 1, n, m);
                else if (!bad)
                    bad = put_string(m, v, n) != 0;
                if (bad) {
                    cli_error("%s:%zu: column \"%s\" is not valid UTF-8 (save the file as "
                              "UTF-8)",
                              st->path, tdm_table_row_line(t, r), name);
                    rc = CLI_EXIT_FAIL;
                    break;
                }
            }
            fputs("}\n", m);
        }
        if (fclose(m) != 0 && rc == 0) {
            cli_error("out of memory");
            rc = CLI_EXIT_FAIL;
        }
        if (rc == 0)
            rc = send_batch(st, body, len, tdm_table_row_line(t, first),
                            tdm_table_row_line(t, last - 1));
        free(body);
    }
    free(numeric);
    if (rc == 0 && rows == 0) {
        cli_error("%s: no items (a header row and one row per item)", st->path);
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}

int cli_submit(int argc, char **argv)
{
    enum { O_PROCESS = 256, O_DB, O_URL, O_ACTOR, O_BATCH };
    static const struct option longopts[] = {
        {"process", required_argument, NULL, O_PROCESS},
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"actor", required_argument, NULL, O_ACTOR},
        {"batch", required_argument, NULL, O_BATCH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_target t = {0};
    const char *process = NULL;
    uint64_t batch = 1000;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_PROCESS:
            process = optarg;
            break;
        case O_DB:
            t.db = optarg;
            break;
        case O_URL:
            t.url = optarg;
            break;
        case O_ACTOR:
            t.actor = optarg;
            break;
        case O_BATCH:
            if (cli_parse_u64("--batch", optarg, 1, 100000, &batch))
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            fputs(submit_usage, stdout);
            return 0;
        case ':':
            cli_error("submit: option %s needs a value (see tandem submit --help)",
                      argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("submit: unknown option %s (see tandem submit --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || process == NULL) {
        cli_error("submit: give --process NAME and one FILE (see tandem submit --help)");
        return CLI_EXIT_USAGE;
    }
    if (cli_target_check(&t, "submit") != 0)
        return CLI_EXIT_USAGE;
    const char *path = argv[optind];

    char *data = NULL;
    size_t len = 0;
    tdm_table *table = NULL;
    tdm_error err = {0};
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "standard input" : path;
    if (cli_read_file(path, (size_t)1 << 30, &data, &len) != 0)
        return CLI_EXIT_FAIL;
    if (cli_guess_format(is_stdin ? "" : path, data, len) == TDM_FORMAT_CSV &&
        tdm_table_read_buffer(data, len, TDM_FORMAT_CSV, name, NULL, &table, &err) != 0) {
        cli_error("%s", err.message);
        free(data);
        return CLI_EXIT_FAIL;
    }

    submit_state st = {NULL, process, name, 0};
    int rc = cli_client_open(&t, 0, &st.client);
    if (rc == 0) {
        rc = table != NULL ? submit_table(&st, table, (size_t)batch)
                           : submit_jsonl(&st, data, len, (size_t)batch);
        cli_client_close(st.client);
    }
    tdm_table_free(table);
    free(data);
    return rc;
}
