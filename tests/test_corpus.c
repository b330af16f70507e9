// Corpus / query files: TSV and JSONL, and one clear error naming file and line.
#include "tests/testlib.h"
#include "data/corpus.h"
#include <string.h>
#include <unistd.h>

static char *write_tmp(const char *suffix, const char *content) {
    static char path[128];
    snprintf(path, sizeof path, "/tmp/hyp_corpus_%d_%ld%s", (int)getpid(), random(), suffix);
    FILE *f = fopen(path, "wb");
    fputs(content, f);
    fclose(f);
    return path;
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
    struct { const char *suffix, *content, *want; } cases[] = {
        {".tsv", "d1\tok\nno tab here\n", ":2: expected id<TAB>text"},
        {".tsv", "d1\tok\nd1\tagain\n", ":2: duplicate id 'd1' (first on line 1)"},
        {".tsv", "\tno id\n", ":1: empty id"},
        {".jsonl", "{\"id\": \"a\", \"text\": \"t\"}\n{\"id\": \"b\"\n", ":2: invalid JSON"},
        {".jsonl", "{\"id\": \"a\"}\n", ":1: missing \"text\""},
        {".jsonl", "[1, 2]\n", ":1: invalid JSON: not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_tmp(cases[i].suffix, cases[i].content);
        cr_assert_null(corpus_read(p), "case %zu should fail", i);
        cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), cases[i].want),
                  "case %zu: got '%s', want '%s'", i, hyp_last_error(), cases[i].want);
        unlink(p);
    }
    cr_assert_null(corpus_read("/nonexistent/c.tsv"));
    cr_assert(strstr(hyp_last_error(), "/nonexistent/c.tsv"));
}
