/*
 * train.c — `tandem train`: initial training of a process's AI and hybrid steps from
 * labelled history, on a database or through a running server.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"

static const char train_usage[] =
    "usage: tandem train --process NAME FILE (--db PATH | --url URL) [--json] [--actor NAME]\n"
    "\n"
    "Trains every AI or hybrid step of process NAME whose output column FILE has, and\n"
    "certifies each step's confidence threshold for its risk budget. FILE holds labelled\n"
    "examples: CSV with a header row (.csv) or JSON Lines (.jsonl, .ndjson, .json); other\n"
    "names are told apart by their first byte. \"-\" reads standard input.\n"
    "\n"
    "options:\n"
    "  --process NAME        the process to train (tandem process apply creates "
    "it)\n" CLI_TARGET_HELP CLI_ACTOR_HELP
    "  --json                print the engine's JSON answer instead of a summary\n"
    "  -h, --help            show this help\n";

/* Prints one line per step trained. */
static void print_summary(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *steps = json_object_get(o, "steps");
    if (!json_is_array(steps)) {
        fputs(json, stdout);
        if (json[0] && json[strlen(json) - 1] != '\n')
            putchar('\n');
        json_decref(o);
        return;
    }
    const char *process = json_string_value(json_object_get(o, "process"));
    size_t n = json_array_size(steps);
    printf("process %s: %zu step%s trained\n", process ? process : "?", n, n == 1 ? "" : "s");
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
    {
        const char *step = json_string_value(json_object_get(s, "step"));
        json_t *threshold = json_object_get(s, "threshold");
        printf("  %s: model version %lld, %lld examples, %lld classes, ", step ? step : "?",
               (long long)json_integer_value(json_object_get(s, "model_version")),
               (long long)json_integer_value(json_object_get(s, "n_train")),
               (long long)json_integer_value(json_object_get(s, "n_classes")));
        if (json_is_number(threshold))
            printf("certified threshold %.4f", json_number_value(threshold));
        else
            printf("no threshold certified (a person decides every item)");
        json_t *acc = json_object_get(s, "oof_accuracy");
        if (json_is_number(acc))
            printf(", out-of-fold accuracy %.4f", json_number_value(acc));
        printf(" (%.1f s)\n", json_number_value(json_object_get(s, "seconds")));
    }
    json_decref(o);
}

int cli_train(int argc, char **argv)
{
    enum { O_PROCESS = 256, O_DB, O_URL, O_ACTOR, O_JSON };
    static const struct option longopts[] = {
        {"process", required_argument, NULL, O_PROCESS},
        {"db", required_argument, NULL, O_DB},
        {"url", required_argument, NULL, O_URL},
        {"actor", required_argument, NULL, O_ACTOR},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_target t = {0};
    const char *process = NULL;
    int json_out = 0;
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
        case O_JSON:
            json_out = 1;
            break;
        case 'h':
            fputs(train_usage, stdout);
            return 0;
        case ':':
            cli_error("train: option %s needs a value (see tandem train --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("train: unknown option %s (see tandem train --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || process == NULL) {
        cli_error("train: give --process NAME and one FILE (see tandem train --help)");
        return CLI_EXIT_USAGE;
    }
    if (cli_target_check(&t, "train") != 0)
        return CLI_EXIT_USAGE;
    const char *path = argv[optind];

    char *data = NULL, *json = NULL;
    size_t len;
    if (cli_read_file(path, (size_t)1 << 30, &data, &len) != 0)
        return CLI_EXIT_FAIL;
    cli_client *cl;
    if (cli_client_open(&t, 0, &cl) != 0) {
        free(data);
        return CLI_EXIT_FAIL;
    }
    tdm_error err = {0};
    int rc =
        cli_client_train(cl, process, data, len, cli_guess_format(path, data, len), &json, &err);
    cli_client_close(cl);
    free(data);
    if (rc != 0) {
        cli_error("%s", err.message);
        return CLI_EXIT_FAIL;
    }
    if (json_out) {
        fputs(json, stdout);
        if (json[0] && json[strlen(json) - 1] != '\n')
            putchar('\n');
    } else {
        print_summary(json);
    }
    free(json);
    return 0;
}
