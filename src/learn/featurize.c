/*
 * featurize.c — hashed features for text, categorical and numeric fields.
 *
 * NOTES ON THE DESIGN OF THE FEATURIZER
 *
 * An item becomes a sparse vector over a table of 2^hash_bits rows. Each field contributes
 * tokens; a token's row is its xxHash (XXH3, seeded by the field name and token kind) masked
 * to the table, so no vocabulary is stored and a word first seen in production still gets a
 * row. Collisions are rare at the default 2^18 rows and cost little accuracy.
 *
 *   text         normalised (NFKC, case-folded, "lumped" punctuation; pure ASCII takes a
 *                fast path that only lower-cases), cut to max_text_bytes at a character
 *                boundary, split into words (runs of letters, marks and digits; an apostrophe
 *                between letters stays inside the word). Tokens: every word, every pair of
 *                adjacent words in order (bigram), every unordered pair of words at most
 *                PAIR_WINDOW apart ("lost ... card" and "card ... lost" alike, so a sentence
 *                and its rephrasing share them), and every character 2..5-gram of the word
 *                padded with one space on each side (so prefixes and suffixes are marked).
 *                Character n-grams count code points, not bytes.
 *   categorical  one token field=value (the value trimmed of surrounding blanks).
 *   numeric      one token for the learned quantile bin the value falls in, plus one token
 *                whose weight is the value centred and scaled, clipped to [-4, 4].
 *   missing      one token field=(missing), for every kind.
 *
 * Weights. Tokens are grouped in blocks: per text field one block of word tokens and one of
 * character tokens, and one block for all categorical and numeric fields. Inside a block,
 * repeated rows merge; a text token seen c times weighs 1 + ln c (sublinear term frequency)
 * and each block is scaled to unit L2 norm, so long texts, many character n-grams or many
 * structured fields cannot drown the rest. Finally rows shared between blocks merge and the
 * whole vector is scaled to unit norm.
 *
 * Caps. At most max_text_bytes of each text value are read and at most max_features tokens
 * are generated per item, so the cost of a 10 MB field is the cost of its cap. The scratch
 * is sized from the caps once; featurising never allocates afterwards, except that
 * non-ASCII text is normalised by utf8proc into a buffer it allocates.
 */
#define _POSIX_C_SOURCE 200809L

#include "learn/featurize.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <utf8proc.h>
#include <xxhash.h>

#include "util/util.h"

/* Salts separate the token kinds of one field in hash space. */
#define SALT_WORD   0x77u
#define SALT_BIGRAM 0xb16aull
#define SALT_PAIR   0x9a1eull

/* Words within this distance of each other also form an unordered pair token. */
#define PAIR_WINDOW  4
#define SALT_CHAR    0xc4a5ull
#define SALT_CAT     0xca7ull
#define SALT_BIN     0xb1ull
#define SALT_NUM     0x4e4dull
#define SALT_MISSING 0x3155ull

#define BLOCK_TEXT  1 /* counts become 1 + ln(count) */
#define BLOCK_PLAIN 0

struct tdm__fscratch {
    size_t cap;      /* max tokens */
    size_t text_cap; /* bytes of normalised text kept */
    char *text;      /* normalised text (ASCII path) */
    uint32_t *cp;    /* code point offsets of the current padded word */
    char *pad;       /* the current word with a space on each side */

    uint32_t *raw_index; /* tokens of the current block */
    float *raw_value;
    size_t n_raw;
    size_t n_total; /* tokens generated for the whole item */

    uint32_t set_mask; /* open-addressing map row -> position, cleared by stamping */
    uint32_t *set_key;
    uint32_t *set_pos;
    uint32_t *set_stamp;
    uint32_t stamp;

    uint32_t *out_index; /* the item's merged vector */
    float *out_value;
    size_t n_out;
    size_t n_out_text; /* entries of out_* that came from text fields */
    uint32_t *tmp_index;
    float *tmp_value;

