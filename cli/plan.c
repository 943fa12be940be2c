/*
 * plan.c — `tandem plan`: the task audit. Reads a team's task log (CSV or JSON Lines), sorts
 * every task into AI-only, hybrid or human-only with the rubric of include/tandem/plan.h
 * (docs/plan.md), prints the split against the 70-20-10 rule of thumb and the weekly hours in
 * each bucket, and with --out writes a process-file skeleton for every AI-only or hybrid task.
 *
 * Nothing is written unless the whole log is valid and no skeleton would overwrite a file
 * (without --force). Each skeleton is written beside its final name and renamed into place,
 * so a file is either absent or complete.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "tandem/plan.h"

static const char plan_usage[] =
    "usage: tandem plan FILE [--json] [--explain] [--out DIR [--force]]\n"
    "       tandem plan --rubric\n"
    "\n"
    "The task audit: reads a team's task log and sorts each task into AI-only, hybrid (the\n"
    "AI proposes, a person decides) or human-only with a documented rubric (docs/plan.md):\n"
    "repetitive, rules-based, data-heavy work points toward AI; empathy, judgement,\n"
    "creativity, relationships and risk toward people; tags a person sets always win. Then\n"
    "prints the split of tasks and weekly hours against the 70-20-10 rule of thumb (about\n"
    "70% of tasks AI-only, 20% hybrid, 10% human-only).\n"
    "\n"
    "FILE is CSV with a header row (or JSON Lines) with one task per row and the columns\n"
    "  name         the task\n"
    "  team         the team that does it (it names the queue of the skeleton)\n"
    "  minutes      minutes one occurrence takes, more than 0\n"
    "  per_week     occurrences per week, 0 or more (0.25: once a month)\n"
    "  description  what the task involves, in words: the rubric reads them\n"
    "  tags         optional, separated by ; or spaces: ai-only, hybrid, human-only set the\n"
    "               bucket; sensitive or regulated mean never AI-only; other tags are read\n"
    "               as words\n"
    "\n"
    "options:\n"
    "  --json        print one JSON object: tasks (with their signals), split, rule_of_thumb\n"
    "  --explain     print, task by task, the signals that decided its bucket\n"
    "  --out DIR     write a process-file skeleton DIR/NAME.yaml for every AI-only or hybrid\n"
    "                task (tandem process validate accepts each; fill in the TODOs)\n"
    "  --force       with --out, overwrite skeletons that exist (else nothing is written)\n"
    "  --rubric      print the rubric's word groups, weights and thresholds\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 done, 1 bad data or a file that cannot be written, 2 bad command line.\n";

typedef struct plan_args {
    const char *file, *out;
    int json, explain, force, rubric;
} plan_args;

static int parse_args(int argc, char **argv, plan_args *a)
{
    enum { O_JSON = 256, O_EXPLAIN, O_OUT, O_FORCE, O_RUBRIC };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"explain", no_argument, NULL, O_EXPLAIN},
        {"out", required_argument, NULL, O_OUT},
        {"force", no_argument, NULL, O_FORCE},
        {"rubric", no_argument, NULL, O_RUBRIC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_JSON:
            a->json = 1;
            break;
        case O_EXPLAIN:
            a->explain = 1;
            break;
        case O_OUT:
            a->out = optarg;
            break;
        case O_FORCE:
            a->force = 1;
            break;
        case O_RUBRIC:
            a->rubric = 1;
            break;
        case 'h':
            fputs(plan_usage, stdout);
            return -1;
        case ':':
            cli_error("plan: option %s needs a value (see tandem plan --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("plan: unknown option %s (see tandem plan --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (a->rubric) {
        if (optind < argc || a->json || a->explain || a->out || a->force) {
            cli_error("plan: --rubric takes nothing else (see tandem plan --help)");
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    if (optind >= argc) {
        cli_error("plan: name the task log FILE (see tandem plan --help)");
        return CLI_EXIT_USAGE;
    }
    if (argc - optind > 1) {
        cli_error("plan: unexpected argument \"%s\" (one task log at a time; see tandem plan "
                  "--help)",
                  argv[optind + 1]);
        return CLI_EXIT_USAGE;
    }
    a->file = argv[optind];
    if (a->force && a->out == NULL) {
        cli_error("plan: --force goes with --out DIR (see tandem plan --help)");
        return CLI_EXIT_USAGE;
    }
    if (a->out != NULL && a->out[0] == '\0') {
        cli_error("plan: --out needs a directory");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static const char *bucket_label(tdm_plan_bucket b)
{
    return b == TDM_PLAN_AI ? "AI-only" : b == TDM_PLAN_HYBRID ? "hybrid" : "human-only";
}

/* ---- text ---------------------------------------------------------------------------------- */

