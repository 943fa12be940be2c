/*
 * plan.c — the task audit (include/tandem/plan.h): a team's logged tasks sorted into
 * AI-only, hybrid and human-only by a rubric anyone can read, the split they make, and a
 * process-file skeleton for each task worth handing to the AI.
 *
 * NOTES ON THE DESIGN OF THE RUBRIC
 *
 * The rubric follows the product's two source documents (/work/shared/mission): AI takes the
 * repetitive, rules-based, data-heavy work; people keep what needs empathy, judgement,
 * creativity, relationships, or carries risk. It reads words, not meaning, so it is simple
 * enough to explain in one table (docs/plan.md) and to predict by hand; where it reads a
 * task wrongly, the person who logged it sets a tag, and tags always win.
 *
 * Words. A task's name, description and free tags (tags that are not control tags) are cut
 * into words: runs of ASCII letters and digits (lowercased) and non-ASCII bytes; anything
 * else separates words, so "rules-based" is "rules" "based". A list entry "word" matches that
 * word, "stem*" any word that starts with the stem, and "two words" those words one after
 * the other (each part may be a stem).
 *
 * Signals and weights. Each group below counts at most once per task, with its weight, however
 * many of its words occur:
 *
 *   toward AI      repetitive 2, rules 2, data 2
 *                  volume: +1 at 5 or more occurrences a week, +2 at 25 or more, counted only
 *                  when a word above already points toward AI (volume makes AI-able work
 *                  worth automating; it does not make work AI-able)
 *   toward people  empathy 3, risk 3, judgement 2, creativity 2, relationship 2
 *                  rare: +1 below one occurrence a week (little to learn from or to gain)
 *
 * A is the AI side's sum, H the people side's. The bucket:
 *
 *   1. a bucket tag (ai-only or ai, hybrid, human-only or human) sets it;
 *   2. else no word toward AI (A counts no group): human-only;
 *   3. else A - H >= 2 (TDM_PLAN_AI_MARGIN): AI-only, but hybrid when an empathy or risk
 *      word occurs (the AI never acts alone there on the rubric's say-so);
 *   4. else A - H <= -3 (TDM_PLAN_HUMAN_MARGIN): human-only;
 *   5. else hybrid;
 *   6. finally a sensitive or regulated tag turns AI-only, forced or scored, into hybrid.
 *
 * The word lists are the arrays below, each group with its meaning; docs/plan.md lists them
 * word for word and tests/unit/test_plan.c checks that the two agree.
 *
 * The plan copies every string it keeps, so the table it was read from may be freed. Slugs
 * (process names) are unique within a plan: the name's slug, else the name and team's, else
 * that with -2, -3, ...
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tandem/plan.h"
#include "tandem/process.h"
#include "util/util.h"

/* ---- the rubric ---------------------------------------------------------------------------- */

static const char *const w_repetitive[] = {
    "repetitive*", "repeat*",   "routine*", "recurring", "bulk",           "batch*",
    "high volume", "template*", "standard", "copy",      "copying",        "paste",
    "identical",   "reminder*", "rekey*",   "re key*",   "data entry",     "faq*",
    "chase",       "chases",    "chased",   "chasing",   "status update*",
};

static const char *const w_rules[] = {
    "rule*",      "polic*", "checklist*", "check",    "checks",       "checked",    "checking",
    "procedure*", "sop",    "sops",       "criteria", "criterion",    "threshold*", "eligib*",
    "validat*",   "verif*", "reconcil*",  "complete", "completeness", "tariff*",    "price list*",
};

static const char *const w_data[] = {
    "data",       "lookup*",      "look up",   "looks up", "looking up", "classif*",    "categori*",
    "tag",        "tags",         "tagging",   "extract*", "sort",       "sorts",       "sorting",
    "sorted",     "route",        "routes",    "routed",   "routing",    "summar*",     "draft*",
    "transcri*",  "triag*",       "entry",     "entries",  "enter",      "entering",    "invoice*",
    "receipt*",   "spreadsheet*", "record*",   "log",      "logs",       "logging",     "logged",
    "updat*",     "report*",      "form",      "forms",    "match*",     "search*",     "translat*",
    "schedul*",   "calculat*",    "export*",   "import*",  "count",      "counts",      "counting",
    "compil*",    "collat*",      "aggregat*", "merg*",    "dedup*",     "deduplicat*", "fill in",
    "filling in", "scan*",        "index*",    "archiv*",  "filing",     "forecast*",
};

static const char *const w_empathy[] = {
    "empath*",
    "complain*",
    "bereave*",
    "vulnerab*",
    "grie*",
    "distress*",
    "upset",
    "angry",
    "anger",
    "apolog*",
    "hardship*",
    "condolenc*",
    "wellbeing",
    "well being",
    "sick*",
    "illness*",
    "mental",
    "counsel*",
    "comfort*",
    "reassur*",
    "negotiat*",
    "conflict*",
    "difficult conversation*",
    "emotion*",
    "death*",
    "deceased",
    "frustrat*",
    "anxious",
    "anxiety",
    "compassion*",
    "sympath*",
};

static const char *const w_judgement[] = {
    "judg*",      "exception*", "ambigu*",     "escalat*",   "discretion*", "nuance*",
    "unusual",    "edge case*", "investigat*", "disput*",    "appeal*",     "decid*",
    "decision*",  "assess*",    "evaluat*",    "interpret*", "weigh",       "weighing",
    "prioritis*", "prioritiz*", "dilemma*",    "unclear",    "approv*",     "case by case",
    "bespoke",    "complex",    "tricky",      "borderline",
};

