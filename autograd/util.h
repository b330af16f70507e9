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

#ifdef __cplusplus
}
#endif
#endif
