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

// ---------------------------------------------------------------- text input (issue 12)
// Every text reader (corpus and query files, qrels, runs, training JSONL, the tokenize
// command's input) goes through this bounded line reader. It streams: memory is the
// longest line, never the file. Rules, the same for every reader:
//   * a line longer than HYP_MAX_LINE bytes (16 MiB, without its '\n') is an error
//     "name:LINE: line longer than 16 MiB ...", so an endless input (/dev/zero, a pipe
//     without newlines) stops after at most 16 MiB;
//   * a UTF-8 byte-order mark (EF BB BF) at the very start of the input is dropped
//     (Windows editors write one; left in, it would become part of the first id);
//   * a NUL byte is an error ("name:LINE: NUL byte ...", a binary file) unless
//     HYP_LINES_ALLOW_NUL is given (the tokenizer treats NUL as a character).
// Lines are returned without their '\n' (a '\r' before it is kept: the readers differ);
// a last line without '\n' is returned like any other.
#define HYP_MAX_LINE ((size_t)16 << 20)
#define HYP_LINES_ALLOW_NUL 1u

typedef struct HypLines HypLines;
// NULL + "path: cannot open: reason".
HypLines *hyp_lines_open(const char *path, unsigned flags);
// Over an open stream (stdin); name is used in messages; f is not closed by hyp_lines_close.
HypLines *hyp_lines_from_file(FILE *f, const char *name, unsigned flags);
// 1: *line is the next line (NUL-terminated, *len bytes; valid until the next call, and
// writable); 0: end of input; -1: error in hyp_last_error() naming the input and line.
int hyp_lines_next(HypLines *r, char **line, size_t *len);
long hyp_lines_lineno(const HypLines *r);      // number of the line last returned (1-based)
uint64_t hyp_lines_bytes(const HypLines *r);   // bytes consumed so far (newlines and BOM too)
const char *hyp_lines_name(const HypLines *r);
void hyp_lines_set_max(HypLines *r, size_t max_line);   // a smaller limit (tests)
void hyp_lines_close(HypLines *r);

// Drops a leading UTF-8 BOM from a whole text in memory: returns the new start (s or s + 3)
// and shortens *len. For readers of whole small files (vocab, config).
const char *hyp_skip_bom(const char *s, size_t *len);
// Read a whole small text file (malloc'd, NUL-terminated; a leading UTF-8 BOM dropped: config.json,
// the INI config, vocab files). NULL + error (unreadable, larger than max_bytes).
char *hyp_read_text_file(const char *path, size_t max_bytes, size_t *len);

// Query and document ids end up as fields of whitespace-separated TREC lines, so an id
// must be non-empty and free of whitespace (' ', \t, \n, \r, \v, \f). NULL when id is
// fine, else the reason ("is empty", "contains whitespace (...)") for a message.
const char *hyp_id_problem(const char *id);

// Index of the first NaN or infinite value of x (n values), or n when all are finite; *count
// (may be NULL) gets how many are non-finite. For the checks that refuse NaN weights,
// embeddings and scores (issue 12): the all-finite case is one vectorised pass.
size_t hyp_find_nonfinite(const float *x, size_t n, size_t *count);
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