static const char *const w_creativity[] = {
    "creativ*", "design*",     "strateg*",      "brand*",    "campaign*", "concept*",   "idea*",
    "ideation", "brainstorm*", "original*",     "story",     "stories",   "storytell*", "vision*",
    "innovat*", "pitch*",      "slogan*",       "messaging", "copywrit*", "narrative*", "visual*",
    "roadmap*", "positioning", "tone of voice", "headline*", "invent",    "invention*",
};

static const char *const w_risk[] = {
    "risk*",
    "legal*",
    "law",
    "laws",
    "lawyer*",
    "solicitor*",
    "litigat*",
    "lawsuit*",
    "court",
    "fraud*",
    "safety",
    "safeguard*",
    "medical*",
    "health*",
    "clinical*",
    "credit decision*",
    "lending decision*",
    "loan decision*",
    "underwrit*",
    "terminat*",
    "dismiss*",
    "disciplin*",
    "redundan*",
    "regulat*",
    "complian*",
    "sanction*",
    "aml",
    "kyc",
    "money laundering",
    "liabil*",
    "penalt*",
    "contract*",
    "gdpr",
    "privacy",
    "personal data",
    "confidential*",
    "sensitiv*",
    "injur*",
    "hiring",
    "shortlist*",
    "bank detail*",
    "write off*",
};

static const char *const w_relationship[] = {
    "relationship*", "rapport",       "trust",           "stakeholder*",      "partner*",
    "mentor*",       "coach*",        "retention",       "account manag*",    "key account*",
    "persuad*",      "persuas*",      "client meeting*", "customer meeting*", "meet with",
    "meets with",    "meeting with",  "face to face",    "in person",         "visit*",
    "networking",    "conversation*", "phone call*",     "video call*",
};

#define WORDS(a) a, sizeof a / sizeof a[0]

static const tdm_plan_group rubric[] = {
    {"repetitive", 1, 2, 0, "the same steps again and again", WORDS(w_repetitive)},
    {"rules", 1, 2, 0, "follows written rules, a policy or a checklist", WORDS(w_rules)},
    {"data", 1, 2, 0, "reads, sorts, moves or drafts information", WORDS(w_data)},
    {"empathy", 0, 3, 1, "people in difficulty, feelings, negotiation", WORDS(w_empathy)},
    {"judgement", 0, 2, 0, "exceptions, ambiguity, decisions and escalations", WORDS(w_judgement)},
    {"creativity", 0, 2, 0, "original work: design, strategy, brand", WORDS(w_creativity)},
    {"risk", 0, 3, 1, "legal, financial, safety or regulatory stakes", WORDS(w_risk)},
    {"relationship", 0, 2, 0, "trust built with people over time", WORDS(w_relationship)},
};

#define N_GROUPS (sizeof rubric / sizeof rubric[0])

size_t tdm_plan_rubric(const tdm_plan_group **groups)
{
    *groups = rubric;
    return N_GROUPS;
}

static const char *const bucket_names[TDM_PLAN_BUCKETS] = {"ai", "hybrid", "human"};
static const double rule_of_thumb[TDM_PLAN_BUCKETS] = {0.7, 0.2, 0.1};

const char *tdm_plan_bucket_name(tdm_plan_bucket bucket)
{
    return (unsigned)bucket < TDM_PLAN_BUCKETS ? bucket_names[bucket] : "unknown";
}

double tdm_plan_rule_of_thumb(tdm_plan_bucket bucket)
{
    return (unsigned)bucket < TDM_PLAN_BUCKETS ? rule_of_thumb[bucket] : 0;
}

/* ---- words --------------------------------------------------------------------------------- */

typedef struct word {
    const char *s;
    size_t len;
} word;

typedef struct wordlist {
    char *text; /* the lowercased text the words point into */
    word *w;
    size_t n;
} wordlist;

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Cuts `text` (lowercased into a copy) into words. Returns 0 or TDM_ENOMEM. */
static int words_split(const char *text, wordlist *out)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    out->text = malloc(len + 1);
    out->w = malloc((len / 2 + 1) * sizeof *out->w);
    if (out->text == NULL || out->w == NULL) {
        free(out->text);
        free(out->w);
        return TDM_ENOMEM;
    }
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)text[i];
        out->text[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    size_t i = 0;
    while (i < len) {
        while (i < len && !is_word_byte((unsigned char)out->text[i]))
            i++;
        size_t start = i;
        while (i < len && is_word_byte((unsigned char)out->text[i]))
            i++;
        if (i > start)
            out->w[out->n++] = (word){out->text + start, i - start};
    }
    return 0;
}

static void words_release(wordlist *wl)
{
    free(wl->text);
    free(wl->w);
}

/* Whether one part of an entry ("check", "rout*") matches word w. */
static int part_matches(const char *part, size_t plen, const word *w)
{
    int stem = plen > 0 && part[plen - 1] == '*';
    if (stem)
        plen--;
    if (stem ? w->len < plen : w->len != plen)
        return 0;
    return memcmp(w->s, part, plen) == 0;
}

/* How many words an entry matches from words[at]: its number of parts, or 0. */
static size_t entry_matches(const char *entry, const wordlist *wl, size_t at)
{
    size_t k = 0;
    const char *p = entry;
    for (;;) {
        const char *sp = strchr(p, ' ');
        size_t plen = sp ? (size_t)(sp - p) : strlen(p);
        if (at + k >= wl->n || !part_matches(p, plen, &wl->w[at + k]))
            return 0;
        k++;
        if (sp == NULL)
            return k;
        p = sp + 1;
    }
}

/* Appends `s` (len bytes) to a signal's matched words unless it is listed already; when the
 * buffer is full the list ends with "...". */
