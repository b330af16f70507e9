// The released-checkpoint path end to end: a tiny Hypencoder saved by the PyTorch twin in
// the authors' layout (HypencoderDualEncoder config.json, torch.save state dict with the
// aliased passage_encoder.transformer.* keys) -> `hyp import` -> `hyp score` gives the
// twin's scores (tests/fixtures/make_hypencoder_import_fixture.py).
#include "tests/testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FX "tests/fixtures/hypencoder_import"

static int read_scores(FILE *f, char q[][16], char d[][16], double *s, int max) {
    int n = 0;
    while (n < max && fscanf(f, "%15s %15s %lf", q[n], d[n], &s[n]) == 3) n++;
    return n;
}

Test(score_cli, import_then_score_matches_twin) {
    char work[] = "/tmp/hyp_score_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, HYP_BIN " import --from " FX " --bert-config " FX "/bert_config.json --out %s/m.h5 2>%s/import.log"
             " && " HYP_BIN " score --model %s/m.h5 --queries " FX "/queries.tsv --corpus " FX "/passages.tsv > %s/scores.txt",
             work, work, work, work);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[1100];
    snprintf(path, sizeof path, "%s/import.log", work);
    FILE *log = fopen(path, "r");
    char buf[4096] = "";
    size_t nr = fread(buf, 1, sizeof buf - 1, log);
    buf[nr] = 0;
    fclose(log);
    cr_assert(strstr(buf, "aliased passage_encoder.transformer"), "the aliased passage keys are recognised: %s", buf);
    char q1[8][16], d1[8][16], q2[8][16], d2[8][16];
    double got[8], want[8];
    snprintf(path, sizeof path, "%s/scores.txt", work);
    FILE *g = fopen(path, "r"), *w = fopen(FX "/expected_scores.txt", "r");
    int n = read_scores(g, q1, d1, got, 8), m = read_scores(w, q2, d2, want, 8);
    fclose(g);
    fclose(w);
    cr_assert_eq(n, 4);
    cr_assert_eq(m, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(q1[i], q2[i]);
        cr_assert_str_eq(d1[i], d2[i]);
        cr_assert(fabs(got[i] - want[i]) <= TOL_E2E * fabs(want[i]), "%s %s: %.9g vs twin %.9g", q1[i], d1[i], got[i], want[i]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    cr_assert_eq(system(cmd), 0);
}

// The search commands as a user runs them: encode the passages, build the neighbour
// graph, search exhaustively and with Algorithm 1; both runs rank every passage in the
// order of the twin's scores (the graph covers this tiny corpus).
Test(score_cli, encode_index_search) {
    char work[] = "/tmp/hyp_search_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             HYP_BIN " import --from " FX " --bert-config " FX "/bert_config.json --out %s/m.h5 2>/dev/null && "
             HYP_BIN " encode --model %s/m.h5 --corpus " FX "/passages.tsv --out %s/docs.h5 >/dev/null 2>&1 && "
             HYP_BIN " index --docs %s/docs.h5 --neighbors 1 --out %s/graph.h5 >/dev/null 2>&1 && "
             HYP_BIN " search --model %s/m.h5 --docs %s/docs.h5 --queries " FX "/queries.tsv --k 2 --out %s/exh.trec "
             "--summary %s/exh.json >/dev/null 2>&1 && "
             HYP_BIN " search --model %s/m.h5 --docs %s/docs.h5 --queries " FX "/queries.tsv --k 2 --graph %s/graph.h5 "
             "--entry-points 1 --candidates 1 --max-iter 4 --out %s/graph.trec >/dev/null 2>&1",
             work, work, work, work, work, work, work, work, work, work, work, work, work);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    // Expected order per query from the twin's scores.
    FILE *w = fopen(FX "/expected_scores.txt", "r");
    char q[4][16], d[4][16];
    double s[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(fscanf(w, "%15s %15s %lf", q[i], d[i], &s[i]), 3);
    fclose(w);
    const char *runs[2] = {"exh.trec", "graph.trec"};
    for (int r = 0; r < 2; r++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", work, runs[r]);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char qid[16], q0[8], did[16], tag[32];
        int rank;
        double score;
        int n = 0;
        while (fscanf(f, "%15s %7s %15s %d %lf %31s", qid, q0, did, &rank, &score, tag) == 6) {
            int qi = qid[1] - '0';
            const char *best = s[2 * qi] >= s[2 * qi + 1] ? d[2 * qi] : d[2 * qi + 1];
            if (rank == 1) cr_assert_str_eq(did, best, "%s: %s ranks %s first", runs[r], qid, did);
            cr_assert(fabs(score - s[2 * qi + (strcmp(did, "p1") == 0)]) <= TOL_E2E * fabs(score) + 1e-6,
                      "%s: %s %s score %.9g", runs[r], qid, did, score);
            n++;
        }
        fclose(f);
        cr_assert_eq(n, 4, "%s: 2 queries x 2 hits", runs[r]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    cr_assert_eq(system(cmd), 0);
}

// ---------------------------------------------------------------- dense models (BE-Base, plain BERT)
#include "search/store.h"

typedef struct { char q[32], d[32]; double s; } Pair;

// "qid docid score" lines (hyp score) or a TREC run ("qid Q0 docid rank score tag").
static int read_pairs(const char *path, bool trec, Pair *p, int max) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    int n = 0, rank;
    char q0[8], tag[64];
    while (n < max && (trec ? fscanf(f, "%31s %7s %31s %d %lf %63s", p[n].q, q0, p[n].d, &rank, &p[n].s, tag) == 6
                            : fscanf(f, "%31s %31s %lf", p[n].q, p[n].d, &p[n].s) == 3))
        n++;
    fclose(f);
    return n;
}
static int by_score_desc(const void *a, const void *b) {
    double x = ((const Pair *)a)->s, y = ((const Pair *)b)->s;
    return (x < y) - (x > y);
}

// The run of `hyp search` (k = every document) is the ranking `hyp score` gives over all
// pairs: per query the same number of hits, rank by rank the same score (ties may swap
// documents of equal score), and each hit's score is the pair's score.
static void expect_run_is_all_pairs_ranking(const char *run_path, const char *score_path, int nq, int nd) {
    int max = nq * nd;
    Pair *run = calloc((size_t)max, sizeof *run), *all = calloc((size_t)max, sizeof *all);
    cr_assert_eq(read_pairs(run_path, true, run, max), max, "%s: %d queries x %d documents", run_path, nq, nd);
    cr_assert_eq(read_pairs(score_path, false, all, max), max, "%s", score_path);
    for (int q = 0; q < nq; q++) {
        Pair *r = run + (size_t)q * nd, *a = all + (size_t)q * nd;   // both in query order
        cr_assert_str_eq(r[0].q, a[0].q);
        Pair *sorted = malloc((size_t)nd * sizeof *sorted);
        memcpy(sorted, a, (size_t)nd * sizeof *sorted);
        qsort(sorted, (size_t)nd, sizeof *sorted, by_score_desc);
        for (int j = 0; j < nd; j++) {
            cr_assert_str_eq(r[j].q, a[0].q, "%s: hits of %s are not together", run_path, a[0].q);
            double tol = TOL_E2E * (fabs(sorted[j].s) + 1e-3);
            cr_assert(fabs(r[j].s - sorted[j].s) <= tol, "%s rank %d: score %.9g, all-pairs ranking has %.9g", r[j].q, j + 1,
                      r[j].s, sorted[j].s);
            const Pair *mine = NULL;
            for (int i = 0; i < nd && !mine; i++)
                if (!strcmp(a[i].d, r[j].d)) mine = &a[i];
            cr_assert_not_null(mine, "%s: %s not in the corpus", r[j].q, r[j].d);
            cr_assert(fabs(mine->s - r[j].s) <= tol, "%s %s: run %.9g, hyp score %.9g", r[j].q, r[j].d, r[j].s, mine->s);
        }
        free(sorted);
    }
    free(run);
    free(all);
}

static void sh(const char *fmt, const char *w) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, w, w, w, w, w, w, w, w, w, w, w, w);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

// A BE-Base model trained here (hyp demo): search = the all-pairs ranking of hyp score;
// graph search is refused naming the model kind.
Test(score_cli, biencoder_search_equals_score_ranking) {
    char work[] = "/tmp/hyp_be_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    sh("cd %s && OMP_NUM_THREADS=1 $OLDPWD/" HYP_BIN " demo --steps 2 --out demo >/dev/null 2>&1 && "
       "head -40 demo/data/corpus.tsv > c.tsv && head -5 demo/data/val_queries.tsv > q.tsv", work);
    char fmt[4096];
    snprintf(fmt, sizeof fmt, "cd %%s && %s/" HYP_BIN " encode --model demo/biencoder/best.h5 --corpus c.tsv --out d.h5 "
             ">/dev/null 2>&1 && %s/" HYP_BIN " search --model demo/biencoder/best.h5 --docs d.h5 --queries q.tsv --k 40 "
             "--batch-queries 2 --block-rows 16 --out run.trec >sum.json 2>/dev/null && %s/" HYP_BIN " score --model "
             "demo/biencoder/best.h5 --queries q.tsv --corpus c.tsv > all.txt", getenv("PWD"), getenv("PWD"), getenv("PWD"));
    sh(fmt, work);
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/run.trec", work);
    snprintf(b, sizeof b, "%s/all.txt", work);
    expect_run_is_all_pairs_ranking(a, b, 5, 40);
    snprintf(fmt, sizeof fmt, "cd %%s && grep -q '\"model\": \"BE-Base bi-encoder\"' sum.json && %s/" HYP_BIN " index "
             "--docs d.h5 --neighbors 4 --out g.h5 >/dev/null 2>&1 && ! %s/" HYP_BIN " search --model demo/biencoder/best.h5 "
             "--docs d.h5 --queries q.tsv --graph g.h5 --out g.trec 2>err.txt && grep -q 'is a BE-Base bi-encoder model' "
             "err.txt && grep -q 'graph search is for Hypencoders' err.txt && test ! -e g.trec", getenv("PWD"), getenv("PWD"));
    sh(fmt, work);
    snprintf(fmt, sizeof fmt, "rm -rf %s", work);
    cr_assert_eq(system(fmt), 0);
}

