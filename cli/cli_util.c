// cli_util.c: strict flag values and the output checks shared by every command (cli_util.h).
#include "cli/cli_util.h"
#include "data/tokenizer.h"
#include "kernels/kernels.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int flag_error(const char *cmd) {
    fprintf(stderr, "hyp %s: %s\n", cmd, hyp_last_error());
    return -1;
}
int cli_int(const char *cmd, const char *flag, const char *text, int lo, int hi, int *out) {
    return hyp_parse_int(flag, text, lo, hi, out) ? flag_error(cmd) : 0;
}
int cli_long(const char *cmd, const char *flag, const char *text, long lo, long hi, long *out) {
    return hyp_parse_long(flag, text, lo, hi, out) ? flag_error(cmd) : 0;
}
int cli_u64(const char *cmd, const char *flag, const char *text, uint64_t *out) {
    return hyp_parse_u64(flag, text, out) ? flag_error(cmd) : 0;
}
int cli_double(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out) {
    return hyp_parse_f64(flag, text, lo, hi, out) ? flag_error(cmd) : 0;
}

int cli_device(const char *cmd, const char *flag, const char *text, Device *out) {
    if (!strcmp(text, "cpu")) *out = HYP_CPU;
    else if (!strcmp(text, "cuda")) *out = HYP_CUDA;
    else {
        fprintf(stderr, "hyp %s: %s: expected cpu or cuda, got \"%s\"\n", cmd, flag, text);
        return -1;
    }
    if (*out == HYP_CUDA && !hyp_cuda_available()) {
        fprintf(stderr, "hyp %s: %s cuda, but no GPU is usable: %s\n", cmd, flag, hyp_cuda_why_unavailable());
        return -1;
    }
    return 0;
}

void cli_bad_option(const char *cmd, const char *arg, const char *value_flags) {
    size_t n = strlen(arg);
    bool known = false;
    for (const char *p = value_flags; p && *p && !known;) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        known = len == n && !strncmp(p, arg, n);
        p = sp ? sp + 1 : p + len;
    }
    if (known) fprintf(stderr, "hyp %s: %s needs a value\n", cmd, arg);
    else if (arg[0] == '-') fprintf(stderr, "hyp %s: unknown option '%s'\n", cmd, arg);
    else fprintf(stderr, "hyp %s: unexpected argument '%s' (expected options only)\n", cmd, arg);
}

void cli_usage(FILE *out, const char *cmd, const char *synopsis, const CliFlag *flags, int n) {
    fprintf(out, "usage: hyp %s %s\n", cmd, synopsis);
    for (int i = 0; i < n; i++) {
        if (!flags[i].help) continue;
        char left[64];
        if (!*flags[i].name) snprintf(left, sizeof left, "%s", flags[i].meta);   // the positional row
        else snprintf(left, sizeof left, "%s%s%s", flags[i].name, flags[i].meta ? " " : "", flags[i].meta ? flags[i].meta : "");
        fprintf(out, "  %-22s %s\n", left, flags[i].help);
    }
}

// Stores one flag's value (text NULL for a switch); -1 after printing.
static int set_flag(const char *cmd, const CliFlag *f, const char *text) {
    switch (f->kind) {
    case FLAG_SWITCH: *(bool *)f->dst = true; return 0;
    case FLAG_STR: *(const char **)f->dst = text; return 0;
    case FLAG_INT: return cli_int(cmd, f->name, text, (int)f->lo, (int)f->hi, f->dst);
    case FLAG_LONG:   // a bound of LONG_MAX does not convert back from double exactly
        return cli_long(cmd, f->name, text, f->lo <= (double)LONG_MIN ? LONG_MIN : (long)f->lo,
                        f->hi >= (double)LONG_MAX ? LONG_MAX : (long)f->hi, f->dst);
    case FLAG_U64: return cli_u64(cmd, f->name, text, f->dst);
    case FLAG_DOUBLE: return cli_double(cmd, f->name, text, f->lo, f->hi, f->dst);
    case FLAG_DEVICE: return cli_device(cmd, f->name, text ? text : f->fixed, f->dst);
    case FLAG_LIST: {
        CliList *l = f->dst;
        l->v[l->n++] = text;
        return 0;
    }
    case FLAG_CHOICE: {
        size_t n = strlen(text);
        int k = 0;
        for (const char *p = f->meta;; k++) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && !strncmp(p, text, n)) { *(int *)f->dst = k; return 0; }
            if (!bar) break;
            p = bar + 1;
        }
        fprintf(stderr, "hyp %s: %s: expected one of %s, got \"%s\"\n", cmd, f->name, f->meta, text);
        return -1;
    }
    }
    return -1;
}