static void matched_add(char *buf, const char *s, size_t len)
{
    const char *p = buf;
    while (*p) {
        const char *end = strstr(p, ", ");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, s, len) == 0)
            return;
        if (end == NULL)
            break;
        p = end + 2;
    }
    size_t have = strlen(buf);
    if (have >= 3 && strcmp(buf + have - 3, "...") == 0)
        return;
    /* An item goes in only if ", ..." would still fit after it. */
    if (have + (have ? 2 : 0) + len + 5 + 1 > TDM_PLAN_SIGNAL_WORDS) {
        strcat(buf, have ? ", ..." : "...");
        return;
    }
    if (have)
        strcat(buf, ", ");
    strncat(buf, s, len);
}

/* ---- tags ---------------------------------------------------------------------------------- */

static const char *const control_tags[] = {"ai-only", "ai",        "hybrid",   "human-only",
                                           "human",   "sensitive", "regulated"};

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    size_t d[33][33];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static int is_tag_sep(char c)
{
    return c == ';' || c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

typedef struct tagset {
    int force;            /* -1 none, else a bucket */
    const char *force_by; /* the control tag (static) */
    const char *hold_by;  /* "sensitive" or "regulated" (static), or NULL */
    char *free_words;     /* the other tags, space-separated (malloc'd) */
} tagset;

/* Reads a tag list. Returns 0, TDM_EINVAL (with a message) or TDM_ENOMEM. */
static int tags_parse(const char *tags, tagset *ts, tdm_error *err)
{
    ts->force = -1;
    ts->force_by = NULL;
    ts->hold_by = NULL;
    size_t len = tags ? strlen(tags) : 0;
    ts->free_words = malloc(len + 1);
    if (ts->free_words == NULL)
        return TDM_ENOMEM;
    ts->free_words[0] = '\0';
    size_t out = 0, i = 0;
    while (i < len) {
        while (i < len && is_tag_sep(tags[i]))
            i++;
        size_t start = i;
        while (i < len && !is_tag_sep(tags[i]))
            i++;
        size_t n = i - start;
        if (n == 0)
            continue;
        char tag[40];
        int control = -1;
        if (n < sizeof tag) {
            for (size_t k = 0; k < n; k++) {
                char c = tags[start + k];
                tag[k] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
            }
            tag[n] = '\0';
            for (size_t k = 0; k < sizeof control_tags / sizeof control_tags[0]; k++)
                if (strcmp(tag, control_tags[k]) == 0)
                    control = (int)k;
            if (control < 0 && n >= 4) {
                for (size_t k = 0; k < sizeof control_tags / sizeof control_tags[0]; k++) {
                    if (strlen(control_tags[k]) >= 5 && edit_distance(tag, control_tags[k]) <= 2) {
                        free(ts->free_words);
                        ts->free_words = NULL;
                        return tdm__error(err, TDM_EINVAL,
                                          "unknown tag \"%s\" (did you mean \"%s\"? the control "
                                          "tags are ai-only, hybrid, human-only, sensitive and "
                                          "regulated)",
                                          tag, control_tags[k]);
                    }
                }
            }
        }
        if (control < 0) {
            if (out)
                ts->free_words[out++] = ' ';
            memcpy(ts->free_words + out, tags + start, n);
            out += n;
            ts->free_words[out] = '\0';
            continue;
        }
        const char *name = control_tags[control];
        int bucket = -1;
        if (strcmp(name, "ai-only") == 0 || strcmp(name, "ai") == 0)
            bucket = TDM_PLAN_AI;
        else if (strcmp(name, "hybrid") == 0)
            bucket = TDM_PLAN_HYBRID;
        else if (strcmp(name, "human-only") == 0 || strcmp(name, "human") == 0)
            bucket = TDM_PLAN_HUMAN;
        else if (ts->hold_by == NULL)
            ts->hold_by = name;
        if (bucket < 0)
            continue;
        if (ts->force >= 0 && ts->force != bucket) {
            const char *first = ts->force_by;
            free(ts->free_words);
            ts->free_words = NULL;
            return tdm__error(err, TDM_EINVAL,
                              "tags \"%s\" and \"%s\" contradict each other (keep the one "
                              "bucket you mean)",
                              first, name);
        }
        if (ts->force < 0) {
            ts->force = bucket;
            ts->force_by = name;
        }
    }
    return 0;
}

/* ---- one task ------------------------------------------------------------------------------ */

static tdm_plan_signal *signal_add(tdm_plan_verdict *v, const char *name, int toward_ai, int weight)
{
    TDM_ASSERT(v->n_signals < TDM_PLAN_MAX_SIGNALS);
    tdm_plan_signal *s = &v->signals[v->n_signals++];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->toward_ai = toward_ai;
    s->weight = weight;
    if (toward_ai)
        v->ai_score += weight;
    else
        v->human_score += weight;
    return s;
}

/* A frequency for a signal: "60 a week", "0.25 a week". */
static void frequency_text(char *buf, size_t cap, double per_week)
{
    snprintf(buf, cap, "%.6g a week", per_week);
}

int tdm_plan_classify(const char *name, const char *description, const char *tags, double minutes,
                      double per_week, tdm_plan_verdict *out, tdm_error *err)
{
    (void)minutes; /* the rubric weighs frequency; minutes only make the hours */
    memset(out, 0, sizeof *out);
    tagset ts;
    int rc = tags_parse(tags, &ts, err);
    if (rc != 0)
        return rc == TDM_ENOMEM ? tdm__error_code(err, rc) : rc;

    size_t ln = name ? strlen(name) : 0, ld = description ? strlen(description) : 0;
    size_t lt = strlen(ts.free_words);
    char *text = malloc(ln + ld + lt + 3);
    if (text == NULL) {
        free(ts.free_words);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    snprintf(text, ln + ld + lt + 3, "%s %s %s", name ? name : "", description ? description : "",
             ts.free_words);
    free(ts.free_words);
    wordlist wl;
    rc = words_split(text, &wl);
    free(text);
    if (rc != 0)
        return tdm__error_code(err, rc);

    /* Each group once, with every word of the task that matched it. */
    int ai_content = 0, hard = -1;
    for (size_t g = 0; g < N_GROUPS; g++) {
        tdm_plan_signal *s = NULL;
        for (size_t at = 0; at < wl.n; at++) {
            for (size_t e = 0; e < rubric[g].n_words; e++) {
                size_t k = entry_matches(rubric[g].words[e], &wl, at);
                if (k == 0)
                    continue;
                if (s == NULL)
                    s = signal_add(out, rubric[g].name, rubric[g].toward_ai, rubric[g].weight);
                /* A phrase is shown with single spaces, whatever separated its words; a
                 * very long word is cut at a character boundary. */
                char shown[64];
                size_t off = 0;
                for (size_t j = 0; j < k; j++) {
                    const word *w = &wl.w[at + j];
                    if (j > 0 && off < sizeof shown - 1)
                        shown[off++] = ' ';
                    size_t n = w->len;
                    if (n > sizeof shown - 1 - off) {
                        n = sizeof shown - 1 - off;
                        while (n > 0 && ((unsigned char)w->s[n] & 0xC0) == 0x80)
                            n--;
                    }
                    memcpy(shown + off, w->s, n);
                    off += n;
                }
                matched_add(s->matched, shown, off);
                break;
            }
        }
        if (s != NULL && rubric[g].toward_ai)
            ai_content = 1;
        if (s != NULL && rubric[g].holds_at_hybrid && hard < 0)
            hard = (int)g;
    }
    words_release(&wl);

    /* Volume adds to AI-able work only; rare work adds to the people's side. */
    if (ai_content && per_week >= TDM_PLAN_VOLUME_SOME) {
        tdm_plan_signal *s = signal_add(out, "volume", 1, per_week >= TDM_PLAN_VOLUME_HIGH ? 2 : 1);
        frequency_text(s->matched, sizeof s->matched, per_week);
    }
    if (per_week < TDM_PLAN_RARE) {
        tdm_plan_signal *s = signal_add(out, "rare", 0, 1);
        frequency_text(s->matched, sizeof s->matched, per_week);
    }

    /* The AI side's signals first, each side in the rubric's order. */
    tdm_plan_signal sorted[TDM_PLAN_MAX_SIGNALS];
    size_t k = 0;
    for (int side = 1; side >= 0; side--)
        for (size_t i = 0; i < out->n_signals; i++)
            if (out->signals[i].toward_ai == side)
                sorted[k++] = out->signals[i];
    memcpy(out->signals, sorted, k * sizeof sorted[0]);

    int d = out->ai_score - out->human_score;
    if (ts.force >= 0) {
        out->bucket = (tdm_plan_bucket)ts.force;
        out->forced_by = ts.force_by;
        out->rule = "a tag set by a person decides";
    } else if (!ai_content) {
        out->bucket = TDM_PLAN_HUMAN;
        out->rule = "no word points toward AI: the task stays with people";
    } else if (d >= TDM_PLAN_AI_MARGIN && hard >= 0) {
        out->bucket = TDM_PLAN_HYBRID;
        out->held_by = rubric[hard].name;
        out->rule = "the AI side leads by the margin, but an empathy or risk word keeps a "
                    "person deciding";
    } else if (d >= TDM_PLAN_AI_MARGIN) {
        out->bucket = TDM_PLAN_AI;
        out->rule = "the AI side leads by the margin";
    } else if (d <= -TDM_PLAN_HUMAN_MARGIN) {
        out->bucket = TDM_PLAN_HUMAN;
        out->rule = "the people side leads by the margin";
    } else {
        out->bucket = TDM_PLAN_HYBRID;
        out->rule = "neither side leads by its margin: the AI proposes, a person decides";
    }
    if (out->bucket == TDM_PLAN_AI && ts.hold_by != NULL) {
        out->bucket = TDM_PLAN_HYBRID;
        out->held_by = ts.hold_by;
        out->rule = ts.force >= 0 ? "a tag set by a person decides, and a sensitive or regulated "
                                    "tag holds it at hybrid"
                                  : "the AI side leads by the margin, but a sensitive or "
                                    "regulated tag holds it at hybrid";
    }
    return 0;
}

/* ---- a task log ---------------------------------------------------------------------------- */

/* At most this many tasks: a task audit is one team's log, not a data set. */
#define MAX_TASKS             10000
#define MAX_NAME_BYTES        200
#define MAX_TEAM_BYTES        100
#define MAX_DESCRIPTION_BYTES 4000
#define MAX_TAGS_BYTES        500
#define MAX_SLUG              60 /* process names are at most 64: room for "-NN" */
#define MAX_QUEUE             50 /* queue names are at most 64: room for ".leads" */

struct tdm_plan {
    char *source;
    tdm_plan_task *tasks;
    size_t n;
};

enum { C_NAME, C_TEAM, C_MINUTES, C_PER_WEEK, C_DESCRIPTION, C_TAGS, N_COLUMNS };

static const char *const column_names[N_COLUMNS] = {"name",     "team",        "minutes",
                                                    "per_week", "description", "tags"};

static const char *const column_meaning[N_COLUMNS] = {
    "the task's name",
    "the team that does it",
    "minutes one occurrence takes",
    "occurrences per week",
    "what the task involves, in words",
    "optional tags, like human-only or sensitive",
};

static const char columns_help[] =
    "the header is name,team,minutes,per_week,description and optionally tags";

/* `s` quoted for a message: at most 40 bytes, control characters as '?'. */
static const char *show(const char *s, char *buf, size_t cap)
{
    size_t len = strlen(s), n = len > 40 ? 40 : len, o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n < len && o + 5 < cap) {
        while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
            o--;
        if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0)
            o--;
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static int valid_utf8(const char *s)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s);
    while (len > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate(p, len, &cp);
        if (r <= 0)
            return 0;
        p += r;
        len -= r;
    }
    return 1;
}