    /* Naming mode (tdm__featurize_names): rows wanted and where their names go. */
    const uint32_t *want;
    size_t n_want;
    char (*names)[TDM_FEATURE_NAME_MAX];
};

/* ASCII letters and digits, without the locale lookups of <ctype.h> (which also make the
 * tokenizer depend on the process's locale). */
static inline int ascii_alnum(unsigned c)
{
    return (c - '0' < 10u) || ((c | 0x20u) - 'a' < 26u);
}

static inline unsigned char ascii_lower(unsigned char c)
{
    return (unsigned char)((unsigned)c - 'A' < 26u ? c + 32 : c);
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint32_t row_of(const tdm__featurizer *fz, uint64_t h)
{
    return (uint32_t)(h ^ (h >> 32)) & fz->mask;
}

/* ------------------------------------------------------------------------------------------ */
/* Setup                                                                                      */
/* ------------------------------------------------------------------------------------------ */

int tdm__featurizer_init(tdm__featurizer *fz, const tdm_field_spec *fields, size_t n_fields,
                         unsigned hash_bits, size_t max_text_bytes, size_t max_features)
{
    memset(fz, 0, sizeof *fz);
    if (hash_bits < 8 || hash_bits > 26 || max_text_bytes == 0 || max_features == 0 ||
        max_features > (1u << 24) || max_text_bytes > (1u << 26))
        return TDM_EINVAL;
    fz->hash_bits = hash_bits;
    fz->mask = (uint32_t)((1u << hash_bits) - 1);
    fz->max_text_bytes = max_text_bytes;
    fz->max_features = max_features;
    fz->fields = calloc(n_fields ? n_fields : 1, sizeof *fz->fields);
    if (fz->fields == NULL)
        return TDM_ENOMEM;
    fz->n_fields = n_fields;
    for (size_t i = 0; i < n_fields; i++) {
        tdm__field *f = &fz->fields[i];
        if (fields[i].name == NULL) {
            tdm__featurizer_release(fz);
            return TDM_EINVAL;
        }
        f->name = strdup(fields[i].name);
        if (f->name == NULL) {
            tdm__featurizer_release(fz);
            return TDM_ENOMEM;
        }
        f->kind = fields[i].kind;
        f->seed = XXH3_64bits(f->name, strlen(f->name));
        f->center = 0;
        f->scale = 1;
    }
    return 0;
}

void tdm__featurizer_release(tdm__featurizer *fz)
{
    if (fz->fields != NULL) {
        for (size_t i = 0; i < fz->n_fields; i++)
            free(fz->fields[i].name);
        free(fz->fields);
    }
    memset(fz, 0, sizeof *fz);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int tdm__featurizer_fit_numeric(tdm__featurizer *fz, size_t fi, double *v, size_t n)
{
    tdm__field *f = &fz->fields[fi];
    TDM_ASSERT(f->kind == TDM_FIELD_NUMERIC);
    f->n_edges = 0;
    f->center = 0;
    f->scale = 1;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);

    /* Edges at the interior quantiles k / (edges + 1), keeping only distinct ones, so a
     * field with few distinct values gets one bin per value. */
    for (unsigned k = 1; k <= TDM__NUMERIC_EDGES_MAX; k++) {
        size_t at = (size_t)((double)k * (double)n / (TDM__NUMERIC_EDGES_MAX + 1));
        if (at >= n)
            at = n - 1;
        double e = v[at];
        if (e <= v[0])
            continue; /* an edge at the minimum would leave the first bin empty */
        if (f->n_edges > 0 && e <= f->edges[f->n_edges - 1])
            continue;
        f->edges[f->n_edges++] = e;
    }
    f->center = v[n / 2];
    double q1 = v[n / 4], q3 = v[(3 * n) / 4];
    double spread = (q3 - q1) / 1.349;
    if (!(spread > 0)) {
        double mean = 0, m2 = 0;
        for (size_t i = 0; i < n; i++)
            mean += v[i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
            m2 += (v[i] - mean) * (v[i] - mean);
        spread = sqrt(m2 / (double)n);
    }
    f->scale = spread > 0 ? spread : 1;
    return 0;
}

int tdm__parse_number(const char *data, size_t len, double *out)
{
    char buf[64];
    while (len > 0 && isspace((unsigned char)*data)) {
        data++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)data[len - 1]))
        len--;
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, data, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double x = strtod(buf, &end);
    if (end != buf + len || errno == ERANGE || !isfinite(x))
        return -1;
    *out = x;
    return 0;
}

