/*
 * tandem.h — the public C API of libtandem, the human-AI collaboration engine.
 *
 * Everything a program may rely on is declared under include/tandem/; anything else is
 * private and may change without notice. Conventions that hold for the whole API:
 *
 *   - Functions return int: 0 (TDM_OK) on success, a negative TDM_E* code on failure.
 *     tdm_strerror() names a code. A function that fails leaves no half-made object behind.
 *   - Functions that can fail on outside input take an optional tdm_error *; when it is not
 *     NULL it receives the code and a message naming the place and the fix, for example
 *     "train.csv:14: column \"text\": unterminated quoted field (close the quote)".
 *   - Objects are opaque handles. `_new` allocates, `_free` releases an object and everything
 *     it holds. Strings and buffers the API hands to the caller are freed with tdm_free().
 */
#ifndef TANDEM_TANDEM_H
#define TANDEM_TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_VERSION_MAJOR  0
#define TDM_VERSION_MINOR  1
#define TDM_VERSION_PATCH  0
#define TDM_VERSION_STRING "0.1.0"

/* Error codes. Every failing function returns one of these (all negative). */
enum tdm_errcode {
    TDM_OK = 0,
    TDM_ENOMEM = -1,      /* out of memory */
    TDM_EINVAL = -2,      /* invalid argument or option */
    TDM_EIO = -3,         /* reading or writing a file failed */
    TDM_EPARSE = -4,      /* malformed input (CSV, JSON, ...) */
    TDM_ECORRUPT = -5,    /* a file is corrupt, truncated or not a tandem file */
    TDM_EVERSION = -6,    /* a file has a format version this build cannot read */
    TDM_ENOTFOUND = -7,   /* a named thing (column, label, ...) does not exist */
    TDM_ETOOBIG = -8,     /* input exceeds a configured limit */
    TDM_ENODATA = -9,     /* not enough data to do what was asked */
    TDM_ECONFLICT = -10,  /* the thing changed or was taken meanwhile (HTTP 409) */
    TDM_EBUSY = -11,      /* the store is busy or shutting down; try again */
    TDM_EAUTH = -12,      /* no valid credentials: unknown or revoked token (HTTP 401) */
    TDM_EFORBIDDEN = -13, /* valid credentials, but not allowed to do this (HTTP 403) */
};

/* Returns a static, human-readable name for an error code ("out of memory"). Never NULL. */
const char *tdm_strerror(int code);

#define TDM_ERROR_MESSAGE_MAX 512

/*
 * Details of a failure, filled by functions that take a `tdm_error *`. The caller owns the
 * struct (usually on the stack); nothing in it needs freeing. `message` is always
 * NUL-terminated and empty when no detail is known.
 */
typedef struct tdm_error {
    int code;
    char message[TDM_ERROR_MESSAGE_MAX];
    char field[64]; /* the input field at fault ("steps[0].allocation", "value"), or "" */
} tdm_error;

/* Frees memory that a tandem function handed to the caller. NULL is ignored. */
void tdm_free(void *ptr);

/* Returns the library version as "MAJOR.MINOR.PATCH". */
const char *tdm_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_TANDEM_H */