static bool takes_value(const CliFlag *f) { return f->kind != FLAG_SWITCH && !(f->kind == FLAG_DEVICE && f->fixed); }

int cli_parse(const char *cmd, const char *synopsis, const CliFlag *flags, int n, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_usage(stdout, cmd, synopsis, flags, n);
            return CLI_HELP;
        }
        const CliFlag *f = NULL;
        const char *attached = NULL;   // --name=value
        for (int j = 0; j < n && !f; j++) {
            size_t len = strlen(flags[j].name);
            if (!len) {   // the positional row takes what does not look like an option
                if (a[0] != '-') f = &flags[j], attached = a;
            } else if (!strcmp(a, flags[j].name)) f = &flags[j];
            else if (!strncmp(a, flags[j].name, len) && a[len] == '=' && takes_value(&flags[j])) {
                f = &flags[j];
                attached = a + len + 1;
            }
        }
        if (f && !*f->name && f->kind == FLAG_STR && *(const char **)f->dst) {
            fprintf(stderr, "hyp %s: unexpected argument '%s' (%s given already)\n", cmd, a, f->meta);
        } else if (!f) {
            if (a[0] == '-') fprintf(stderr, "hyp %s: unknown option '%s'\n", cmd, a);
            else fprintf(stderr, "hyp %s: unexpected argument '%s' (expected options only)\n", cmd, a);
        } else if (takes_value(f) && !attached && i + 1 >= argc) {
            fprintf(stderr, "hyp %s: %s needs a value\n", cmd, a);
        } else if (!set_flag(cmd, f, !takes_value(f) ? NULL : attached ? attached : argv[++i])) {
            continue;
        }
        cli_usage(stderr, cmd, synopsis, flags, n);
        return 1;
    }
    return 0;
}

// The directory part of a path ("." for a bare name); trailing slashes ignored. malloc'd.
static char *parent_of(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    while (n > 0 && path[n - 1] != '/') n--;
    if (n == 0) return hyp_strdup(".");
    while (n > 1 && path[n - 1] == '/') n--;
    char *d = hyp_malloc(n + 1);
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

// The absolute path with symlinks resolved; for a path that does not exist, its
// resolved directory plus its last component. NULL when neither resolves. malloc'd.
static char *resolve(const char *path) {
    char buf[PATH_MAX];
    if (realpath(path, buf)) return hyp_strdup(buf);
    char *dir = parent_of(path);
    char *r = NULL;
    if (realpath(dir, buf)) {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && path[b - 1] != '/') b--;
        size_t need = strlen(buf) + (n - b) + 2;
        r = hyp_malloc(need);
        snprintf(r, need, "%s/%.*s", strcmp(buf, "/") ? buf : "", (int)(n - b), path + b);
    }
    free(dir);
    return r;
}

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ra = resolve(a), *rb = resolve(b);
    bool same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    return same;
}

// A file can be created in dir: the only test that also holds for root, read-only
// mounts and ACLs. 0 or errno.
static int dir_writable(const char *dir) {
    size_t n = strlen(dir) + 32;
    char *probe = hyp_malloc(n);
    snprintf(probe, n, "%s/.hyp-write-check-XXXXXX", dir);
    int fd = mkstemp(probe), err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        close(fd);
        unlink(probe);
    }
    free(probe);
    return err;
}