/* Prints s in `width` columns (counting UTF-8 characters), cut with "..." when longer. */
static void print_cell(const char *s, int width)
{
    int chars = 0;
    for (const char *p = s; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (chars <= width) {
        fputs(s, stdout);
        printf("%*s", width - chars, "");
        return;
    }
    int keep = width - 3, n = 0;
    const char *p = s;
    while (*p) {
        if (((unsigned char)*p & 0xC0) != 0x80 && n++ == keep)
            break;
        p++;
    }
    fwrite(s, 1, (size_t)(p - s), stdout);
    fputs("...", stdout);
}

/* The names of one side's signals: "rules, data, volume". */
static void side_names(const tdm_plan_verdict *v, int toward_ai, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < v->n_signals && o < cap; i++)
        if (v->signals[i].toward_ai == toward_ai)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", v->signals[i].name);
}

/* The WHY column: what decided the bucket. */
static void why(const tdm_plan_verdict *v, char *buf, size_t cap)
{
    char ai[128], people[128];
    side_names(v, 1, ai, sizeof ai);
    side_names(v, 0, people, sizeof people);
    size_t o;
    if (v->forced_by != NULL)
        o = (size_t)snprintf(buf, cap, "tag %s", v->forced_by);
    else if (ai[0] == '\0')
        o = (size_t)snprintf(buf, cap, "no AI signal%s%s", people[0] ? "; people: " : "", people);
    else
        o = (size_t)snprintf(buf, cap, "AI %d (%s) vs people %d%s%s%s", v->ai_score, ai,
                             v->human_score, people[0] ? " (" : "", people, people[0] ? ")" : "");
    if (v->held_by != NULL && o < cap)
        snprintf(buf + o, cap - o, "; %s%s holds it at hybrid",
                 strcmp(v->held_by, "sensitive") == 0 || strcmp(v->held_by, "regulated") == 0
                     ? "tag "
                     : "",
                 v->held_by);
}

static void print_explain(const tdm_plan *plan)
{
    printf("\nWhy, task by task (docs/plan.md has the rubric):\n");
    for (size_t i = 0; i < tdm_plan_task_count(plan); i++) {
        const tdm_plan_task *t = tdm_plan_task_at(plan, i);
        const tdm_plan_verdict *v = &t->verdict;
        printf("\nline %zu: %s (%s): %s\n", t->line, t->name, t->team, bucket_label(v->bucket));
        for (size_t k = 0; k < v->n_signals; k++) {
            const tdm_plan_signal *s = &v->signals[k];
            printf("  %-6s +%d %-12s %s\n", s->toward_ai ? "AI" : "people", s->weight, s->name,
                   s->matched);
        }
        if (v->n_signals == 0)
            printf("  (no signal)\n");
        printf("  score: AI %d, people %d, difference %+d\n", v->ai_score, v->human_score,
               v->ai_score - v->human_score);
        if (v->forced_by != NULL)
            printf("  tag: %s\n", v->forced_by);
        if (v->held_by != NULL)
            printf("  held at hybrid by: %s\n", v->held_by);
        printf("  rule: %s\n", v->rule);
    }
}