/* A copy of s without leading and trailing spaces and tabs; NULL when out of memory. */
static char *trimmed_copy(const char *s)
{
    if (s == NULL)
        s = "";
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *out = malloc(n + 1);
    if (out != NULL) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

/* Whether s is a plain decimal: [+-]digits[.digits][e[+-]digits], at least one digit. */
static int plain_decimal(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, digits++;
    }
    if (digits == 0)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* The place of a row's messages: "FILE:LINE: column \"NAME\"". */
#define ROW_FMT "%s:%zu: column \"%s\": "

static int parse_amount(const tdm_table *t, size_t row, int col, const char *cell, double lo,
                        double hi, double *out, tdm_error *err)
{
    const char *file = tdm_table_name(t);
    size_t line = tdm_table_row_line(t, row);
    const char *cname = column_names[col];
    const char *example = col == C_MINUTES ? "15 or 2.5" : "5, or 0.25 for once a month";
    char q[64];
    if (cell[0] == '\0')
        return tdm__error_field(err, TDM_EINVAL, cname,
                                ROW_FMT "empty (every task needs its %s, like %s)", file, line,
                                cname, column_meaning[col], example);
    if (!plain_decimal(cell)) {
        const char *comma = strchr(cell, ',');
        int decimal_comma = comma != NULL && strchr(comma + 1, ',') == NULL;
        if (decimal_comma) {
            char copy[64];
            snprintf(copy, sizeof copy, "%s", cell);
            char *c = strchr(copy, ',');
            if (c != NULL)
                *c = '.';
            decimal_comma = plain_decimal(copy);
        }
        return tdm__error_field(err, TDM_EINVAL, cname,
                                ROW_FMT "%s is not a number (%s: write a plain number like %s%s)",
                                file, line, cname, show(cell, q, sizeof q), column_meaning[col],
                                example, decimal_comma ? ", with a dot for decimals" : "");
    }
    double v = strtod(cell, NULL);
    int ok = isfinite(v) && v <= hi && (col == C_MINUTES ? v > lo : v >= lo);
    if (!ok)
        return tdm__error_field(err, TDM_EINVAL, cname,
                                ROW_FMT
                                "%s is out of range (%s must be %s %g and at most %g, like %s)",
                                file, line, cname, show(cell, q, sizeof q), column_meaning[col],
                                col == C_MINUTES ? "more than" : "at least", lo, hi, example);
    *out = v;
    return 0;
}

/* Checks a text cell: valid UTF-8, at most max bytes, no control characters (line breaks and
 * tabs allowed when `multiline`), and not empty when `required`. */
static int check_text(const tdm_table *t, size_t row, int col, const char *s, size_t max,
                      int required, int multiline, tdm_error *err)
{
    const char *file = tdm_table_name(t);
    size_t line = tdm_table_row_line(t, row);
    const char *cname = column_names[col];
    if (required && s[0] == '\0')
        return tdm__error_field(err, TDM_EINVAL, cname, ROW_FMT "empty (every task needs %s)", file,
                                line, cname, column_meaning[col]);
    if (strlen(s) > max)
        return tdm__error_field(err, TDM_EINVAL, cname,
                                ROW_FMT "%zu bytes is too long (at most %zu: shorten it)", file,
                                line, cname, strlen(s), max);
    if (!valid_utf8(s))
        return tdm__error_field(err, TDM_EINVAL, cname,
                                ROW_FMT "not valid UTF-8 (save the file as UTF-8)", file, line,
                                cname);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 || c == 0x7f) && !(multiline && (c == '\n' || c == '\r' || c == '\t')))
            return tdm__error_field(
                err, TDM_EINVAL, cname,
                ROW_FMT "contains a %s (keep it on one line, without control characters)", file,
                line, cname, c == '\n' || c == '\r' ? "line break" : "control character");
    }
    return 0;
}

