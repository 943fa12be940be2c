/*
 * process.c — `tandem process validate` and `tandem process apply`: check process files,
 * and create or update their processes on a database or a running server.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "tandem/process.h"

static const char process_usage[] =
    "usage: tandem process validate FILE...\n"
    "       tandem process apply FILE... (--db PATH | --url URL) [--actor NAME]\n"
    "\n"
    "validate  parses and checks each process file (docs/process-file.md) and prints\n"
    "          \"FILE: ok (process NAME, N steps)\", or what is wrong and where\n"
    "apply     validates every file, then creates or updates each one's process, under the\n"
    "          name its `process` key gives; steps whose inputs, labels and model are\n"
    "          unchanged keep their trained model\n"
    "\n"
    "options:\n" CLI_TARGET_HELP CLI_ACTOR_HELP "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 when every file is fine (and applied), 1 otherwise.\n";

/* Validates one file; prints the verdict. Returns the process (yours) or NULL. */
static tdm_process *validate(const char *path, int quiet_ok)
{
    tdm_process *p = NULL;
    tdm_error err = {0};
    if (tdm_process_load(path, &p, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        return NULL;
    }
    if (!quiet_ok) {
        size_t n = tdm_process_step_count(p);
        printf("%s: ok (process %s, %zu step%s)\n", path, tdm_process_name(p), n,
               n == 1 ? "" : "s");
    }
    return p;
}

static int apply(cli_client *c, const char *path, const tdm_process *p)
{
    char *yaml = NULL, *json = NULL;
    size_t len;
    tdm_error err = {0};
    if (cli_read_file(path, (size_t)16 << 20, &yaml, &len) != 0)
        return -1;
    int rc = cli_client_put_process(c, tdm_process_name(p), yaml, len, &json, &err);
    free(yaml);
    if (rc != 0) {
        cli_error("%s: %s", path, err.message);
        return -1;
    }
    json_t *o = json_loads(json, 0, NULL);
    json_t *version = json_object_get(o, "version");
    if (json_is_integer(version))
        printf("%s: applied (process %s, version %lld)\n", path, tdm_process_name(p),
               (long long)json_integer_value(version));
    else
        printf("%s: applied (process %s)\n", path, tdm_process_name(p));
    json_decref(o);
    free(json);
    return 0;
}

int cli_process(int argc, char **argv)
{
    enum { O_DB = 256, O_URL, O_ACTOR };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"actor", required_argument, NULL, O_ACTOR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        fputs(process_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(process_usage, stdout);
        return 0;
    }
    int is_apply = strcmp(sub, "apply") == 0;
    if (!is_apply && strcmp(sub, "validate") != 0) {
        cli_error("process: unknown subcommand \"%s\" (expected validate or apply)", sub);
        return CLI_EXIT_USAGE;
    }
    cli_target t = {0};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DB:
        case O_URL:
        case O_ACTOR:
            if (!is_apply) {
                cli_error("process validate: --db, --url and --actor go with apply only "
                          "(validate needs no database)");
                return CLI_EXIT_USAGE;
            }
            if (c == O_DB)
                t.db = optarg;
            else if (c == O_URL)
                t.url = optarg;
            else
                t.actor = optarg;
            break;
        case 'h':
            fputs(process_usage, stdout);
            return 0;
        case ':':
            cli_error("process %s: option %s needs a value (see tandem process --help)", sub,
                      argv[optind]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("process %s: unknown option %s (see tandem process --help)", sub,
                      argv[optind]);
            return CLI_EXIT_USAGE;
        }
    }
    char **files = argv + 1 + optind;
    int n_files = argc - 1 - optind;
    if (n_files == 0) {
        cli_error("process %s: name at least one FILE (see tandem process --help)", sub);
        return CLI_EXIT_USAGE;
    }
    if (is_apply && cli_target_check(&t, "process apply") != 0)
        return CLI_EXIT_USAGE;

    int failed = 0;
    tdm_process **procs = calloc((size_t)n_files, sizeof *procs);
    if (procs == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int i = 0; i < n_files; i++)
        if ((procs[i] = validate(files[i], is_apply)) == NULL)
            failed = 1;
    if (is_apply && !failed) {
        cli_client *cl;
        if (cli_client_open(&t, 0, &cl) != 0) {
            failed = 1;
        } else {
            for (int i = 0; i < n_files && !failed; i++)
                if (apply(cl, files[i], procs[i]) != 0)
                    failed = 1;
            cli_client_close(cl);
        }
    }
    for (int i = 0; i < n_files; i++)
        tdm_process_free(procs[i]);
    free(procs);
    return failed ? CLI_EXIT_FAIL : 0;
}