static void print_text(const tdm_plan *plan, int explain)
{
    tdm_plan_split sp;
    tdm_plan_split_get(plan, &sp);
    size_t n = tdm_plan_task_count(plan);
    printf("%s: %zu task%s of %zu team%s, %.1f hours a week\n\n", tdm_plan_source(plan), n,
           n == 1 ? "" : "s", sp.teams, sp.teams == 1 ? "" : "s", sp.hours);

    int wname = 4, wteam = 4;
    for (size_t i = 0; i < n; i++) {
        const tdm_plan_task *t = tdm_plan_task_at(plan, i);
        int ln = 0, lt = 0;
        for (const char *p = t->name; *p; p++)
            ln += ((unsigned char)*p & 0xC0) != 0x80;
        for (const char *p = t->team; *p; p++)
            lt += ((unsigned char)*p & 0xC0) != 0x80;
        wname = ln > wname ? ln : wname;
        wteam = lt > wteam ? lt : wteam;
    }
    wname = wname > 44 ? 44 : wname;
    wteam = wteam > 16 ? 16 : wteam;

    int forced = 0;
    print_cell("TASK", wname);
    printf("  ");
    print_cell("TEAM", wteam);
    printf("  %8s  %-11s %s\n", "H/WEEK", "BUCKET", "WHY");
    for (size_t i = 0; i < n; i++) {
        const tdm_plan_task *t = tdm_plan_task_at(plan, i);
        const tdm_plan_verdict *v = &t->verdict;
        char reason[400], bucket[24];
        why(v, reason, sizeof reason);
        int by_tag =
            v->forced_by != NULL || (v->held_by != NULL && (strcmp(v->held_by, "sensitive") == 0 ||
                                                            strcmp(v->held_by, "regulated") == 0));
        forced += by_tag;
        snprintf(bucket, sizeof bucket, "%s%s", bucket_label(v->bucket), by_tag ? "*" : "");
        print_cell(t->name, wname);
        printf("  ");
        print_cell(t->team, wteam);
        printf("  %8.1f  %-11s %s\n", t->weekly_hours, bucket, reason);
    }
    if (forced)
        printf("* set or held by a tag a person gave the task (%d task%s)\n", forced,
               forced == 1 ? "" : "s");
    if (explain)
        print_explain(plan);

    printf("\n%-11s %6s %7s %14s %11s %7s\n", "BUCKET", "TASKS", "SHARE", "RULE OF THUMB",
           "HOURS/WEEK", "SHARE");
    for (int b = 0; b < TDM_PLAN_BUCKETS; b++)
        printf("%-11s %6zu %6.1f%% %13.0f%% %11.1f %6.1f%%\n", bucket_label((tdm_plan_bucket)b),
               sp.bucket[b].tasks, 100 * sp.bucket[b].share_tasks,
               100 * tdm_plan_rule_of_thumb((tdm_plan_bucket)b), sp.bucket[b].hours,
               100 * sp.bucket[b].share_hours);
    printf("%-11s %6zu %6.1f%% %13.0f%% %11.1f %6.1f%%\n", "all", sp.tasks, 100.0, 100.0, sp.hours,
           sp.hours > 0 ? 100.0 : 0.0);
    printf("\nThe 70-20-10 rule of thumb: about 70%% of a team's tasks can go to the AI alone, "
           "20%% are\nhybrid (the AI proposes, a person decides) and 10%% stay with people. It "
           "counts tasks;\nthe hours show where the time goes.\nThis log:");
    for (int b = 0; b < TDM_PLAN_BUCKETS; b++) {
        double share = 100 * sp.bucket[b].share_tasks;
        double pts = share - 100 * tdm_plan_rule_of_thumb((tdm_plan_bucket)b);
        printf("%s %.0f%% %s", b == 0 ? "" : ",", share, bucket_label((tdm_plan_bucket)b));
        printf(" (%+ld%s)", lround(pts), b == 0 ? " points" : "");
    }
    printf(".\n");
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *signals_json(const tdm_plan_verdict *v)
{
    json_t *a = json_array();
    for (size_t k = 0; k < v->n_signals; k++) {
        const tdm_plan_signal *s = &v->signals[k];
        json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:s}", "signal", s->name, "toward",
                                           s->toward_ai ? "ai" : "human", "weight", s->weight,
                                           "matched", s->matched));
    }
    return a;
}

