// The embedded default task: deterministic, relevance = exactly one of the two query words.
#include "tests/testlib.h"
#include "data/synthetic.h"
#include "data/corpus.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool has_word(const char *text, const char *w) {
    size_t n = strlen(w);
    for (const char *p = text; (p = strstr(p, w)); p += n)
        if ((p == text || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return true;
    return false;
}

Test(synthetic, qrels_follow_the_xor_rule_and_files_are_deterministic) {
    char d1[] = "/tmp/hyp_syn1_XXXXXX", d2[] = "/tmp/hyp_syn2_XXXXXX";
    cr_assert_not_null(mkdtemp(d1));
    cr_assert_not_null(mkdtemp(d2));
    SynthOptions o = synth_default();
    o.n_docs = 300;
    o.n_train = 50;
    cr_assert_eq(synth_write(d1, &o), 0, "%s", hyp_last_error());
    cr_assert_eq(synth_write(d2, &o), 0, "%s", hyp_last_error());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "diff -r %s %s >/dev/null", d1, d2);
    cr_assert_eq(system(cmd), 0, "same seed, same files");
    char p[600];
    snprintf(p, sizeof p, "%s/corpus.tsv", d1);
    Corpus *c = corpus_read(p);
    snprintf(p, sizeof p, "%s/val_queries.tsv", d1);
    Corpus *q = corpus_read(p);
    cr_assert(c && q, "%s", hyp_last_error());
    snprintf(p, sizeof p, "%s/val_qrels.txt", d1);
    FILE *f = fopen(p, "r");
    char qid[32], did[32];
    int it, rel, lines = 0, rels = 0;
    while (fscanf(f, "%31s %d %31s %d", qid, &it, did, &rel) == 4) {
        int qi = atoi(qid + 1), di = atoi(did + 1);
        char a[32], b[32];
        cr_assert_eq(sscanf(q->texts[qi], "%31s xor %31s", a, b), 2);
        bool want = has_word(c->texts[di], a) != has_word(c->texts[di], b);
        cr_assert_eq(rel, want, "%s %s: '%s' vs '%s'", qid, did, q->texts[qi], c->texts[di]);
        lines++;
        rels += rel;
    }
    fclose(f);
    cr_assert_eq(lines, q->n * c->n);
    cr_assert(rels > lines / 10 && rels < lines / 2, "a fair share of relevant documents: %d of %d", rels, lines);
    corpus_free(c);
    corpus_free(q);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2);
    cr_assert_eq(system(cmd), 0);
}
