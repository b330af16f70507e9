#include "autograd/util.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void hyp_fatal_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hyp: %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    exit(2);
}

static _Thread_local char g_err[1024];

void hyp_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}
const char *hyp_last_error(void) { return g_err[0] ? g_err : "unknown error"; }
void hyp_clear_error(void) { g_err[0] = 0; }

void *hyp_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    HYP_CHECK(p, "out of memory allocating %zu bytes", n);
    return p;
}
void *hyp_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    HYP_CHECK(p, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}
void *hyp_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    HYP_CHECK(q, "out of memory reallocating %zu bytes", n);
    return q;
}
char *hyp_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = hyp_malloc(n);
    memcpy(d, s, n);
    return d;
}
double hyp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