/*
 * A slug of `s`: ASCII letters and digits lowercased, every other run of characters one '-',
 * none at either end, at most `max` bytes. Writes "" when nothing is left.
 */
static void slugify(const char *s, char *out, size_t max)
{
    size_t o = 0;
    int dash = 0;
    for (const char *p = s; *p && o < max; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + ('a' - 'A'));
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (dash && o > 0 && o + 1 < max)
                out[o++] = '-';
            dash = 0;
            out[o++] = (char)c;
        } else {
            dash = 1;
        }
    }
    out[o] = '\0';
}

static int slug_taken(const tdm_plan *p, size_t upto, const char *slug)
{
    for (size_t i = 0; i < upto; i++)
        if (strcmp(p->tasks[i].slug, slug) == 0)
            return 1;
    return 0;
}

/* Gives task i a slug no earlier task has. Returns 0 or TDM_ENOMEM. */
static int assign_slug(tdm_plan *p, size_t i)
{
    tdm_plan_task *t = &p->tasks[i];
    char slug[96];
    slugify(t->name, slug, MAX_SLUG);
    if (slug[0] == '\0')
        snprintf(slug, sizeof slug, "task-%zu", t->line);
    if (slug_taken(p, i, slug)) {
        size_t ln = strlen(t->name), lt = strlen(t->team);
        char *both = malloc(ln + lt + 2);
        if (both == NULL)
            return TDM_ENOMEM;
        snprintf(both, ln + lt + 2, "%s %s", t->name, t->team);
        slugify(both, slug, MAX_SLUG);
        free(both);
    }
    if (slug_taken(p, i, slug)) {
        char base[MAX_SLUG + 1];
        snprintf(base, sizeof base, "%.57s", slug);
        for (size_t k = 2; k <= MAX_TASKS + 1; k++) {
            snprintf(slug, sizeof slug, "%.57s-%zu", base, k);
            if (!slug_taken(p, i, slug))
                break;
        }
    }
    char *copy = strdup(slug);
    if (copy == NULL)
        return TDM_ENOMEM;
    t->slug = copy;
    return 0;
}

