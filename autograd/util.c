#include "autograd/util.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>

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

// ---------------------------------------------------------------- strict numbers
static void num_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void num_error(const char *what, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (what && *what) hyp_set_error("%s: %s", what, msg);
    else hyp_set_error("%s", msg);
}

// Quote at most 64 characters of the user's text in messages.
#define TXT(s) (strlen(s) > 64 ? 64 : (int)strlen(s)), (s), (strlen(s) > 64 ? "..." : "")

static void int_range_text(char *buf, size_t n, int64_t lo, int64_t hi, bool is_unsigned) {
    bool no_hi = hi >= (int64_t)9e18 || hi == INT32_MAX, no_lo = lo == INT64_MIN || lo == INT32_MIN;
    if (is_unsigned) snprintf(buf, n, "a non-negative integer");
    else if (no_hi && no_lo) snprintf(buf, n, "an integer");
    else if (lo == hi) snprintf(buf, n, "the integer %lld", (long long)lo);
    else if (no_hi) snprintf(buf, n, "an integer >= %lld", (long long)lo);
    else if (no_lo) snprintf(buf, n, "an integer <= %lld", (long long)hi);
    else snprintf(buf, n, "an integer from %lld to %lld", (long long)lo, (long long)hi);
}

// Syntax of a base-10 integer: [+-]digits, nothing else.
static bool int_syntax(const char *s) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!*p) return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

int hyp_parse_i64(const char *what, const char *text, int64_t lo, int64_t hi, int64_t *out) {
    char want[96];
    int_range_text(want, sizeof want, lo, hi, false);
    if (!text || !int_syntax(text)) {
        num_error(what, "expected %s, got \"%.*s%s\"", want, TXT(text ? text : ""));
        return -1;
    }
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || *end || v < lo || v > hi) {
        num_error(what, "%.*s%s is out of range: expected %s", TXT(text), want);
        return -1;
    }
    *out = v;
    return 0;
}

int hyp_parse_int(const char *what, const char *text, int lo, int hi, int *out) {
    int64_t v;
    if (hyp_parse_i64(what, text, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int hyp_parse_long(const char *what, const char *text, long lo, long hi, long *out) {
    int64_t v;
    if (hyp_parse_i64(what, text, lo, hi, &v)) return -1;
    *out = (long)v;
    return 0;
}

int hyp_parse_u64(const char *what, const char *text, uint64_t *out) {
    if (!text || !int_syntax(text) || *text == '-') {
        num_error(what, "expected a non-negative integer, got \"%.*s%s\"", TXT(text ? text : ""));
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno == ERANGE || *end) {
        num_error(what, "%.*s%s is out of range: expected a non-negative integer below 2^64", TXT(text));
        return -1;
    }
    *out = v;
    return 0;
}

int hyp_parse_f64(const char *what, const char *text, double lo, double hi, double *out) {
    // [+-] digits [. digits] [e [+-] digits], at least one digit before the exponent
    const char *p = text ? text : "";
    bool ok = true;
    if (*p == '+' || *p == '-') p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9') { p++; digits++; }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') { p++; digits++; }
    }
    if (!digits) ok = false;
    if (ok && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) ok = false;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p) ok = false;
    if (!ok) {
        num_error(what, "expected a finite number, got \"%.*s%s\"", TXT(text ? text : ""));
        return -1;
    }
    errno = 0;
    double v = strtod(text, NULL);
    if (!isfinite(v)) {
        num_error(what, "%.*s%s is out of range: expected a finite number", TXT(text));
        return -1;
    }
    if (v < lo || v > hi) {
        if (hi >= DBL_MAX) num_error(what, "%.*s%s is out of range: expected a number >= %g", TXT(text), lo);
        else if (lo <= -DBL_MAX) num_error(what, "%.*s%s is out of range: expected a number <= %g", TXT(text), hi);
        else num_error(what, "%.*s%s is out of range: expected a number from %g to %g", TXT(text), lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}