tdm__fscratch *tdm__fscratch_new(const tdm__featurizer *fz)
{
    tdm__fscratch *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cap = fz->max_features;
    s->text_cap = fz->max_text_bytes;
    uint32_t set_size = 64;
    while (set_size < 2 * s->cap)
        set_size <<= 1;
    s->set_mask = set_size - 1;
    s->text = malloc(s->text_cap + 1);
    s->cp = malloc((s->text_cap + 3) * sizeof *s->cp);
    s->pad = malloc(s->text_cap + 3);
    s->raw_index = malloc(s->cap * sizeof *s->raw_index);
    s->raw_value = malloc(s->cap * sizeof *s->raw_value);
    s->set_key = malloc(set_size * sizeof *s->set_key);
    s->set_pos = malloc(set_size * sizeof *s->set_pos);
    s->set_stamp = calloc(set_size, sizeof *s->set_stamp);
    s->out_index = malloc(s->cap * sizeof *s->out_index);
    s->out_value = malloc(s->cap * sizeof *s->out_value);
    s->tmp_index = malloc(s->cap * sizeof *s->tmp_index);
    s->tmp_value = malloc(s->cap * sizeof *s->tmp_value);
    if (!s->text || !s->cp || !s->pad || !s->raw_index || !s->raw_value || !s->set_key ||
        !s->set_pos || !s->set_stamp || !s->out_index || !s->out_value || !s->tmp_index ||
        !s->tmp_value) {
        tdm__fscratch_free(s);
        return NULL;
    }
    return s;
}