/* The whole answer, or NULL when memory ran out. */
static json_t *plan_json(const tdm_plan *plan)
{
    int failed = 0;
    json_t *tasks = json_array();
    for (size_t i = 0; i < tdm_plan_task_count(plan); i++) {
        const tdm_plan_task *t = tdm_plan_task_at(plan, i);
        const tdm_plan_verdict *v = &t->verdict;
        json_t *o =
            json_pack("{s:s, s:s, s:f, s:f, s:f, s:s, s:o, s:o, s:o, s:i, s:i, s:s, s:I}", "name",
                      t->name, "team", t->team, "minutes", t->minutes, "per_week", t->per_week,
                      "weekly_hours", t->weekly_hours, "bucket", tdm_plan_bucket_name(v->bucket),
                      "forced_by_tag", v->forced_by ? json_string(v->forced_by) : json_null(),
                      "held_by", v->held_by ? json_string(v->held_by) : json_null(), "signals",
                      signals_json(v), "ai_score", v->ai_score, "human_score", v->human_score,
                      "rule", v->rule, "line", (json_int_t)t->line);
        failed |= json_array_append_new(tasks, o) != 0;
    }
    tdm_plan_split sp;
    tdm_plan_split_get(plan, &sp);
    json_t *split = json_object(), *rule = json_object();
    for (int b = 0; b < TDM_PLAN_BUCKETS; b++) {
        const char *name = tdm_plan_bucket_name((tdm_plan_bucket)b);
        failed |= json_object_set_new(
            split, name,
            json_pack("{s:I, s:f, s:f, s:f}", "tasks", (json_int_t)sp.bucket[b].tasks, "hours",
                      sp.bucket[b].hours, "share_tasks", sp.bucket[b].share_tasks, "share_hours",
                      sp.bucket[b].share_hours));
        json_object_set_new(rule, name, json_real(tdm_plan_rule_of_thumb((tdm_plan_bucket)b)));
    }
    json_t *o =
        json_pack("{s:s, s:o, s:o, s:{s:I, s:f, s:I}, s:o}", "source", tdm_plan_source(plan),
                  "tasks", tasks, "split", split, "totals", "tasks", (json_int_t)sp.tasks, "hours",
                  sp.hours, "teams", (json_int_t)sp.teams, "rule_of_thumb", rule);
    if (failed) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- the rubric ---------------------------------------------------------------------------- */

static void print_rubric(void)
{
    const tdm_plan_group *g;
    size_t n = tdm_plan_rubric(&g);
    printf("The task audit's rubric (docs/plan.md explains it).\n\n"
           "Words of a task's name, description and free tags; \"stem*\" matches any ending.\n"
           "Each group counts once per task, with its weight.\n");
    for (int side = 1; side >= 0; side--) {
        printf("\n%s:\n", side ? "Toward AI" : "Toward people");
        for (size_t i = 0; i < n; i++) {
            if (g[i].toward_ai != side)
                continue;
            printf("\n  %s +%d: %s%s\n   ", g[i].name, g[i].weight, g[i].meaning,
                   g[i].holds_at_hybrid ? " (never AI-only by score)" : "");
            int col = 3;
            for (size_t k = 0; k < g[i].n_words; k++) {
                int len = (int)strlen(g[i].words[k]) + 2;
                if (col + len > 92) {
                    printf("\n   ");
                    col = 3;
                }
                printf(" %s%s", g[i].words[k], k + 1 < g[i].n_words ? "," : "");
                col += len;
            }
            printf("\n");
        }
        if (side)
            printf("\n  volume +1 at %g or more occurrences a week, +2 at %g or more (only with a "
                   "word above)\n",
                   TDM_PLAN_VOLUME_SOME, TDM_PLAN_VOLUME_HIGH);
        else
            printf("\n  rare +1 below %g occurrence a week\n", TDM_PLAN_RARE);
    }
    printf("\nBuckets, with A the AI score and H the people score:\n"
           "  1. a tag ai-only (ai), hybrid or human-only (human) sets the bucket;\n"
           "  2. no word toward AI: human-only;\n"
           "  3. A - H >= %d: AI-only, or hybrid when an empathy or risk word occurs;\n"
           "  4. A - H <= -%d: human-only;\n"
           "  5. otherwise hybrid;\n"
           "  6. a tag sensitive or regulated turns AI-only into hybrid.\n",
           TDM_PLAN_AI_MARGIN, TDM_PLAN_HUMAN_MARGIN);
}

/* ---- skeletons ----------------------------------------------------------------------------- */

typedef struct skeleton {
    size_t task;
    char *path, *yaml;
} skeleton;

static void skeletons_free(skeleton *sk, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(sk[i].path);
        tdm_free(sk[i].yaml);
    }
    free(sk);
}

/*
 * Makes every skeleton in memory and checks that none would overwrite a file (unless
 * `force`). Prints what is wrong and returns -1; nothing is written either way.
 */
