/*
 * assets.h — the workspace's files (web/), compiled into the binary by cmake/embed.cmake.
 * The server answers GET / with index.html and GET /ui/NAME with the file NAME.
 */
#ifndef TDM_HTTP_ASSETS_H
#define TDM_HTTP_ASSETS_H

#include <stddef.h>

typedef struct tdm__asset {
    const char *name; /* "app.js"; NULL ends the table */
    const char *type; /* its Content-Type */
    const unsigned char *data;
    size_t len;
    const char *etag; /* a quoted strong validator made from the bytes */
} tdm__asset;

/* Every embedded file, ended by an entry whose name is NULL. */
extern const tdm__asset tdm__assets[];

#endif /* TDM_HTTP_ASSETS_H */