static void task_release(tdm_plan_task *t)
{
    free((void *)t->name);
    free((void *)t->team);
    free((void *)t->description);
    free((void *)t->tags);
    free((void *)t->slug);
    free((void *)t->queue);
}

void tdm_plan_free(tdm_plan *plan)
{
    if (plan == NULL)
        return;
    for (size_t i = 0; i < plan->n; i++)
        task_release(&plan->tasks[i]);
    free(plan->tasks);
    free(plan->source);
    free(plan);
}

/* Checks the header: every column known, every required one there. Fills cols[]. */
static int check_columns(const tdm_table *t, size_t cols[N_COLUMNS], int have[N_COLUMNS],
                         tdm_error *err)
{
    const char *file = tdm_table_name(t);
    for (int c = 0; c < N_COLUMNS; c++)
        have[c] = tdm_table_column_index(t, column_names[c], &cols[c]) == 0;
    for (size_t k = 0; k < tdm_table_column_count(t); k++) {
        const char *name = tdm_table_column_name(t, k);
        int known = 0;
        for (int c = 0; c < N_COLUMNS; c++)
            known |= strcmp(name, column_names[c]) == 0;
        if (known)
            continue;
        char q[64], lower[64];
        slugify(name, lower, sizeof lower - 1);
        for (char *p = lower; *p; p++)
            if (*p == '-')
                *p = '_';
        size_t best = 3;
        int which = -1;
        for (int c = 0; c < N_COLUMNS; c++) {
            size_t d =
                strcmp(lower, column_names[c]) == 0 ? 0 : edit_distance(name, column_names[c]);
            if (d < best && !have[c]) {
                best = d;
                which = c;
            }
        }
        if (which >= 0)
            return tdm__error_field(err, TDM_EINVAL, name,
                                    "%s:1: unknown column %s (did you mean \"%s\"? %s)", file,
                                    show(name, q, sizeof q), column_names[which], columns_help);
        return tdm__error_field(err, TDM_EINVAL, name,
                                "%s:1: unknown column %s (remove it or rename it: %s)", file,
                                show(name, q, sizeof q), columns_help);
    }
    for (int c = 0; c < N_COLUMNS; c++)
        if (!have[c] && c != C_TAGS)
            return tdm__error_field(err, TDM_EINVAL, column_names[c],
                                    "%s:1: missing column \"%s\", %s (%s)", file, column_names[c],
                                    column_meaning[c], columns_help);
    return 0;
}

/* Reads, checks and sorts row `row` into p->tasks[row]. */
static int read_row(const tdm_table *t, size_t row, const size_t cols[N_COLUMNS],
                    const int have[N_COLUMNS], tdm_plan *p, tdm_error *err)
{
    tdm_plan_task *task = &p->tasks[row];
    const char *file = tdm_table_name(t);
    task->line = tdm_table_row_line(t, row);
    char *s[N_COLUMNS] = {0};
    for (int c = 0; c < N_COLUMNS; c++) {
        s[c] = trimmed_copy(have[c] ? tdm_table_cell(t, row, cols[c], NULL) : "");
        if (s[c] == NULL) {
            for (int k = 0; k < c; k++)
                free(s[k]);
            return tdm__error_code(err, TDM_ENOMEM);
        }
    }
    task->name = s[C_NAME];
    task->team = s[C_TEAM];
    task->description = s[C_DESCRIPTION];
    task->tags = s[C_TAGS];
    int rc;
    if ((rc = check_text(t, row, C_NAME, s[C_NAME], MAX_NAME_BYTES, 1, 0, err)) != 0 ||
        (rc = check_text(t, row, C_TEAM, s[C_TEAM], MAX_TEAM_BYTES, 1, 0, err)) != 0 ||
        (rc = parse_amount(t, row, C_MINUTES, s[C_MINUTES], 0, TDM_PLAN_MAX_MINUTES, &task->minutes,
                           err)) != 0 ||
        (rc = parse_amount(t, row, C_PER_WEEK, s[C_PER_WEEK], 0, TDM_PLAN_MAX_PER_WEEK,
                           &task->per_week, err)) != 0 ||
        (rc = check_text(t, row, C_DESCRIPTION, s[C_DESCRIPTION], MAX_DESCRIPTION_BYTES, 0, 1,
                         err)) != 0 ||
        (rc = check_text(t, row, C_TAGS, s[C_TAGS], MAX_TAGS_BYTES, 0, 0, err)) != 0) {
        free(s[C_MINUTES]);
        free(s[C_PER_WEEK]);
        return rc;
    }
    free(s[C_MINUTES]);
    free(s[C_PER_WEEK]);
    task->weekly_hours = task->minutes * task->per_week / 60.0;

    char queue[MAX_QUEUE + 1];
    slugify(task->team, queue, MAX_QUEUE);
    if (queue[0] == '\0') {
        char q[64];
        return tdm__error_field(err, TDM_EINVAL, "team",
                                ROW_FMT "%s has no letter or digit (a team names the queue of "
                                        "its tasks: use letters a-z or digits)",
                                file, task->line, "team", show(task->team, q, sizeof q));
    }
    if ((task->queue = strdup(queue)) == NULL)
        return tdm__error_code(err, TDM_ENOMEM);

    for (size_t k = 0; k < row; k++) {
        const tdm_plan_task *o = &p->tasks[k];
        if (strcmp(o->name, task->name) == 0 && strcmp(o->team, task->team) == 0) {
            char q[64];
            return tdm__error_field(err, TDM_EINVAL, "name",
                                    ROW_FMT "task %s of team \"%s\" is already on line %zu "
                                            "(merge the two rows, or rename one)",
                                    file, task->line, "name", show(task->name, q, sizeof q),
                                    task->team, o->line);
        }
    }

    tdm_error terr = {0};
    rc = tdm_plan_classify(task->name, task->description, task->tags, task->minutes, task->per_week,
                           &task->verdict, &terr);
    if (rc == TDM_ENOMEM)
        return tdm__error_code(err, rc);
    if (rc != 0)
        return tdm__error_field(err, rc, "tags", ROW_FMT "%s", file, task->line, "tags",
                                terr.message);
    return assign_slug(p, row) == 0 ? 0 : tdm__error_code(err, TDM_ENOMEM);
}

