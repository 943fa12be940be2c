/*
 * client.h — how the commands that work on an engine reach it: by opening the database
 * themselves (--db PATH) or through a running server (--url http://HOST:PORT, JSON over
 * HTTP with libcurl). Both paths call the same engine functions, so a command prints the
 * same answer either way.
 */
#ifndef TDM_CLI_CLIENT_H
#define TDM_CLI_CLIENT_H

#include <stdio.h>

#include "tandem/engine.h"

/* Where a command sends its work: exactly one of db and url. */
typedef struct cli_target {
    const char *db;    /* --db PATH */
    const char *url;   /* --url http://HOST:PORT */
    const char *actor; /* --actor NAME (recorded on the audit trail), or NULL */
} cli_target;

/* The help text lines for --db, --url and --actor, shared by every command's --help. */
#define CLI_TARGET_HELP                                                                            \
    "  --db PATH             work on this database file directly\n"                                \
    "  --url URL             work through a running server (tandem serve), like\n"                 \
    "                        http://127.0.0.1:8080, with the token in the environment\n"           \
    "                        variable TANDEM_TOKEN\n"

#define CLI_ACTOR_HELP                                                                             \
    "  --actor NAME          with --db: who acts, for the audit trail (default: \"api\");\n"       \
    "                        through --url the token's name is who acts\n"

/*
 * Checks that exactly one of --db and --url was given and that the URL is http:// or
 * https://. Prints what is wrong, naming `cmd`; returns 0 or CLI_EXIT_USAGE.
 */
int cli_target_check(const cli_target *t, const char *cmd);

typedef struct cli_client cli_client;

/*
 * Opens the database (read-only when `read_only`) or prepares the HTTP connection. On
 * failure prints the reason and returns CLI_EXIT_FAIL; on success *out is yours to close.
 */
int cli_client_open(const cli_target *t, int read_only, cli_client **out);
void cli_client_close(cli_client *c);

/* The base URL or the database path, for messages. */
const char *cli_client_where(const cli_client *c);

/*
 * The calls below return 0 and set *json to the answer (malloc'd, NUL-terminated; free()
 * it), or a negative TDM_E* code with `err` filled: the engine's message, the server's
 * message, or why the server could not be reached. Nothing is printed.
 */
int cli_client_put_process(cli_client *c, const char *name, const char *yaml, size_t len,
                           char **json, tdm_error *err);
int cli_client_train(cli_client *c, const char *process, const char *data, size_t len,
                     tdm_table_format format, char **json, tdm_error *err);
/* `body` is JSON Lines; the answer is JSON Lines, *json_len bytes. */
int cli_client_submit(cli_client *c, const char *process, const char *body, size_t len, char **json,
                      size_t *json_len, tdm_error *err);
/* Writes the decisions to `out` as they come. */
int cli_client_export(cli_client *c, const char *process, tdm_export_format format, FILE *out,
                      tdm_error *err);
int cli_client_audit_verify(cli_client *c, tdm_audit_check *check, tdm_error *err);
/* The kill switch and the registry: the answers of tdm_engine_pause_step and
 * tdm_engine_registry. */
int cli_client_pause_step(cli_client *c, const char *process, const char *step, int pause,
                          const char *reason, char **json, tdm_error *err);
int cli_client_registry(cli_client *c, char **json, tdm_error *err);
/* Tokens (admin): the answers are those of engine.h's tdm_engine_token_* functions. */
int cli_client_token_create(cli_client *c, const char *name, tdm_role role,
                            const char *const *scope, size_t n_scope, char **json, tdm_error *err);
int cli_client_token_list(cli_client *c, char **json, tdm_error *err);
int cli_client_token_revoke(cli_client *c, const char *id, char **json, tdm_error *err);
/* The fairness report (engine.h's tdm_engine_fairness; GET /v1/processes/NAME/fairness).
 * `step` may be NULL; `bins` holds n_bins edges (none: group by value). */
int cli_client_fairness(cli_client *c, const char *process, const char *step, const char *group,
                        const double *bins, size_t n_bins, char **json, tdm_error *err);

/*
 * Reads a whole file ("-" is standard input) of at most `max` bytes into a malloc'd,
 * NUL-terminated buffer. Prints the reason and returns -1 on failure.
 */
int cli_read_file(const char *path, size_t max, char **data, size_t *len);

/*
 * The format of a data file: by extension (.csv; .jsonl, .ndjson, .json), else by its first
 * non-blank byte ('{' is JSON Lines, anything else CSV).
 */
tdm_table_format cli_guess_format(const char *path, const char *data, size_t len);

/*
 * For commands that make their own calls (tandem webhook): the engine behind --db (NULL
 * through --url); an engine's answer moved into malloc'd memory (the text is freed with
 * tdm_free, NULL counts as empty); a path segment or query value escaped for --url (free()
 * it; NULL when out of memory or with --db); and one JSON call through the server: METHOD
 * and PATH (its parts escaped), an optional JSON body, the answer as the calls above.
 */
tdm_engine *cli_client_engine(cli_client *c);
int cli_client_take(char *text, char **json, tdm_error *err);
char *cli_client_escape(cli_client *c, const char *s);
int cli_client_request(cli_client *c, const char *method, const char *path, const char *body,
                       char **json, tdm_error *err);

#endif /* TDM_CLI_CLIENT_H */
