/*
 * cli.h — shared pieces of the tandem command. The command uses only libtandem's public
 * API (include/tandem/), as curl's tool uses only libcurl's.
 */
#ifndef TDM_CLI_CLI_H
#define TDM_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes: 0 success, 1 the work failed (bad data, I/O), 2 the command line is wrong. */
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

/* Subcommands: each takes argc/argv from its own name on and returns an exit code. */
int cli_eval(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_process(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_step(int argc, char **argv);
int cli_registry(int argc, char **argv);
int cli_fairness(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_simulate(int argc, char **argv);
int cli_webhook(int argc, char **argv);
int cli_report(int argc, char **argv);

/* Prints "tandem: <message>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a whole option value; on failure prints which option was wrong and returns -1. */
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
int cli_parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

#endif /* TDM_CLI_CLI_H */