// A plain imported BERT: search = the all-pairs ranking of hyp score, and hyp encode
// --side query gives the query vectors whose inner products with the document vectors are
// hyp score's scores. A Hypencoder's --side query is refused (its queries are q-nets).
Test(score_cli, plain_bert_search_encode_query_side) {
    char work[] = "/tmp/hyp_bert_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    const char *R = getenv("PWD");
    char fmt[4096];
    static const char *const words[] = {"the", "query", "document", "neural", "network", "search", "model", "retrieval",
                                        "tok0x1", "tok12", "hypencoder", "of"};
    char p[1200];
    snprintf(p, sizeof p, "%s/c.tsv", work);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 12; i++)   // 12 passages of 2 to 6 vocabulary words
        fprintf(f, "p%d\t%s %s %s\n", i, words[i], words[(i * 5 + 3) % 12], i % 2 ? words[(i * 7) % 12] : "");
    fclose(f);
    snprintf(p, sizeof p, "%s/q.tsv", work);
    f = fopen(p, "w");
    for (int i = 0; i < 4; i++) fprintf(f, "q%d\t%s %s\n", i, words[(i * 3 + 1) % 12], words[(i + 6) % 12]);
    fclose(f);
    snprintf(fmt, sizeof fmt, "cd %%s && %s/" HYP_BIN " import --from %s/tests/fixtures/import/bert_st --out b.h5 -q "
             ">/dev/null 2>&1 && "
             "%s/" HYP_BIN " encode --model b.h5 --corpus c.tsv --out d.h5 >/dev/null 2>&1 && "
             "%s/" HYP_BIN " encode --model b.h5 --corpus q.tsv --side query --out qv.h5 >/dev/null 2>&1 && "
             "%s/" HYP_BIN " search --model b.h5 --docs d.h5 --queries q.tsv --k 12 --out run.trec >/dev/null 2>&1 && "
             "%s/" HYP_BIN " score --model b.h5 --queries q.tsv --corpus c.tsv > all.txt", R, R, R, R, R, R);
    sh(fmt, work);
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/run.trec", work);
    snprintf(b, sizeof b, "%s/all.txt", work);
    expect_run_is_all_pairs_ranking(a, b, 4, 12);
    // The query-side vectors: q . d = hyp score's score for every pair.
    snprintf(a, sizeof a, "%s/qv.h5", work);
    snprintf(b, sizeof b, "%s/d.h5", work);
    DocStore *qs = docstore_open(a, NULL), *ds = docstore_open(b, NULL);
    cr_assert(qs && ds, "%s", hyp_last_error());
    cr_assert_eq(docstore_n(qs), 4);
    int d = docstore_dim(ds);
    cr_assert_eq(docstore_dim(qs), d);
    Pair all[48];
    snprintf(a, sizeof a, "%s/all.txt", work);
    cr_assert_eq(read_pairs(a, false, all, 48), 48);
    for (int i = 0; i < 48; i++) {
        const float *q = docstore_f32(qs) + (size_t)docstore_find(qs, all[i].q) * d;
        const float *x = docstore_f32(ds) + (size_t)docstore_find(ds, all[i].d) * d;
        double dot = 0;
        for (int j = 0; j < d; j++) dot += (double)q[j] * x[j];
        cr_assert(fabs(dot - all[i].s) <= TOL_E2E * (fabs(all[i].s) + 1e-3), "%s . %s = %.9g, hyp score %.9g", all[i].q,
                  all[i].d, dot, all[i].s);
    }
    docstore_free(qs);
    docstore_free(ds);
    snprintf(fmt, sizeof fmt, "cd %%s && %s/" HYP_BIN " import --from %s/" FX " --bert-config %s/" FX "/bert_config.json "
             "--out h.h5 >/dev/null 2>&1 && ! %s/" HYP_BIN " encode --model h.h5 --corpus q.tsv --side query --out x.h5 "
             "2>err.txt && grep -q 'is a Hypencoder: its queries become q-nets' err.txt && test ! -e x.h5", R, R, R, R);
    sh(fmt, work);
    snprintf(fmt, sizeof fmt, "rm -rf %s", work);
    cr_assert_eq(system(fmt), 0);
}
