/*
 * export.c — `tandem export decisions` and `tandem audit verify`: read-only views of a
 * database or a running server.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"

static const char export_usage[] =
    "usage: tandem export decisions --format csv|jsonl [--process NAME]\n"
    "                               (--db PATH | --url URL) [--output FILE]\n"
    "\n"
    "Writes every decision, oldest first, one row each: decision id, item id, process,\n"
    "step, value, confidence, by, kind (model or person), autonomous, created_at.\n"
    "\n"
    "options:\n"
    "  --format csv|jsonl    CSV with a header row, or JSON Lines\n"
    "  --process NAME        only this process's decisions (default: all)\n" CLI_TARGET_HELP
    "  --output FILE         write to FILE (replaced only once the export is complete)\n"
    "                        instead of standard output\n"
    "  -h, --help            show this help\n";

static const char audit_usage[] =
    "usage: tandem audit verify (--db PATH | --url URL)\n"
    "\n"
    "Recomputes the audit trail's hash chain from its first entry and reports the first\n"
    "entry that does not match its hash or its predecessor. Prints \"audit trail ok: N\n"
    "entries\" (exit 0) or \"audit trail broken at entry SEQ: REASON\" (exit 1).\n"
    "\n"
    "options:\n" CLI_TARGET_HELP "  -h, --help            show this help\n";

/* Parses the options every read-only command shares; returns 0, -1 for --help, or 2. */
static int parse_target(int argc, char **argv, const char *cmd, const char *usage, cli_target *t,
                        const char **format, const char **process, const char **output)
{
    enum { O_DB = 256, O_URL, O_FORMAT, O_PROCESS, O_OUTPUT };
    static const struct option export_opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"format", required_argument, NULL, O_FORMAT},
        {"process", required_argument, NULL, O_PROCESS},
        {"output", required_argument, NULL, O_OUTPUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const struct option audit_opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", format != NULL ? export_opts : audit_opts, NULL)) !=
           -1) {
        switch (c) {
        case O_DB:
            t->db = optarg;
            break;
        case O_URL:
            t->url = optarg;
            break;
        case O_FORMAT:
            *format = optarg;
            break;
        case O_PROCESS:
            *process = optarg;
            break;
        case O_OUTPUT:
            *output = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        case ':':
            cli_error("%s: option %s needs a value (see tandem %s --help)", cmd, argv[optind - 1],
                      cmd);
            return CLI_EXIT_USAGE;
        default:
            cli_error("%s: unknown option %s (see tandem %s --help)", cmd, argv[optind - 1], cmd);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("%s: unexpected argument \"%s\" (see tandem %s --help)", cmd, argv[optind], cmd);
        return CLI_EXIT_USAGE;
    }
    return cli_target_check(t, cmd);
}

/* Picks the subcommand: returns 0 when argv[1] is `want`, else prints usage or an error. */
static int subcommand(int argc, char **argv, const char *cmd, const char *want, const char *usage)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return -1;
    }
    if (strcmp(argv[1], want) != 0) {
        cli_error("%s: unknown subcommand \"%s\" (expected %s)", cmd, argv[1], want);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_export(int argc, char **argv)
{
    int rc = subcommand(argc, argv, "export", "decisions", export_usage);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    cli_target t = {0};
    const char *format = "", *process = NULL, *output = NULL;
    rc = parse_target(argc - 1, argv + 1, "export decisions", export_usage, &t, &format, &process,
                      &output);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    tdm_export_format f;
    if (strcmp(format, "csv") == 0) {
        f = TDM_EXPORT_CSV;
    } else if (strcmp(format, "jsonl") == 0) {
        f = TDM_EXPORT_JSONL;
    } else {
        cli_error("export decisions: --format csv or --format jsonl is required");
        return CLI_EXIT_USAGE;
    }

    cli_client *cl;
    if (cli_client_open(&t, 1, &cl) != 0)
        return CLI_EXIT_FAIL;
    /* The export goes to a temporary file beside FILE, renamed over it once complete. */
    char *tmp = NULL;
    FILE *out = stdout;
    if (output != NULL && strcmp(output, "-") != 0) {
        int fd = -1;
        if (asprintf(&tmp, "%s.XXXXXX", output) < 0 || (fd = mkstemp(tmp)) < 0 ||
            (out = fdopen(fd, "w")) == NULL) {
            cli_error("%s: cannot write: %s", output, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            free(tmp);
            cli_client_close(cl);
            return CLI_EXIT_FAIL;
        }
        /* mkstemp makes the file private; give it the mode a new file would get. */
        mode_t mask = umask(0);
        umask(mask);
        (void)fchmod(fd, 0666 & ~mask);
    }
    tdm_error err = {0};
    rc = cli_client_export(cl, process, f, out, &err);
    cli_client_close(cl);
    if (rc != 0)
        cli_error("%s", err.message);
    if (out != stdout) {
        if (fclose(out) != 0 && rc == 0) {
            cli_error("%s: cannot write: %s", output, strerror(errno));
            rc = -1;
        }
        if (rc == 0 && rename(tmp, output) != 0) {
            cli_error("%s: cannot write: %s", output, strerror(errno));
            rc = -1;
        }
        if (rc != 0)
            unlink(tmp);
        free(tmp);
    } else if (fflush(stdout) != 0 && rc == 0) {
        cli_error("cannot write to standard output: %s", strerror(errno));
        rc = -1;
    }
    return rc != 0 ? CLI_EXIT_FAIL : 0;
}

int cli_audit(int argc, char **argv)
{
    int rc = subcommand(argc, argv, "audit", "verify", audit_usage);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    cli_target t = {0};
    rc = parse_target(argc - 1, argv + 1, "audit verify", audit_usage, &t, NULL, NULL, NULL);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    cli_client *cl;
    if (cli_client_open(&t, 1, &cl) != 0)
        return CLI_EXIT_FAIL;
    tdm_audit_check check;
    tdm_error err = {0};
    rc = cli_client_audit_verify(cl, &check, &err);
    cli_client_close(cl);
    if (rc != 0) {
        cli_error("%s", err.message);
        return CLI_EXIT_FAIL;
    }
    if (check.ok) {
        printf("audit trail ok: %llu entries\n", (unsigned long long)check.entries);
        return 0;
    }
    printf("audit trail broken at entry %llu: %s\n", (unsigned long long)check.first_bad,
           check.reason);
    return CLI_EXIT_FAIL;
}
