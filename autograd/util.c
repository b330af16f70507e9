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

// ---------------------------------------------------------------- text input (issue 12)
// The bounded line reader, the BOM rule, the id check and the finiteness scan (util.h).
#include <errno.h>
#include <math.h>

enum { LINES_BLOCK = 1 << 18 };   // bytes per read

struct HypLines {
    FILE *f;
    bool own;                     // fclose on close
    char *name;
    unsigned flags;
    size_t max;                   // longest accepted line, bytes without '\n'
    char *blk;                    // (LINES_BLOCK + 1) read buffer
    size_t pos, end;              // unread bytes blk[pos..end)
    char *acc;                    // a line that spans reads
    size_t acc_len, acc_cap;
    long lineno;
    uint64_t bytes;
    bool eof, bom_checked, failed;
};

static HypLines *lines_new(FILE *f, bool own, const char *name, unsigned flags) {
    HypLines *r = hyp_calloc(1, sizeof *r);
    r->f = f;
    r->own = own;
    r->name = hyp_strdup(name);
    r->flags = flags;
    r->max = HYP_MAX_LINE;
    r->blk = hyp_malloc(LINES_BLOCK + 1);
    return r;
}

HypLines *hyp_lines_open(const char *path, unsigned flags) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        hyp_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    return lines_new(f, true, path, flags);
}

HypLines *hyp_lines_from_file(FILE *f, const char *name, unsigned flags) { return lines_new(f, false, name, flags); }

void hyp_lines_set_max(HypLines *r, size_t max_line) { r->max = max_line; }
long hyp_lines_lineno(const HypLines *r) { return r->lineno; }
uint64_t hyp_lines_bytes(const HypLines *r) { return r->bytes; }
const char *hyp_lines_name(const HypLines *r) { return r->name; }

void hyp_lines_close(HypLines *r) {
    if (!r) return;
    if (r->own) fclose(r->f);
    free(r->name);
    free(r->blk);
    free(r->acc);
    free(r);
}

static void lines_size(char *out, size_t n, size_t bytes) {
    if (bytes >= ((size_t)1 << 20) && bytes % ((size_t)1 << 20) == 0) snprintf(out, n, "%zu MiB", bytes >> 20);
    else snprintf(out, n, "%zu bytes", bytes);
}

static int lines_fail_long(HypLines *r) {
    char lim[32];
    lines_size(lim, sizeof lim, r->max);
    hyp_set_error("%s:%ld: line longer than %s (the limit for one line of a text file; "
                  "a binary file, or one without newlines?)", r->name, r->lineno, lim);
    r->failed = true;
    return -1;
}

// Reads the next block; false at end of input or on an error (r->failed then).
static bool lines_fill(HypLines *r) {
    if (r->eof) return false;
    size_t got = fread(r->blk, 1, LINES_BLOCK, r->f);
    r->pos = 0;
    r->end = got;
    if (got == 0) {
        r->eof = true;
        if (ferror(r->f)) {
            hyp_set_error("%s:%ld: read error: %s", r->name, r->lineno + 1, strerror(errno ? errno : EIO));
            r->failed = true;
        }
        return false;
    }
    if (!r->bom_checked) {
        // The BOM may arrive split over short reads (a pipe): top up to 3 bytes first.
        while (r->end < 3 && !feof(r->f) && !ferror(r->f)) {
            size_t k = fread(r->blk + r->end, 1, LINES_BLOCK - r->end, r->f);
            if (k == 0) break;
            r->end += k;
        }
        r->bom_checked = true;
        if (r->end >= 3 && !memcmp(r->blk, "\xEF\xBB\xBF", 3)) {
            r->pos = 3;
            r->bytes += 3;
        }
    }
    return true;
}

static int lines_check_nul(HypLines *r, const char *s, size_t n, size_t at) {
    if (r->flags & HYP_LINES_ALLOW_NUL) return 0;
    const char *z = memchr(s, 0, n);
    if (!z) return 0;
    hyp_set_error("%s:%ld: NUL byte at column %zu (a binary file, not text?)", r->name, r->lineno,
                  at + (size_t)(z - s) + 1);
    r->failed = true;
    return -1;
}

int hyp_lines_next(HypLines *r, char **line, size_t *len) {
    if (r->failed) return -1;
    r->acc_len = 0;
    bool started = false;   // some byte of this line was seen
    for (;;) {
        if (r->pos == r->end && !lines_fill(r)) {
            if (r->failed) return -1;
            if (!started) return 0;
            // a last line without '\n'
            if (!r->acc) r->acc = hyp_malloc(r->acc_cap = 1);
            r->acc[r->acc_len] = 0;
            *line = r->acc;
            *len = r->acc_len;
            return 1;
        }
        char *s = r->blk + r->pos;
        size_t avail = r->end - r->pos;
        if (avail == 0) continue;   // a block that held only the BOM
        if (!started) { started = true; r->lineno++; }
        char *nl = memchr(s, '\n', avail);
        size_t seg = nl ? (size_t)(nl - s) : avail;
        if (r->acc_len + seg > r->max) return lines_fail_long(r);
        if (lines_check_nul(r, s, seg, r->acc_len)) return -1;
        r->bytes += seg + (nl ? 1 : 0);
        r->pos += seg + (nl ? 1 : 0);
        if (nl && r->acc_len == 0) {   // the whole line is in this block: no copy
            *nl = 0;
            *line = s;
            *len = seg;
            return 1;
        }
        if (r->acc_len + seg + 1 > r->acc_cap) {
            size_t cap = r->acc_cap ? r->acc_cap : 256;
            while (cap < r->acc_len + seg + 1) cap *= 2;
            r->acc = hyp_realloc(r->acc, r->acc_cap = cap);
        }
        memcpy(r->acc + r->acc_len, s, seg);
        r->acc_len += seg;
        if (nl) {
            r->acc[r->acc_len] = 0;
            *line = r->acc;
            *len = r->acc_len;
            return 1;
        }
    }
}

const char *hyp_skip_bom(const char *s, size_t *len) {
    if (*len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        *len -= 3;
        return s + 3;
    }
    return s;
}

const char *hyp_id_problem(const char *id) {
    if (!id[0]) return "is empty";
    for (const char *p = id; *p; p++)
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
            return "contains whitespace (ids are fields of whitespace-separated TREC run and qrels lines)";
    return NULL;
}

size_t hyp_find_nonfinite(const float *x, size_t n, size_t *count) {
    int any = 0;
    for (size_t i = 0; i < n; i++) any |= !isfinite(x[i]);
    if (count) *count = 0;
    if (!any) return n;
    size_t first = 0;
    while (isfinite(x[first])) first++;
    if (count)
        for (size_t i = first; i < n; i++) *count += !isfinite(x[i]);
    return first;
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

char *hyp_read_text_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { hyp_set_error("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    size_t cap = 4096, n = 0;
    char *s = hyp_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_bytes) { fclose(f); free(s); hyp_set_error("%s: larger than %zu bytes", path, max_bytes); return NULL; }
            cap *= 2;
            s = hyp_realloc(s, cap);
        }
        size_t r = fread(s + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) { free(s); hyp_set_error("%s: read error", path); return NULL; }
    if (n > max_bytes) { free(s); hyp_set_error("%s: larger than %zu bytes", path, max_bytes); return NULL; }
    size_t k = n;
    if (hyp_skip_bom(s, &k) != s) memmove(s, s + 3, n -= 3);   // a UTF-8 BOM (Windows editors) is not content
    s[n] = 0;
    if (len) *len = n;
    return s;
}