static const char *kind_of(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) || S_ISBLK(m) ? "a device" : S_ISFIFO(m) ? "a pipe"
         : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

static int check_one_output(const char *cmd, const CliPath *o) {
    if (!*o->path) {
        fprintf(stderr, "hyp %s: %s: expected a path, got an empty string\n", cmd, o->flag);
        return -1;
    }
    struct stat st;
    bool exists = stat(o->path, &st) == 0;
    if (exists && o->dir && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "hyp %s: %s %s: expected a directory, found %s\n", cmd, o->flag, o->path,
                S_ISREG(st.st_mode) ? "a file" : kind_of(st.st_mode));
        return -1;
    }
    if (exists && !o->dir && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "hyp %s: %s %s: expected a regular file to write, found %s (outputs are written to a "
                "temporary file and renamed over it)\n", cmd, o->flag, o->path, kind_of(st.st_mode));
        return -1;
    }
    // An existing output directory is written into; otherwise the file or directory is
    // created in its parent.
    char *dir = exists && o->dir ? hyp_strdup(o->path) : parent_of(o->path);
    struct stat sd;
    int rc = 0;
    if (stat(dir, &sd) != 0) {
        fprintf(stderr, "hyp %s: %s %s: directory %s does not exist (%s)\n", cmd, o->flag, o->path, dir,
                strerror(errno));
        rc = -1;
    } else if (!S_ISDIR(sd.st_mode)) {
        fprintf(stderr, "hyp %s: %s %s: %s is not a directory\n", cmd, o->flag, o->path, dir);
        rc = -1;
    } else {
        int err = dir_writable(dir);
        if (err) {
            fprintf(stderr, "hyp %s: %s %s: cannot create files in directory %s: %s\n", cmd, o->flag, o->path, dir,
                    strerror(err));
            rc = -1;
        }
    }
    free(dir);
    return rc;
}

int cli_check_paths(const char *cmd, const CliPath *in, int n_in, const CliPath *out, int n_out) {
    for (int j = 0; j < n_out; j++) {
        const CliPath *o = &out[j];
        if (!o->path) continue;
        size_t n = strlen(o->path);
        while (n > 1 && o->path[n - 1] == '/') n--;
        char *tmp = hyp_malloc(n + 5);
        memcpy(tmp, o->path, n);
        memcpy(tmp + n, ".tmp", 5);
        for (int i = 0; i < n_in; i++) {
            if (!in[i].path || !*in[i].path) continue;
            const char *why = same_file(o->path, in[i].path) ? "is the same file as"
                            : same_file(tmp, in[i].path) ? "would be written through its temporary file, which is"
                            : NULL;
            if (why) {
                fprintf(stderr, "hyp %s: %s %s %s %s %s: refusing to overwrite an input (choose another output)\n",
                        cmd, o->flag, o->path, why, in[i].flag, in[i].path);
                free(tmp);
                return -1;
            }
        }
        free(tmp);
        for (int k = 0; k < j; k++)
            if (out[k].path && *o->path && same_file(o->path, out[k].path)) {
                fprintf(stderr, "hyp %s: %s %s and %s %s are the same file: expected two different outputs\n", cmd,
                        out[k].flag, out[k].path, o->flag, o->path);
                return -1;
            }
        if (check_one_output(cmd, o)) return -1;
    }
    return 0;
}

int cli_check_vocab(const char *cmd, const Tokenizer *tok, const char *vocab, int rows) {
    int n = tok_vocab_size(tok);
    if (n <= rows) return 0;
    if (vocab)
        fprintf(stderr, "hyp %s: --vocab %s has %d tokens but the model's embedding table has %d rows: expected the "
                "model's own vocabulary (or one of at most %d tokens)\n", cmd, vocab, n, rows, rows);
    else
        fprintf(stderr, "hyp %s: the model file's vocabulary has %d tokens but its embedding table only %d rows "
                "(a damaged or mismatched model file)\n", cmd, n, rows);
    return -1;
}