int tdm_plan_from_table(const tdm_table *table, tdm_plan **out, tdm_error *err)
{
    *out = NULL;
    tdm__error_clear(err);
    size_t cols[N_COLUMNS] = {0};
    int have[N_COLUMNS] = {0};
    int rc = check_columns(table, cols, have, err);
    if (rc != 0)
        return rc;
    size_t n = tdm_table_row_count(table);
    if (n == 0)
        return tdm__error(err, TDM_ENODATA,
                          "%s: no tasks (add one row per task under the header: %s)",
                          tdm_table_name(table), columns_help);
    if (n > MAX_TASKS)
        return tdm__error(err, TDM_ETOOBIG,
                          "%s: %zu tasks is more than a task audit takes (at most %d: audit "
                          "one team or department at a time)",
                          tdm_table_name(table), n, MAX_TASKS);
    tdm_plan *p = calloc(1, sizeof *p);
    if (p == NULL || (p->tasks = calloc(n, sizeof *p->tasks)) == NULL ||
        (p->source = strdup(tdm_table_name(table))) == NULL) {
        tdm_plan_free(p);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    for (size_t row = 0; row < n; row++) {
        p->n = row + 1; /* the row's strings are freed with the plan, even half-read */
        if ((rc = read_row(table, row, cols, have, p, err)) != 0) {
            tdm_plan_free(p);
            return rc;
        }
    }
    *out = p;
    return 0;
}

const char *tdm_plan_source(const tdm_plan *plan)
{
    return plan->source;
}

size_t tdm_plan_task_count(const tdm_plan *plan)
{
    return plan->n;
}

const tdm_plan_task *tdm_plan_task_at(const tdm_plan *plan, size_t i)
{
    return i < plan->n ? &plan->tasks[i] : NULL;
}

void tdm_plan_split_get(const tdm_plan *plan, tdm_plan_split *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < plan->n; i++) {
        const tdm_plan_task *t = &plan->tasks[i];
        out->bucket[t->verdict.bucket].tasks++;
        out->bucket[t->verdict.bucket].hours += t->weekly_hours;
        out->tasks++;
        out->hours += t->weekly_hours;
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(plan->tasks[k].team, t->team) == 0;
        out->teams += !seen;
    }
    for (int b = 0; b < TDM_PLAN_BUCKETS; b++) {
        out->bucket[b].share_tasks =
            out->tasks ? (double)out->bucket[b].tasks / (double)out->tasks : 0;
        out->bucket[b].share_hours = out->hours > 0 ? out->bucket[b].hours / out->hours : 0;
    }
}

/* ---- skeletons ----------------------------------------------------------------------------- */

/* A growable text buffer with a hard cap (a skeleton is a few kilobytes). */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
} sbuf;

#define SKELETON_MAX ((size_t)64 << 10)

static void sb_add(sbuf *b, const char *fmt, ...) TDM_PRINTF(2, 3);

static void sb_add(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->s == NULL || b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *s = cap <= SKELETON_MAX ? realloc(b->s, cap) : NULL;
        if (s == NULL) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* `s` as a YAML double-quoted scalar: quotes, backslashes and control characters escaped. */
static void sb_quoted(sbuf *b, const char *s)
{
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_add(b, "\\%c", *p);
        else if (*p == '\n')
            sb_add(b, "\\n");
        else if (*p == '\t')
            sb_add(b, "\\t");
        else if (*p == '\r')
            sb_add(b, "\\r");
        else if (*p < 0x20 || *p == 0x7f)
            sb_add(b, "\\x%02x", *p);
        else
            sb_add(b, "%c", *p);
    }
    sb_add(b, "\"");
}

/* The signals of a verdict on one side, as "rules (check), data (invoice)". */
static void sb_signals(sbuf *b, const tdm_plan_verdict *v, int toward_ai)
{
    int first = 1;
    for (size_t i = 0; i < v->n_signals; i++) {
        const tdm_plan_signal *s = &v->signals[i];
        if (s->toward_ai != toward_ai)
            continue;
        sb_add(b, "%s%s +%d (%s)", first ? "" : ", ", s->name, s->weight, s->matched);
        first = 0;
    }
    if (first)
        sb_add(b, "none");
}

