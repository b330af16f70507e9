// cli_util.h: what every `hyp` command checks before it does any work (issue 12):
// strict flag values, and outputs that cannot destroy an input or fail after the work.
#ifndef HYP_CLI_UTIL_H
#define HYP_CLI_UTIL_H
#include "autograd/util.h"
#include "autograd/tensor.h"
#include <stdio.h>

// A flag's value through the strict parser (autograd/util.h); on error prints
// "hyp CMD: FLAG: expected ..., got ..." and returns -1.
int cli_int(const char *cmd, const char *flag, const char *text, int lo, int hi, int *out);
int cli_long(const char *cmd, const char *flag, const char *text, long lo, long hi, long *out);
int cli_u64(const char *cmd, const char *flag, const char *text, uint64_t *out);
int cli_double(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out);

// --device cpu|cuda (and --cuda, its alias, as "cuda"): -1 after printing for another
// value or for cuda without a usable GPU (the reason given).
int cli_device(const char *cmd, const char *flag, const char *text, Device *out);

// The message for an argument a command's loop did not take: "ARG needs a value" when ARG
// is one of value_flags (space-separated, e.g. "--model --out") and nothing follows it,
// else "unknown option 'ARG'" (or "unexpected argument" for one without a dash).
void cli_bad_option(const char *cmd, const char *arg, const char *value_flags);

// ---- one table of flags per command: parsing, value checks and the help text come from it.
typedef enum { FLAG_SWITCH, FLAG_STR, FLAG_INT, FLAG_LONG, FLAG_U64, FLAG_DOUBLE, FLAG_DEVICE, FLAG_CHOICE, FLAG_LIST } CliFlagKind;
typedef struct { const char **v; int n; } CliList;   // FLAG_LIST: every value in order (v: room for argc)
typedef struct CliFlag {
    const char *name;   // "--neighbors"; "" for the row that takes the positional arguments
                        // (STR: one, LIST: any number; meta names them in the help)
    CliFlagKind kind;
    void *dst;          // bool* (SWITCH: set true), const char ** (STR), int*, long*, uint64_t*, double*, Device*,
                        // int* (CHOICE: the index of the value in meta's "a|b|c"), CliList* (LIST: repeatable)
    double lo, hi;      // INT, LONG, DOUBLE: the accepted range (inclusive)
    const char *meta;   // the value in the help ("N", "FILE"); for a DEVICE row without a value,
                        // NULL and `fixed` names the device it stands for ("--cuda": "cuda")
    const char *help;   // one line; NULL: an alias (parsed, not listed)
    const char *fixed;
} CliFlag;
#define CLI_FLAGS(t) (t), (int)(sizeof(t) / sizeof *(t))
#define CLI_HELP 2   // cli_parse's result after --help / -h printed the usage on stdout
// Parses argv[1..argc) against the table (each flag may repeat; the last value wins, a LIST
// keeps them all; a value may also be attached: --set=K=V). 0 when
// every argument was a flag of the table; CLI_HELP after printing the usage on stdout for
// --help or -h; 1 after one message (unknown option, missing or bad value) and the usage on
// stderr. synopsis: the usage line after "hyp CMD ".
int cli_parse(const char *cmd, const char *synopsis, const CliFlag *flags, int n, int argc, char **argv);
// "usage: hyp CMD SYNOPSIS" and one line per listed flag.
void cli_usage(FILE *out, const char *cmd, const char *synopsis, const CliFlag *flags, int n);

// A file or directory named by a flag. path NULL = not given (skipped).
typedef struct {
    const char *flag;   // "--out", "--corpus"
    const char *path;
    bool dir;           // an output directory (hyp demo/pretokenize --out) rather than a file
} CliPath;
#define CLI_FILE(flag, path) {(flag), (path), false}
#define CLI_DIR(flag, path) {(flag), (path), true}

// Before any work: no output is the same file as any input (device + inode after
// resolving symlinks; for an output that does not exist yet, the resolved path), nor
// is OUT.tmp (writers create it and rename it over OUT), nor are two outputs the same;
// each output's directory exists and is writable (a file is created there and removed);
// an existing file output is a regular file (not a directory or a device). 0, or -1 after
// printing "hyp CMD: ..." naming the flags and paths.
int cli_check_paths(const char *cmd, const CliPath *in, int n_in, const CliPath *out, int n_out);

// A tokenizer whose ids fit the model's embedding table (rows): every id < rows. vocab is
// the --vocab path (NULL: the model file's own vocabulary). 0, or -1 after printing.
struct Tokenizer;
int cli_check_vocab(const char *cmd, const struct Tokenizer *tok, const char *vocab, int rows);

#endif