void tdm__fscratch_free(tdm__fscratch *s)
{
    if (s == NULL)
        return;
    free(s->text);
    free(s->cp);
    free(s->pad);
    free(s->raw_index);
    free(s->raw_value);
    free(s->set_key);
    free(s->set_pos);
    free(s->set_stamp);
    free(s->out_index);
    free(s->out_value);
    free(s->tmp_index);
    free(s->tmp_value);
    free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Token sink                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Starts a new stamp for the row map; on wrap-around the stamps are cleared for real. */
static void set_clear(tdm__fscratch *s)
{
    if (++s->stamp == 0) {
        memset(s->set_stamp, 0, (size_t)(s->set_mask + 1) * sizeof *s->set_stamp);
        s->stamp = 1;
    }
}

/* Returns the slot for `row`; *fresh is 1 when the row was not in the map yet. */
static inline uint32_t set_slot(tdm__fscratch *s, uint32_t row, int *fresh)
{
    uint32_t h = (uint32_t)((row * 0x9e3779b1u) >> 7) & s->set_mask;
    for (;;) {
        if (s->set_stamp[h] != s->stamp) {
            s->set_stamp[h] = s->stamp;
            s->set_key[h] = row;
            *fresh = 1;
            return h;
        }
        if (s->set_key[h] == row) {
            *fresh = 0;
            return h;
        }
        h = (h + 1) & s->set_mask;
    }
}

/* Writes the name of a token into every wanted slot whose row it hashes to. */
static void name_field_token(tdm__fscratch *s, uint32_t row, const char *fmt, const char *field,
                             const char *tok, size_t toklen)
{
    char buf[TDM_FEATURE_NAME_MAX];
    for (size_t i = 0; i < s->n_want; i++) {
        if (s->want[i] != row || s->names[i][0] != '\0')
            continue;
        snprintf(buf, sizeof buf, fmt, field, (int)(toklen > 48 ? 48 : toklen), tok);
        memcpy(s->names[i], buf, sizeof buf);
    }
}

/* Adds one token to the current block. Returns 0, or 1 when the item's cap is reached. */
static inline int emit(tdm__fscratch *s, uint32_t row, float value)
{
    if (s->n_total >= s->cap)
        return 1;
    s->n_total++;
    s->raw_index[s->n_raw] = row;
    s->raw_value[s->n_raw] = value;
    s->n_raw++;
    return 0;
}

/*
 * Closes the current block: merges repeated rows, applies the sublinear weight to text
 * blocks, scales the block to unit norm and appends it to the item's vector.
 */
static void flush_block(tdm__fscratch *s, int kind)
{
    if (s->n_raw == 0)
        return;
    set_clear(s);
    size_t first = s->n_out, n = 0;
    for (size_t i = 0; i < s->n_raw; i++) {
        int fresh;
        uint32_t h = set_slot(s, s->raw_index[i], &fresh);
        if (fresh) {
            s->set_pos[h] = (uint32_t)n;
            s->out_index[first + n] = s->raw_index[i];
            s->out_value[first + n] = s->raw_value[i];
            n++;
        } else {
            s->out_value[first + s->set_pos[h]] += s->raw_value[i];
        }
    }
    double norm = 0;
    for (size_t i = first; i < first + n; i++) {
        float v = s->out_value[i];
        if (kind == BLOCK_TEXT && v != 1.0f) /* most tokens occur once: 1 + ln 1 = 1 */
            v = 1.0f + logf(v);
        s->out_value[i] = v;
        norm += (double)v * v;
    }
    if (norm > 0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (size_t i = first; i < first + n; i++)
            s->out_value[i] *= inv;
    }
    s->n_out += n;
    s->n_raw = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Text                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int is_word_cp(int32_t cp)
{
    if (cp < 0x80)
        return ascii_alnum((unsigned)cp);
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0 if it is not valid. */
static size_t utf8_valid_len(const unsigned char *p, size_t n)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate(p, (utf8proc_ssize_t)(n > 4 ? 4 : n), &cp);
    return r > 0 ? (size_t)r : 0;
}

/*
 * Normalises `v` into text the tokenizer can walk: returns a pointer to `len` bytes (in the
 * scratch, or in *owned which the caller frees). Invalid UTF-8 bytes become spaces.
 */
static const char *normalise_text(const tdm__featurizer *fz, tdm__fscratch *s, const tdm_value *v,
                                  size_t *len, char **owned)
{
    const unsigned char *in = (const unsigned char *)v->data;
    size_t n = v->len < fz->max_text_bytes ? v->len : fz->max_text_bytes;
    *owned = NULL;

    /* Cut at a character boundary: never split a multi-byte sequence. */
    if (n < v->len)
        while (n > 0 && (in[n] & 0xC0) == 0x80)
            n--;

    size_t i = 0;
    while (i < n && in[i] < 0x80) {
        s->text[i] = (char)ascii_lower(in[i]);
        i++;
    }
    if (i == n) {
        *len = n;
        return s->text;
    }

    /* Non-ASCII: replace invalid sequences, then NFKC + case fold + lump with utf8proc. */
    unsigned char *clean = malloc(n + 1);
    if (clean == NULL)
        return NULL;
    size_t m = 0;
    for (size_t j = 0; j < n;) {
        if (in[j] < 0x80) {
            clean[m++] = in[j++];
            continue;
        }
        size_t k = utf8_valid_len(in + j, n - j);
        if (k == 0) {
            clean[m++] = ' ';
            j++;
        } else {
            memcpy(clean + m, in + j, k);
            m += k;
            j += k;
        }
    }
    clean[m] = '\0';
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t r = utf8proc_map(clean, (utf8proc_ssize_t)m, &mapped,
                                      UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                          UTF8PROC_IGNORE | UTF8PROC_CASEFOLD | UTF8PROC_LUMP);
    free(clean);
    if (r < 0) {
        free(mapped);
        return NULL;
    }
    *owned = (char *)mapped;
    /* Normalisation can lengthen text; keep the cap on what the tokenizer walks. */
    size_t out = (size_t)r;
    if (out > fz->max_text_bytes) {
        out = fz->max_text_bytes;
        while (out > 0 && ((unsigned char)mapped[out] & 0xC0) == 0x80)
            out--;
    }
    *len = out;
    return (const char *)mapped;
}

typedef struct text_ctx {
    const tdm__featurizer *fz;
    tdm__fscratch *s;
    const tdm__field *field;
    int naming;
} text_ctx;

/*
 * Emits the character 2..5-grams of one word, padded with a space on each side. The padded
 * word is in s->pad (plen bytes) with code point offsets in s->cp (ncp + 1 entries).
 */
static int emit_char_grams(text_ctx *c, size_t ncp)
{
    tdm__fscratch *s = c->s;
    uint64_t seed = c->field->seed ^ SALT_CHAR;
    for (size_t n = 2; n <= 5; n++) {
        if (n > ncp)
            break;
        for (size_t i = 0; i + n <= ncp; i++) {
            const char *g = s->pad + s->cp[i];
            size_t glen = s->cp[i + n] - s->cp[i];
            uint32_t row = row_of(c->fz, XXH3_64bits_withSeed(g, glen, seed));
            if (c->naming)
                name_field_token(s, row, "%s~\"%.*s\"", c->field->name, g, glen);
            if (emit(s, row, 1.0f))
                return 1;
        }
    }
    return 0;
}

/*
 * Emits the tokens of the n-th word (at t + start, wlen bytes): the word, the bigram with
 * the word before it, and the unordered pairs with the words up to PAIR_WINDOW before it;
 * then records it among the recent words. Returns 1 when the item's cap is reached.
 */
static int emit_word_tokens(text_ctx *c, const char *t, size_t start, size_t wlen, uint64_t *recent,
                            size_t *recent_start, size_t *recent_len, size_t n)
{
    tdm__fscratch *s = c->s;
    const tdm__field *field = c->field;
    uint64_t h = XXH3_64bits_withSeed(t + start, wlen, field->seed ^ SALT_WORD);
    uint32_t row = row_of(c->fz, h);
    if (c->naming)
        name_field_token(s, row, "%s:\"%.*s\"", field->name, t + start, wlen);
    int full = emit(s, row, 1.0f);
    for (size_t back = 1; back <= PAIR_WINDOW && back <= n && !full; back++) {
        size_t at = (n - back) % PAIR_WINDOW;
        uint64_t p = recent[at];
        if (back == 1) {
            row = row_of(c->fz, mix64(p * 31 + h + SALT_BIGRAM));
            if (c->naming)
                name_field_token(s, row, "%s:\"%.*s\"", field->name, t + recent_start[at],
                                 start + wlen - recent_start[at]);
            full = emit(s, row, 1.0f);
            if (full)
                break;
        }
        uint64_t lo = p < h ? p : h, hi = p < h ? h : p;
        row = row_of(c->fz, mix64(lo * 131 + hi + SALT_PAIR));
        if (c->naming) {
            char pair[TDM_FEATURE_NAME_MAX];
            snprintf(pair, sizeof pair, "\"%.*s\"+\"%.*s\"",
                     (int)(recent_len[at] > 24 ? 24 : recent_len[at]), t + recent_start[at],
                     (int)(wlen > 24 ? 24 : wlen), t + start);
            name_field_token(s, row, "%s:%.*s", field->name, pair, strlen(pair));
        }
        full = emit(s, row, 1.0f);
    }
    size_t at = n % PAIR_WINDOW;
    recent[at] = h;
    recent_start[at] = start;
    recent_len[at] = wlen;
    return full;
}

/*
 * Tokenises one text value into two blocks: words and word pairs, then character n-grams.
 * The word block is flushed before the character block is generated, which needs the words
 * again, so the text is walked twice.
 */
static int featurize_text(const tdm__featurizer *fz, tdm__fscratch *s, const tdm__field *field,
                          const tdm_value *v, int naming)
{
    size_t len;
    char *owned;
    const char *t = normalise_text(fz, s, v, &len, &owned);
    if (t == NULL)
        return TDM_ENOMEM;
    text_ctx c = {fz, s, field, naming};
    const uint8_t *u = (const uint8_t *)t;

    for (int pass = 0; pass < 2; pass++) {
        /* The last PAIR_WINDOW words: their hashes, and where they are for naming. */
        uint64_t recent[PAIR_WINDOW];
        size_t recent_start[PAIR_WINDOW], recent_len[PAIR_WINDOW];
        size_t n_words = 0;
        int full = 0;
        size_t i = 0;
        while (i < len && !full) {
            /* Skip to the start of a word. */
            utf8proc_int32_t cp;
            utf8proc_ssize_t k;
            if (u[i] < 0x80) {
                if (!ascii_alnum(u[i])) {
                    i++;
                    continue;
                }
            } else {
                k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
                if (k <= 0) {
                    i++;
                    continue;
                }
                if (!is_word_cp(cp)) {
                    i += (size_t)k;
                    continue;
                }
            }
            /* Collect the word: s->pad = ' ' word ' ', s->cp = code point offsets. */
            size_t start = i, ncp = 0;
            s->pad[0] = ' ';
            s->cp[ncp++] = 0;
            while (i < len) {
                size_t step;
                if (u[i] < 0x80) {
                    int ok = ascii_alnum(u[i]) ||
                             (u[i] == '\'' && i > start && i + 1 < len && ascii_alnum(u[i + 1]));
                    if (!ok)
                        break;
                    step = 1;
                } else {
                    k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &cp);
                    if (k <= 0 || !is_word_cp(cp))
                        break;
                    step = (size_t)k;
                }
                s->cp[ncp++] = (uint32_t)(1 + i - start);
                i += step;
            }
            size_t wlen = i - start;
            memcpy(s->pad + 1, t + start, wlen);
            s->pad[1 + wlen] = ' ';
            s->cp[ncp++] = (uint32_t)(1 + wlen);
            s->cp[ncp] = (uint32_t)(2 + wlen);

            if (pass == 0) {
                full = emit_word_tokens(&c, t, start, wlen, recent, recent_start, recent_len,
                                        n_words++);
            } else {
                full = emit_char_grams(&c, ncp);
            }
        }
        flush_block(s, BLOCK_TEXT);
    }
    free(owned);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Structured fields                                                                          */
/* ------------------------------------------------------------------------------------------ */

static void featurize_categorical(const tdm__featurizer *fz, tdm__fscratch *s, const tdm__field *f,
                                  const tdm_value *v, int naming)
{
    const char *p = v->data;
    size_t n = v->len;
    while (n > 0 && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    if (n > fz->max_text_bytes)
        n = fz->max_text_bytes;
    uint32_t row = row_of(fz, XXH3_64bits_withSeed(p, n, f->seed ^ SALT_CAT));
    if (naming)
        name_field_token(s, row, "%s=%.*s", f->name, p, n);
    emit(s, row, 1.0f);
}

static void featurize_missing(const tdm__featurizer *fz, tdm__fscratch *s, const tdm__field *f,
                              int naming)
{
    uint32_t row = row_of(fz, mix64(f->seed ^ SALT_MISSING));
    if (naming)
        name_field_token(s, row, "%s (missing)%.*s", f->name, "", 0);
    emit(s, row, 1.0f);
}

static void featurize_numeric(const tdm__featurizer *fz, tdm__fscratch *s, const tdm__field *f,
                              const tdm_value *v, int naming)
{
    double x;
    if (tdm__parse_number(v->data, v->len, &x) != 0) {
        featurize_missing(fz, s, f, naming);
        return;
    }
    uint32_t bin = 0;
    while (bin < f->n_edges && x >= f->edges[bin])
        bin++;
    uint32_t row = row_of(fz, mix64(f->seed ^ SALT_BIN ^ ((uint64_t)bin << 8)));
    if (naming) {
        char lo[32] = "-inf", hi[32] = "inf";
        if (bin > 0)
            snprintf(lo, sizeof lo, "%g", f->edges[bin - 1]);
        if (bin < f->n_edges)
            snprintf(hi, sizeof hi, "%g", f->edges[bin]);
        char range[72];
        snprintf(range, sizeof range, " in [%s, %s)", lo, hi);
        name_field_token(s, row, "%s%.*s", f->name, range, strlen(range));
    }
    if (emit(s, row, 1.0f))
        return;
    double z = (x - f->center) / f->scale;
    z = z < -4 ? -4 : z > 4 ? 4 : z;
    if (z != 0) {
        row = row_of(fz, mix64(f->seed ^ SALT_NUM));
        if (naming)
            name_field_token(s, row, "%s (value)%.*s", f->name, "", 0);
        emit(s, row, (float)z);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Items                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static int run(const tdm__featurizer *fz, const tdm_value *values, tdm__fscratch *s, int naming)
{
    s->n_raw = 0;
    s->n_out = 0;
    s->n_total = 0;
    for (size_t i = 0; i < fz->n_fields; i++) {
        const tdm__field *f = &fz->fields[i];
        if (f->kind != TDM_FIELD_TEXT)
            continue;
        if (values[i].data == NULL || values[i].len == 0) {
            featurize_missing(fz, s, f, naming);
            flush_block(s, BLOCK_PLAIN);
            continue;
        }
        int rc = featurize_text(fz, s, f, &values[i], naming);
        if (rc != 0)
            return rc;
    }
    s->n_out_text = s->n_out;
    for (size_t i = 0; i < fz->n_fields; i++) {
        const tdm__field *f = &fz->fields[i];
        const tdm_value *v = &values[i];
        int empty = v->data == NULL || v->len == 0;
        if (f->kind == TDM_FIELD_TEXT)
            continue;
        if (empty)
            featurize_missing(fz, s, f, naming);
        else if (f->kind == TDM_FIELD_NUMERIC)
            featurize_numeric(fz, s, f, v, naming);
        else
            featurize_categorical(fz, s, f, v, naming);
    }
    flush_block(s, BLOCK_PLAIN);
    return 0;
}

int tdm__featurize(const tdm__featurizer *fz, const tdm_value *values, tdm__fscratch *s,
                   tdm__fvec *out)
{
    s->n_want = 0;
    int rc = run(fz, values, s, 0);
    if (rc != 0)
        return rc;

    /* Merge rows that two blocks share, then scale the whole vector to unit norm. Merging
     * keeps first appearances in order, so the text features still come first. */
    set_clear(s);
    size_t n = 0, n_text = 0;
    double norm = 0;
    for (size_t i = 0; i < s->n_out; i++) {
        if (i == s->n_out_text)
            n_text = n;
        int fresh;
        uint32_t h = set_slot(s, s->out_index[i], &fresh);
        if (fresh) {
            s->set_pos[h] = (uint32_t)n;
            s->tmp_index[n] = s->out_index[i];
            s->tmp_value[n] = s->out_value[i];
            n++;
        } else {
            s->tmp_value[s->set_pos[h]] += s->out_value[i];
        }
    }
    for (size_t i = 0; i < n; i++)
        norm += (double)s->tmp_value[i] * s->tmp_value[i];
    if (norm > 0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (size_t i = 0; i < n; i++)
            s->tmp_value[i] *= inv;
    }
    if (s->n_out_text >= s->n_out)
        n_text = n;
    out->index = s->tmp_index;
    out->value = s->tmp_value;
    out->n = n;
    out->n_text = n_text;
    return 0;
}

int tdm__featurize_names(const tdm__featurizer *fz, const tdm_value *values, tdm__fscratch *s,
                         const uint32_t *rows, size_t n_rows, char (*names)[TDM_FEATURE_NAME_MAX])
{
    for (size_t i = 0; i < n_rows; i++)
        names[i][0] = '\0';
    s->want = rows;
    s->n_want = n_rows;
    s->names = names;
    int rc = run(fz, values, s, 1);
    s->n_want = 0;
    s->want = NULL;
    s->names = NULL;
    return rc;
}