int tdm_plan_skeleton(const tdm_plan *plan, size_t i, char **yaml, tdm_error *err)
{
    *yaml = NULL;
    tdm__error_clear(err);
    if (i >= plan->n)
        return tdm__error(err, TDM_EINVAL, "no task %zu (the plan has %zu)", i, plan->n);
    const tdm_plan_task *t = &plan->tasks[i];
    const tdm_plan_verdict *v = &t->verdict;
    if (v->bucket == TDM_PLAN_HUMAN)
        return tdm__error(err, TDM_EINVAL,
                          "%s:%zu: task \"%s\" is human-only: it gets no process file",
                          plan->source, t->line, t->name);
    int ai = v->bucket == TDM_PLAN_AI;
    sbuf b = {0};
    sb_add(&b, "# A process file for the task \"%s\" of team %s,\n", t->name, t->team);
    sb_add(&b, "# written by the task audit (tandem plan %s, line %zu):\n", plan->source, t->line);
    sb_add(&b, "# %.6g minutes, %.6g times a week: %.2f hours a week.\n", t->minutes, t->per_week,
           t->weekly_hours);
    sb_add(&b, "# The audit put it in the %s bucket", ai ? "AI-only" : "hybrid");
    if (v->forced_by != NULL)
        sb_add(&b, " because of the tag %s", v->forced_by);
    sb_add(&b, ".\n#   toward AI (%d): ", v->ai_score);
    sb_signals(&b, v, 1);
    sb_add(&b, "\n#   toward people (%d): ", v->human_score);
    sb_signals(&b, v, 0);
    sb_add(&b, "\n");
    if (v->held_by != NULL)
        sb_add(&b, "# %s %s holds it at hybrid: a person decides every item.\n",
               strcmp(v->held_by, "sensitive") == 0 || strcmp(v->held_by, "regulated") == 0
                   ? "The tag"
                   : "A word of the group",
               v->held_by);
    sb_add(&b, "#\n"
               "# It is a skeleton: fill in every TODO, then check it with\n"
               "#   tandem process validate FILE\n"
               "# docs/process-file.md explains every key; docs/plan.md explains the audit.\n");
    sb_add(&b, "process: %s\n", t->slug);
    sb_add(&b, "description: ");
    sb_quoted(&b, t->description);
    sb_add(&b, "\nowner: process-owner@example.com  # TODO: the person accountable for this "
               "process and its outcome\n");
    sb_add(&b,
           "kpis:\n"
           "  - name: minutes_per_item\n"
           "    target: \"below %.6g\"  # TODO: the target you commit to; add the KPI the "
           "business cares about\n",
           t->minutes);
    sb_add(&b,
           "baseline:\n"
           "  minutes_per_item: %.6g  # from the task log: a person's minutes per item today\n"
           "  error_rate: %g  # TODO: a placeholder; measure the share of items handled "
           "wrongly today\n",
           t->minutes, TDM_PLAN_DEFAULT_ERROR);
    sb_add(&b, "steps:\n"
               "  - id: main  # TODO: name the step (a-z, 0-9, _ and -)\n");
    if (ai)
        sb_add(&b,
               "    allocation: ai  # the AI decides alone inside its guardrails; the rest goes "
               "to a person\n");
    else
        sb_add(&b, "    allocation: hybrid  # the AI proposes, a person confirms or corrects "
                   "every item\n");
    sb_add(&b, "    owner: step-owner@example.com  # TODO: the person accountable for this step\n"
               "    inputs: [text]  # TODO: the item fields the AI reads (text: an item's free "
               "text)\n"
               "    output:\n"
               "      field: outcome  # TODO: the name of the step's answer, also its column in "
               "training data\n"
               "      # labels: [first, second]  # TODO: the possible answers (else the "
               "training data's)\n"
               "    guardrails:\n");
    if (ai)
        sb_add(&b, "      # A conservative risk budget: at most 1%% wrong among the decisions "
                   "the AI makes\n"
                   "      # alone, certified with 95%% confidence on human-checked data.\n");
    else
        sb_add(&b, "      # A conservative risk budget, for the day this step becomes ai: at most "
                   "1%% wrong\n"
                   "      # among the decisions the AI makes alone, certified with 95%% "
                   "confidence.\n");
    sb_add(&b, "      max_error: 0.01\n"
               "      confidence: 0.95\n");
    if (ai)
        sb_add(&b, "      audit_sample: 0.05  # people check 5%% of the AI's decisions anyway\n");
    sb_add(&b,
           "      # review_when:  # TODO: cases that always go to a person, like\n"
           "      #   - 'text contains \"complaint\"'\n"
           "      queue: %s  # the team's queue\n"
           "      escalation_queue: %s.leads  # TODO: where escalated items go\n"
           "      sla_minutes: 1440  # TODO: how soon a queued item must be done\n",
           t->queue, t->queue);
    if (b.failed) {
        free(b.s);
        return tdm__error_code(err, TDM_ENOMEM);
    }

    /* The skeleton must be a valid process file: check it as `tandem process validate` does. */
    tdm_process *proc = NULL;
    tdm_error perr = {0};
    char name[128];
    snprintf(name, sizeof name, "%s.yaml", t->slug);
    int rc = tdm_process_parse(b.s, b.len, name, &proc, &perr);
    tdm_process_free(proc);
    if (rc != 0) {
        free(b.s);
        TDM_ASSERT(rc == TDM_ENOMEM);
        return tdm__error(err, rc,
                          "%s:%zu: the skeleton of task \"%s\" is not a valid process "
                          "file (a bug in tandem plan): %s",
                          plan->source, t->line, t->name, perr.message);
    }
    *yaml = b.s;
    return 0;
}
