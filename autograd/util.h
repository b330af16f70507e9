// util.h: errors, checked allocation, timing. The lowest layer: every other file may include it.
#ifndef HYP_UTIL_H
#define HYP_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef HYP_VERSION
#define HYP_VERSION "0.0.0"
#endif

// Programmer errors and unrecoverable states: print "hyp: file:line: message" and exit(2).
void hyp_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
#define HYP_FATAL(...) hyp_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define HYP_CHECK(cond, ...) do { if (!(cond)) HYP_FATAL(__VA_ARGS__); } while (0)

// Recoverable errors (bad input files): readers return an error value and leave a
// message here, e.g. "qrels.txt:12: expected 4 columns, got 3". Thread-local.
void hyp_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *hyp_last_error(void);
void hyp_clear_error(void);

void *hyp_malloc(size_t n);              // never returns NULL
void *hyp_calloc(size_t n, size_t size);
void *hyp_realloc(void *p, size_t n);
char *hyp_strdup(const char *s);

double hyp_now(void);                    // monotonic seconds

// Strict numbers, for every command-line flag and config value. The whole text must be
// the number: no leading or trailing space, no trailing junk ("10x"), no exponent or
// fraction for an integer ("1e3", "2.5"), decimal only (no hex, inf or nan), and it must
// lie in [lo, hi]; overflow is a range error. On error: -1, *out untouched, and
// hyp_last_error() = "WHAT: expected an integer, got \"10x\"" or
// "WHAT: 0 is out of range: expected an integer >= 1" ("WHAT: " left out when what is
// NULL). what names the flag or key as the user wrote it ("--k", "train.lr").
int hyp_parse_i64(const char *what, const char *text, int64_t lo, int64_t hi, int64_t *out);
int hyp_parse_int(const char *what, const char *text, int lo, int hi, int *out);
int hyp_parse_long(const char *what, const char *text, long lo, long hi, long *out);
int hyp_parse_u64(const char *what, const char *text, uint64_t *out);   // 0 .. UINT64_MAX (seeds)
int hyp_parse_f64(const char *what, const char *text, double lo, double hi, double *out);   // finite

#ifdef __cplusplus
}
#endif
#endif
