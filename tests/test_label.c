// hyp label: a cross-encoder teacher's scores in the JSONL equal HF's logits for the same
// pairs (tests/fixtures/cross_encoder), the positive is the teacher's best (or the qrels'
// relevant document), negatives are K distinct other candidates, deterministic in the seed;
// a bi-encoder teacher's scores equal the inner products of model_embed's vectors; qrels
// alone give grades as scores; bad input gives one error naming the file and line.
#include "tests/testlib.h"
#include "model/model_import.h"
#include "model/load.h"
#include "autograd/h5io.h"
#include "search/encode.h"
#include "eval/trec.h"
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CE FIXTURE_DIR "/cross_encoder"

static char W[64];
static char **Q, **P;
static size_t N;

// queries q_i, passages p_i of the fixture; run: q_i -> p_i, p_(i+1), p_(i+2); qrels: p_i relevant.
static void setup(void) {
    snprintf(W, sizeof W, "/tmp/hyp_label_XXXXXX");
    cr_assert_not_null(mkdtemp(W));
    size_t np;
    H5File *f = h5_open(CE "/expected.h5");
    cr_assert_not_null(f, "%s", hyp_last_error());
    Q = h5_read_strings(f, "/queries", &N);
    P = h5_read_strings(f, "/passages", &np);
    h5_close(f);
    cr_assert(Q && P && np == N);
    char p[200];
    FILE *fq = fopen((snprintf(p, sizeof p, "%s/q.tsv", W), p), "w"), *fc = fopen((snprintf(p, sizeof p, "%s/c.tsv", W), p), "w");
    FILE *fr = fopen((snprintf(p, sizeof p, "%s/run.trec", W), p), "w"), *fz = fopen((snprintf(p, sizeof p, "%s/qrels.txt", W), p), "w");
    for (size_t i = 0; i < N; i++) {
        fprintf(fq, "q%zu\t%s\n", i, Q[i]);
        fprintf(fc, "p%zu\t%s\n", i, P[i]);
        for (int k = 0; k < 3; k++) fprintf(fr, "q%zu Q0 p%zu %d %d bm25\n", i, (i + k) % N, k + 1, 10 - k);
        fprintf(fz, "q%zu 0 p%zu 2\nq%zu 0 p%zu 0\n", i, i, i, (i + 1) % N);
    }
    fclose(fq); fclose(fc); fclose(fr); fclose(fz);
    char cmd[400];
    snprintf(cmd, sizeof cmd, HYP_BIN " import -q --from " CE " --out %s/ce.h5", W);
    cr_assert_eq(system(cmd), 0);
}
static void teardown(void) {
    h5_free_strings(Q, N);
    h5_free_strings(P, N);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", W);
    cr_assert_eq(system(cmd), 0);
}