static int skeletons_prepare(const tdm_plan *plan, const char *dir, int force, skeleton **out,
                             size_t *n_out)
{
    size_t n = tdm_plan_task_count(plan), k = 0;
    skeleton *sk = calloc(n ? n : 1, sizeof *sk);
    if (sk == NULL) {
        cli_error("out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const tdm_plan_task *t = tdm_plan_task_at(plan, i);
        if (t->verdict.bucket == TDM_PLAN_HUMAN)
            continue;
        tdm_error err = {0};
        sk[k].task = i;
        if (asprintf(&sk[k].path, "%s/%s.yaml", dir, t->slug) < 0) {
            sk[k].path = NULL;
            cli_error("out of memory");
            skeletons_free(sk, k);
            return -1;
        }
        k++;
        if (tdm_plan_skeleton(plan, i, &sk[k - 1].yaml, &err) != 0) {
            cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
            skeletons_free(sk, k);
            return -1;
        }
        struct stat st;
        if (!force && lstat(sk[k - 1].path, &st) == 0) {
            cli_error("plan: %s exists (use --force to overwrite; nothing was written)",
                      sk[k - 1].path);
            skeletons_free(sk, k);
            return -1;
        }
    }
    *out = sk;
    *n_out = k;
    return 0;
}

/* Writes one file through a temporary file beside it. Prints what failed and returns -1. */
static int write_file(const char *path, const char *text)
{
    char *tmp;
    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
        cli_error("out of memory");
        return -1;
    }
    FILE *f = fopen(tmp, "wx");
    int ok = f != NULL;
    if (ok) {
        size_t len = strlen(text);
        ok = fwrite(text, 1, len, f) == len;
        ok = (fclose(f) == 0) && ok;
    }
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        cli_error("plan: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

static int skeletons_write(const char *dir, skeleton *sk, size_t n)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0777) != 0) {
            cli_error("plan: cannot create the directory %s: %s (nothing was written)", dir,
                      strerror(errno));
            return -1;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        cli_error("plan: --out %s is not a directory (nothing was written)", dir);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (write_file(sk[i].path, sk[i].yaml) != 0)
            return -1;
    return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

int cli_plan(int argc, char **argv)
{
    plan_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (a.rubric) {
        print_rubric();
        return 0;
    }

    tdm_table_limits limits;
    tdm_table_limits_init(&limits);
    limits.max_bytes = (size_t)64 << 20;
    limits.max_columns = 64;
    tdm_table *table = NULL;
    tdm_error err = {0};
    if (tdm_table_read_file(a.file, TDM_FORMAT_AUTO, &limits, &table, &err) != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        return CLI_EXIT_FAIL;
    }
    tdm_plan *plan = NULL;
    rc = tdm_plan_from_table(table, &plan, &err);
    tdm_table_free(table);
    if (rc != 0) {
        cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
        return CLI_EXIT_FAIL;
    }

    skeleton *sk = NULL;
    size_t n_sk = 0;
    if (a.out != NULL) {
        if (skeletons_prepare(plan, a.out, a.force, &sk, &n_sk) != 0 ||
            skeletons_write(a.out, sk, n_sk) != 0) {
            skeletons_free(sk, n_sk);
            tdm_plan_free(plan);
            return CLI_EXIT_FAIL;
        }
    }

    if (a.json) {
        json_t *o = plan_json(plan);
        if (a.out != NULL) {
            json_t *files = json_array();
            for (size_t i = 0; i < n_sk; i++)
                json_array_append_new(files, json_pack("{s:s, s:s}", "task",
                                                       tdm_plan_task_at(plan, sk[i].task)->name,
                                                       "file", sk[i].path));
            json_object_set_new(o, "skeletons", files);
        }
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
        json_decref(o);
        if (s == NULL) {
            cli_error("out of memory");
            skeletons_free(sk, n_sk);
            tdm_plan_free(plan);
            return CLI_EXIT_FAIL;
        }
        puts(s);
        free(s);
    } else {
        print_text(plan, a.explain);
        if (a.out != NULL) {
            printf("\nWrote %zu process-file skeleton%s (fill in the TODOs, then tandem process "
                   "validate FILE):\n",
                   n_sk, n_sk == 1 ? "" : "s");
            for (size_t i = 0; i < n_sk; i++)
                printf("  %s  (%s)\n", sk[i].path,
                       bucket_label(tdm_plan_task_at(plan, sk[i].task)->verdict.bucket));
        }
    }
    skeletons_free(sk, n_sk);
    tdm_plan_free(plan);
    return 0;
}
