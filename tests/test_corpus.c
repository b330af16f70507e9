// Corpus / query files: TSV and JSONL, and one clear error naming file and line.
#include "tests/testlib.h"
#include "data/corpus.h"
#include <string.h>
#include <unistd.h>
#include "tests/bounded_child.h"

static char *write_tmp(const char *suffix, const char *content) {
    static char path[128];
    snprintf(path, sizeof path, "/tmp/hyp_corpus_%d_%ld%s", (int)getpid(), random(), suffix);
    FILE *f = fopen(path, "wb");
    fputs(content, f);
    fclose(f);
    return path;
}

// Each file must fail with an error naming it and containing want.
typedef struct { const char *suffix, *content, *want; } BadCase;
static void expect_bad_cases(const BadCase *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *p = write_tmp(cases[i].suffix, cases[i].content);
        cr_assert_null(corpus_read(p), "case %zu should fail", i);
        cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), cases[i].want),
                  "case %zu: got '%s', want '%s'", i, hyp_last_error(), cases[i].want);
        unlink(p);
    }
}

Test(corpus, tsv_and_jsonl) {
    char *p = write_tmp(".tsv", "d1\tThe first passage.\n\nd2\t  spaced text \r\n");
    Corpus *c = corpus_read(p);
    cr_assert_not_null(c, "%s", hyp_last_error());
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->ids[1], "d2");
    cr_assert_str_eq(c->texts[1], "spaced text");
    corpus_free(c);
    unlink(p);
    p = write_tmp(".jsonl", "{\"_id\": \"a\", \"title\": \"T\", \"text\": \"body\"}\n{\"id\": 7, \"contents\": \"x\"}\n");
    c = corpus_read(p);
    cr_assert_not_null(c, "%s", hyp_last_error());
    cr_assert_str_eq(c->texts[0], "T body");
    cr_assert_str_eq(c->ids[1], "7");
    corpus_free(c);
    unlink(p);
}

Test(corpus, real_topics_file) {
    Corpus *c = corpus_read(SHARED_DATA "/msmarco/topics.dl19-passage.txt");
    cr_assert_not_null(c, "%s", hyp_last_error());
    cr_assert_eq(c->n, 43);
    corpus_free(c);
}

Test(corpus, errors_name_file_and_line) {
    BadCase cases[] = {
        {".tsv", "d1\tok\nno tab here\n", ":2: expected id<TAB>text"},
        {".tsv", "d1\tok\nd1\tagain\n", ":2: duplicate id 'd1' (first on line 1)"},
        {".tsv", "\tno id\n", ":1: empty id"},
        {".jsonl", "{\"id\": \"a\", \"text\": \"t\"}\n{\"id\": \"b\"\n", ":2: invalid JSON"},
        {".jsonl", "{\"id\": \"a\"}\n", ":1: missing \"text\""},
        {".jsonl", "[1, 2]\n", ":1: invalid JSON: not an object"},
    };
    expect_bad_cases(cases, sizeof cases / sizeof cases[0]);
    cr_assert_null(corpus_read("/nonexistent/c.tsv"));
    cr_assert(strstr(hyp_last_error(), "/nonexistent/c.tsv"));
}

// ---------------------------------------------------------------- issue 12
// A UTF-8 BOM stayed in the first id ("\xef\xbb\xbfd0"), so that id never matched qrels.
Test(corpus, leading_bom_is_not_part_of_the_first_id) {
    char *p = write_tmp(".tsv", "\xEF\xBB\xBF" "d0\tfirst\nd1\tsecond\n");
    Corpus *c = corpus_read(p);
    cr_assert_not_null(c, "%s", hyp_last_error());
    cr_assert_str_eq(c->ids[0], "d0");
    corpus_free(c);
    unlink(p);
    // and the BOM does not hide the JSONL format from the first-byte sniffing
    p = write_tmp(".txt", "\xEF\xBB\xBF{\"id\": \"j0\", \"text\": \"t\"}\n");
    c = corpus_read(p);
    cr_assert_not_null(c, "%s", hyp_last_error());
    cr_assert_str_eq(c->ids[0], "j0");
    corpus_free(c);
    unlink(p);
}

// Ids with whitespace produced 7-field run lines; wrong JSON types said "missing".
Test(corpus, ids_with_whitespace_and_wrong_json_types) {
    BadCase cases[] = {
        {".tsv", "q1\tok\nq 2\ttext\n", ":2: id 'q 2' contains whitespace"},
        {".jsonl", "{\"id\": \"a b\", \"text\": \"t\"}\n", ":1: id 'a b' contains whitespace"},
        {".jsonl", "{\"id\": \"a\", \"text\": 5}\n", ":1: \"text\" is an integer, expected a string"},
        {".jsonl", "{\"id\": \"a\", \"contents\": [\"x\"]}\n", ":1: \"contents\" is an array, expected a string"},
        {".jsonl", "{\"id\": 1.5, \"text\": \"t\"}\n", ":1: \"id\" is a number, expected a string or an integer"},
        {".jsonl", "{\"id\": \"a\", \"text\": \"t\", \"title\": 3}\n", ":1: \"title\" is an integer, expected a string"},
    };
    expect_bad_cases(cases, sizeof cases / sizeof cases[0]);
    char *p = write_tmp(".jsonl", "{\"id\": \"a\", \"text\": \"t\", \"title\": null}\n");   // null title: none
    Corpus *c = corpus_read(p);
    cr_assert_not_null(c, "%s", hyp_last_error());
    cr_assert_str_eq(c->texts[0], "t");
    corpus_free(c);
    unlink(p);
}

// `encode --corpus /dev/zero` grew to 2.9 GB: now one error, at once, in bounded memory
// (a child under a 1 GiB address-space limit and an alarm, so a regression cannot hang CI).
static bool dev_zero_corpus(void *arg) {
    (void)arg;
    return !corpus_read("/dev/zero") && strstr(hyp_last_error(), "/dev/zero:1: NUL byte");
}
Test(corpus, endless_input_fails_fast) {
    expect_in_bounded_child(dev_zero_corpus, NULL, "corpus_read(/dev/zero)");
    // a long line without NUL: the 16 MiB limit names the line
    size_t n = ((size_t)16 << 20) + 10;
    char *big = hyp_malloc(n + 1);
    memcpy(big, "d1\tok\nd2\t", 9);
    memset(big + 9, 'a', n - 9);
    big[n] = 0;
    char *p = write_tmp(".tsv", big);
    free(big);
    cr_assert_null(corpus_read(p));
    cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), ":2: line longer than 16 MiB"), "%s", hyp_last_error());
    unlink(p);
}