static int label(const char *args) {
    char cmd[1200], cwd[600];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd, "cd %s && %s/" HYP_BIN " label -q --queries q.tsv --corpus c.tsv %s 2> err.txt", W, cwd, args);
    return system(cmd);
}
static json_t **rows(const char *name, int *n) {
    char p[200];
    snprintf(p, sizeof p, "%s/%s", W, name);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s missing", p);
    json_t **r = hyp_calloc(64, sizeof *r);
    char line[8192];
    *n = 0;
    while (fgets(line, sizeof line, f) && *n < 64) {
        r[*n] = json_loads(line, 0, NULL);
        cr_assert_not_null(r[*n], "%s: line %d is not JSON", p, *n + 1);
        (*n)++;
    }
    fclose(f);
    return r;
}
static void free_rows(json_t **r, int n) { for (int i = 0; i < n; i++) json_decref(r[i]); free(r); }
static const char *sget(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static double score(json_t *it) { return json_number_value(json_object_get(it, "score")); }

TestSuite(label, .init = setup, .fini = teardown);

Test(label, cross_encoder_scores_equal_hf_logits) {
    cr_assert_eq(label("--teacher ce.h5 --candidates run.trec --negatives 2 --out t.jsonl"), 0);
    H5File *f = fx_open("cross_encoder/expected.h5");
    float *want = h5_read_f32(f, "/len64/logits", NULL, NULL);
    h5_close(f);
    int n;
    json_t **r = rows("t.jsonl", &n);
    cr_assert_eq(n, (int)N);
    for (int i = 0; i < n; i++) {
        json_t *items = json_object_get(r[i], "items");
        char qid[16], own[16];
        snprintf(qid, sizeof qid, "q%d", i);
        snprintf(own, sizeof own, "p%d", i);
        cr_assert_str_eq(sget(json_object_get(r[i], "query"), "id"), qid);
        cr_assert_str_eq(sget(json_object_get(r[i], "query"), "content"), Q[i]);
        cr_assert_eq(json_array_size(items), 3, "row %d: 1 positive + 2 negatives", i);
        bool seen_own = false;
        for (size_t k = 0; k < 3; k++) {
            json_t *it = json_array_get(items, k);
            cr_expect_geq(score(json_array_get(items, 0)), score(it), "row %d: the positive is not the teacher's best", i);
            for (size_t j = 0; j < k; j++) cr_expect_str_neq(sget(it, "id"), sget(json_array_get(items, j), "id"));
            if (!strcmp(sget(it, "id"), own)) {   // the fixture's pair (q_i, p_i): HF's logit
                seen_own = true;
                cr_expect(fabs(score(it) - want[i]) <= 1e-4 * fabs(want[i]) + 1e-6, "q%d p%d: %.7g, HF %.7g", i, i, score(it), want[i]);
                cr_expect_str_eq(sget(it, "content"), P[i]);
            }
        }
        cr_expect(seen_own, "row %d: all 3 candidates expected", i);
    }
    free_rows(r, n);
    free(want);
}

Test(label, qrels_pick_the_positive_and_sampling_is_seeded) {
    cr_assert_eq(label("--teacher ce.h5 --candidates run.trec --qrels qrels.txt --negatives 1 --seed 5 --out a.jsonl"), 0);
    cr_assert_eq(label("--teacher ce.h5 --candidates run.trec --qrels qrels.txt --negatives 1 --seed 5 --out b.jsonl"), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "cmp -s %s/a.jsonl %s/b.jsonl", W, W);
    cr_assert_eq(system(cmd), 0, "same seed, different output");
    int n;
    json_t **r = rows("a.jsonl", &n);
    cr_assert_eq(n, (int)N);
    for (int i = 0; i < n; i++) {
        json_t *items = json_object_get(r[i], "items");
        char own[16];
        snprintf(own, sizeof own, "p%d", i);
        cr_assert_eq(json_array_size(items), 2);
        cr_expect_str_eq(sget(json_array_get(items, 0), "id"), own, "row %d: the qrels' relevant document first", i);
    }
    free_rows(r, n);
    // Seeds choose among the two negatives of each query: some seed picks differently.
    bool differs = false;
    for (int s = 6; s < 14 && !differs; s++) {
        char a[200];
        snprintf(a, sizeof a, "--teacher ce.h5 --candidates run.trec --qrels qrels.txt --negatives 1 --seed %d --out c.jsonl", s);
        cr_assert_eq(label(a), 0);
        snprintf(cmd, sizeof cmd, "cmp -s %s/a.jsonl %s/c.jsonl", W, W);
        differs = system(cmd) != 0;
    }
    cr_expect(differs, "the seed changes nothing");
}

Test(label, qrels_alone_grades_are_scores) {
    cr_assert_eq(label("--qrels qrels.txt --negatives 3 --out g.jsonl"), 0);
    int n;
    json_t **r = rows("g.jsonl", &n);
    cr_assert_eq(n, (int)N);
    for (int i = 0; i < n; i++) {
        json_t *items = json_object_get(r[i], "items");
        cr_assert_eq(json_array_size(items), 2, "row %d: the two judged documents", i);
        cr_expect_eq(score(json_array_get(items, 0)), 2.0);
        cr_expect_eq(score(json_array_get(items, 1)), 0.0);
    }
    free_rows(r, n);
}

// A bi-encoder teacher (the tiny BERT, mean pooling, normalised): scores = cosine of model_embed's vectors.
Test(label, biencoder_scores_are_inner_products) {
    char out[300];
    snprintf(out, sizeof out, "%s/be.h5", W);
    ImportOptions io = {.from = FIXTURE_DIR "/import/bert_st", .out = out, .lowercase = -1, .pooling = "mean", .normalize = IMPORT_ON};
    cr_assert_eq(model_import(&io), 0, "%s", hyp_last_error());
    cr_assert_eq(label("--teacher be.h5 --candidates run.trec --negatives 2 --out e.jsonl"), 0);
    Model *m = model_load(out, HYP_CPU);
    cr_assert_not_null(m);
    Tokenizer *tok = model_tokenizer(m);
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    int n;
    json_t **r = rows("e.jsonl", &n);
    cr_assert_eq(n, (int)N);
    int d = m->bert.cfg.hidden;
    float *q = hyp_malloc((size_t)d * sizeof(float)), *x = hyp_malloc((size_t)d * sizeof(float));
    TokBatch tb = {0};
    for (int i = 0; i < n; i++) {
        json_t *items = json_object_get(r[i], "items");
        for (size_t k = 0; k < json_array_size(items); k++) {
            json_t *it = json_array_get(items, k);
            int di = atoi(sget(it, "id") + 1);
            const char *texts[2] = {Q[i], P[di]};
            float *dst[2] = {q, x};
            for (int t = 0; t < 2; t++) {
                tok_encode_batch(tok, &texts[t], NULL, 1, t ? m->doc_max_len : m->query_max_len, &tb);
                Tensor *ids = tensor_new(c, HYP_I32, HYP_SHAPE(1, tb.len)), *mk = tensor_new(c, HYP_I32, HYP_SHAPE(1, tb.len));
                tensor_from_host(ids, tb.ids);
                tensor_from_host(mk, tb.mask);
                tensor_to_host(model_embed(c, m, t == 0, ids, mk), dst[t]);
            }
            double dot = 0, nq = 0;
            for (int j = 0; j < d; j++) dot += (double)q[j] * x[j], nq += (double)q[j] * q[j];
            cr_expect(fabs(nq - 1) < 1e-5, "query vector not normalised: |q|^2 = %g", nq);
            cr_expect(fabs(score(it) - dot) <= 1e-5, "q%d %s: %.7g, inner product %.7g", i, sget(it, "id"), score(it), dot);
            ctx_reset(c);
        }
    }
    free(q); free(x);
    tok_batch_free(&tb);
    free_rows(r, n);
    no_grad_end(c);
    ctx_free(c);
    tok_free(tok);
    model_free(m);
}

Test(label, bad_input_one_error_no_output) {
    char p[300];
    snprintf(p, sizeof p, "%s/bad.trec", W);
    FILE *f = fopen(p, "w");
    fprintf(f, "q0 Q0 p0 1 3 x\nq0 Q0 nosuchdoc 2 2 x\n");
    fclose(f);
    cr_assert_neq(label("--teacher ce.h5 --candidates bad.trec --negatives 2 --out x.jsonl"), 0);
    snprintf(p, sizeof p, "%s/x.jsonl", W);
    cr_expect(access(p, F_OK) != 0, "a partial output was left");
    char err[1000] = {0};
    snprintf(p, sizeof p, "%s/err.txt", W);
    f = fopen(p, "r");
    cr_assert_not_null(f);
    size_t k = fread(err, 1, sizeof err - 1, f);
    err[k] = 0;
    fclose(f);
    cr_expect(strstr(err, "bad.trec:2") && strstr(err, "nosuchdoc"), "%s", err);
    // A cross-encoder cannot find its own candidates.
    cr_assert_neq(label("--teacher ce.h5 --qrels qrels.txt --negatives 2 --out x.jsonl"), 0);
}

// --top N: the candidates are the teacher's own exhaustive top N over the corpus (as hyp search
// finds them), so the positive is the teacher's best document and every negative is in its top
// N; --docs (the teacher's vectors from hyp encode) gives the same rows as encoding here, and
// --scale multiplies the written scores.
Test(label, top_n_is_the_teachers_search) {
    char out[300], cmd[2000], cwd[600];
    snprintf(out, sizeof out, "%s/be.h5", W);
    ImportOptions io = {.from = FIXTURE_DIR "/import/bert_st", .out = out, .lowercase = -1, .pooling = "mean", .normalize = IMPORT_ON};
    cr_assert_eq(model_import(&io), 0, "%s", hyp_last_error());
    cr_assert_eq(label("--teacher be.h5 --top 3 --negatives 2 --out top.jsonl"), 0);
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd, "cd %s && %s/" HYP_BIN " encode --model be.h5 --corpus c.tsv --out d.h5 >/dev/null 2>&1 && "
             "%s/" HYP_BIN " search --model be.h5 --docs d.h5 --queries q.tsv --k 3 --out s.trec >/dev/null 2>&1", W, cwd, cwd);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(label("--teacher be.h5 --top 3 --docs d.h5 --negatives 2 --scale 20 --out topd.jsonl"), 0);
    snprintf(cmd, sizeof cmd, "%s/s.trec", W);
    TrecRun *run = trec_run_read(cmd);
    cr_assert_not_null(run, "%s", hyp_last_error());
    int n, nd;
    json_t **r = rows("top.jsonl", &n), **rd = rows("topd.jsonl", &nd);
    cr_assert_eq(n, (int)N);
    cr_assert_eq(nd, n);
    for (int i = 0; i < n; i++) {
        char qid[32];
        snprintf(qid, sizeof qid, "q%d", i);
        const TrecRunQuery *rq = trec_run_find(run, qid);
        cr_assert(rq && rq->n == 3);
        json_t *items = json_object_get(r[i], "items"), *itd = json_object_get(rd[i], "items");
        cr_assert_eq(json_array_size(items), 3);   // the positive + both other candidates
        cr_assert_eq(json_array_size(itd), 3);
        const char *best = rq->entries[0].docid;   // the run is in rank order
        cr_expect_str_eq(sget(json_array_get(items, 0), "id"), best, "%s: positive %s, the teacher's best %s", qid,
                         sget(json_array_get(items, 0), "id"), best);
        cr_expect(fabs(score(json_array_get(items, 0)) - rq->entries[0].score) < 1e-5);
        for (size_t k = 0; k < 3; k++) {
            const char *id = sget(json_array_get(items, k), "id");
            bool in = false;
            for (size_t j = 0; j < rq->n; j++) in |= !strcmp(rq->entries[j].docid, id);
            cr_expect(in, "%s: %s is not in the teacher's top 3", qid, id);
            cr_expect_str_eq(sget(json_array_get(itd, k), "id"), id);
            cr_expect(fabs(score(json_array_get(itd, k)) - 20 * score(json_array_get(items, k))) < 2e-5, "--scale 20: %g vs 20 x %g",
                      score(json_array_get(itd, k)), score(json_array_get(items, k)));
        }
    }
    free_rows(r, n);
    free_rows(rd, nd);
    trec_run_free(run);
    // --top with a cross-encoder, or with --candidates, is refused with one message.
    cr_assert_neq(label("--teacher ce.h5 --top 3 --negatives 2 --out x.jsonl"), 0);
    cr_assert_neq(label("--teacher be.h5 --top 3 --candidates run.trec --negatives 2 --out x.jsonl"), 0);
}
