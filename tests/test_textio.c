// test_textio.c: the shared text-input rules of issue 12 (autograd/util.h): the bounded
// line reader (16 MiB lines, BOM, NUL, streaming) and the id check.
#include "tests/testlib.h"
#include "tests/bounded_child.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_tmp(const char *content, size_t n) {
    static char path[128];
    snprintf(path, sizeof path, "/tmp/hyp_textio_%d_%ld.txt", (int)getpid(), random());
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(content, 1, n, f), n);
    fclose(f);
    return path;
}

// Every line of path joined with '|' (at most cap bytes); the reader's return code of the end.
static int read_all(const char *path, unsigned flags, size_t max, char *out, size_t cap) {
    HypLines *r = hyp_lines_open(path, flags);
    cr_assert(r, "%s", hyp_last_error());
    if (max) hyp_lines_set_max(r, max);
    out[0] = 0;
    char *line;
    size_t len;
    int got;
    while ((got = hyp_lines_next(r, &line, &len)) > 0) {
        cr_assert_eq(strlen(line), len);
        cr_assert_eq(hyp_lines_lineno(r) > 0, true);
        strncat(out, line, cap - strlen(out) - 2);
        strcat(out, "|");
    }
    hyp_lines_close(r);
    return got;
}

Test(lines, splits_keeps_cr_and_last_line_without_newline) {
    char got[256];
    const char txt[] = "a b\n\nc\r\nlast";
    char *p = write_tmp(txt, sizeof txt - 1);
    cr_assert_eq(read_all(p, 0, 0, got, sizeof got), 0);
    cr_assert_str_eq(got, "a b||c\r|last|");
    unlink(p);
    p = write_tmp("", 0);
    cr_assert_eq(read_all(p, 0, 0, got, sizeof got), 0);
    cr_assert_str_eq(got, "");
    unlink(p);
}

// Issue 12.5: a leading UTF-8 BOM stayed in the first id.
Test(lines, leading_bom_is_dropped_only_at_the_start) {
    char got[256];
    const char txt[] = "\xEF\xBB\xBFq1\tx\n\xEF\xBB\xBFq2\n";
    char *p = write_tmp(txt, sizeof txt - 1);
    cr_assert_eq(read_all(p, 0, 0, got, sizeof got), 0);
    cr_assert_str_eq(got, "q1\tx|\xEF\xBB\xBFq2|");
    unlink(p);
    p = write_tmp("\xEF\xBB\xBF", 3);   // only a BOM: no line at all
    cr_assert_eq(read_all(p, 0, 0, got, sizeof got), 0);
    cr_assert_str_eq(got, "");
    unlink(p);
    const char *s = "\xEF\xBB\xBF" "abc", *t = "\xEF\xBB";
    size_t n = 6;
    cr_assert_eq(hyp_skip_bom(s, &n), s + 3);
    cr_assert_eq(n, 3);
    n = 2;
    cr_assert_eq(hyp_skip_bom(t, &n), t);   // a partial BOM is content
    cr_assert_eq(n, 2);
}

// Issue 12.3: lines longer than the limit are an error with file and line, found while
// streaming (a line that spans many reads), not after reading everything.
Test(lines, long_line_is_an_error_naming_file_and_line) {
    size_t n = 3 * 300000 + 20;
    char *txt = hyp_malloc(n);
    memcpy(txt, "ok\nfine\n", 8);
    memset(txt + 8, 'x', n - 8);
    char *p = write_tmp(txt, n);
    char got[256];
    cr_assert_eq(read_all(p, 0, 100000, got, sizeof got), -1);
    cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), ":3: line longer than 100000 bytes"), "%s",
              hyp_last_error());
    cr_assert_eq(read_all(p, 0, 0, got, sizeof got), 0, "%s", hyp_last_error());   // 16 MiB default: fine
    unlink(p);
    free(txt);
    char msg[64];
    snprintf(msg, sizeof msg, "%zu", HYP_MAX_LINE);
    cr_assert_eq(HYP_MAX_LINE, (size_t)16 << 20, "%s", msg);
}

Test(lines, nul_byte_is_an_error_unless_allowed) {
    const char txt[] = "a\nb\0c\n";
    char *p = write_tmp(txt, sizeof txt - 1);
    char got[256];
    cr_assert_eq(read_all(p, 0, 0, got, sizeof got), -1);
    cr_assert(strstr(hyp_last_error(), ":2: NUL byte at column 2"), "%s", hyp_last_error());
    HypLines *r = hyp_lines_open(p, HYP_LINES_ALLOW_NUL);
    char *line;
    size_t len;
    cr_assert_eq(hyp_lines_next(r, &line, &len), 1);
    cr_assert_eq(hyp_lines_next(r, &line, &len), 1);
    cr_assert_eq(len, 3);
    cr_assert(!memcmp(line, "b\0c", 3));
    cr_assert_eq(hyp_lines_next(r, &line, &len), 0);
    cr_assert_eq(hyp_lines_bytes(r), sizeof txt - 1);
    hyp_lines_close(r);
    unlink(p);
}

// /dev/zero: the reader stops at the first block (NUL), or after the line limit when NUL is
// allowed; in a bounded child, so a regression cannot take the machine.
static bool dev_zero_check(void *arg) {
    bool allow = *(bool *)arg;
    HypLines *r = hyp_lines_open("/dev/zero", allow ? HYP_LINES_ALLOW_NUL : 0);
    char *line;
    size_t len;
    int got = r ? hyp_lines_next(r, &line, &len) : 1;
    const char *want = allow ? "/dev/zero:1: line longer than 16 MiB" : "/dev/zero:1: NUL byte at column 1";
    return got == -1 && strstr(hyp_last_error(), want);
}
Test(lines, dev_zero_stops_fast_with_bounded_memory) {
    bool no = false, yes = true;
    expect_in_bounded_child(dev_zero_check, &no, "NUL refused");
    expect_in_bounded_child(dev_zero_check, &yes, "NUL allowed");
}

Test(ids, whitespace_and_empty_are_refused) {
    cr_assert_null(hyp_id_problem("q1"));
    cr_assert_null(hyp_id_problem("\xEF\xBB\xBFq1"));   // bytes are bytes: only the reader drops a BOM
    cr_assert_str_eq(hyp_id_problem(""), "is empty");
    const char *bad[] = {"q 1", "a\tb", "x\r", "\vy", "f\f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(hyp_id_problem(bad[i]) && strstr(hyp_id_problem(bad[i]), "whitespace"), "%zu", i);
}
