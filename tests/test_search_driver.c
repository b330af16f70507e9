// The search driver (search/driver.h) for every model kind: its hits equal a brute-force
// ranking computed here with the model ops (a Hypencoder's q-net scores, BE-Base inner
// products, a normalising plain BERT's cosines), graph search whose entry points cover the
// corpus equals exhaustive search (and says so), the sharded merge equals one process, and
// the CUDA variants (simulator in CI) give the CPU's hits.
#include "tests/testlib.h"
#include "search/driver.h"
#include "model/hypencoder.h"
#include "model/biencoder.h"
#include "autograd/gradcheck.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- a tiny world
static const char VOCAB[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\ndog\nsat\non\nmat\nred\nblue\nfish\nran\n"
                            "fast\nslow\nbig\nsmall\nbird\n";
#define V 20
#define DIM 16
#define NQ 7
#define NDOC 150
static const char *const QTEXT[NQ] = {"the cat sat", "dog ran fast", "red fish", "big blue bird on the mat",
                                      "small cat", "slow dog sat on red mat", "fish"};
// q1 is also a document id: ignore_same_id drops that document for it.
static const char *const QIDS[NQ] = {"q0", "d5", "q2", "q3", "q4", "q5", "q6"};

typedef struct {
    ParamSet *ps;
    Hypencoder hyp;
    BiEncoder be;
    SearchModel sm;
} Tiny;

static BertConfig tiny_bert(void) {
    return (BertConfig){.vocab_size = V, .hidden = DIM, .layers = 1, .heads = 2, .ffn = 32, .max_positions = 16,
                        .type_vocab_size = 2, .ln_eps = 1e-12f, .pad_token_id = 0, .pooler = false};
}

static void tiny_new(Tiny *t, SearchKind kind, Device dev, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->ps = paramset_new(dev);
    BertConfig bc = tiny_bert();
    if (kind == SEARCH_HYPENCODER) {
        HypencoderConfig cfg = hypencoder_config_default(2);
        cfg.bert = bc;
        hypencoder_register(&t->hyp, t->ps, &cfg);
    } else {
        biencoder_register(&t->be, t->ps, &bc, kind == SEARCH_BERT);
    }
    paramset_finalize(t->ps);
    if (kind == SEARCH_HYPENCODER) {
        hypencoder_init(&t->hyp, seed);
        t->sm = search_model_hypencoder(&t->hyp, dev);
    } else {
        biencoder_init(&t->be, seed);
        t->sm = search_model_biencoder(&t->be, dev);
        if (kind == SEARCH_BERT) {   // one encoder for both sides, normalised vectors
            t->sm.kind = SEARCH_BERT;
            t->sm.doc_bert = t->sm.query_bert;
            t->sm.normalize = true;
        }
    }
    t->sm.query_max_len = 12;
    t->sm.label = "tiny";
}
static void tiny_free(Tiny *t) {
    if (t->sm.kind == SEARCH_HYPENCODER) hypencoder_free(&t->hyp);
    else biencoder_free(&t->be);
    paramset_free(t->ps);
}

static Tokenizer *tiny_tok(void) {
    Tokenizer *tok = tok_from_vocab_text(VOCAB, sizeof VOCAB - 1, "tiny", true);
    cr_assert_not_null(tok, "%s", hyp_last_error());
    return tok;
}

static DocStore *tiny_store(uint64_t seed) {
    float *x = hyp_malloc((size_t)NDOC * DIM * sizeof(float));
    fill_uniform(x, (size_t)NDOC * DIM, -1, 1, seed);
    char names[NDOC][8];
    const char *ids[NDOC];
    for (int i = 0; i < NDOC; i++) {
        snprintf(names[i], sizeof names[i], "d%d", i);
        ids[i] = names[i];
    }
    DocStore *s = docstore_from_memory(x, NDOC, DIM, ids, STORE_F32);
    free(x);
    return s;
}

// ---------------------------------------------------------------- collecting hits
typedef struct { int n[NQ]; Hit h[NQ][NDOC]; } Hits;
static int collect(void *user, int q, const Hit *hits, int n) {
    Hits *H = user;
    cr_assert(q >= 0 && q < NQ && n <= NDOC);
    H->n[q] = n;
    memcpy(H->h[q], hits, (size_t)n * sizeof(Hit));
    return 0;
}

static int hit_cmp(const void *a, const void *b) {
    const Hit *x = a, *y = b;
    return hit_better(x->score, x->idx, y->score, y->idx) ? -1 : hit_better(y->score, y->idx, x->score, x->idx);
}

// The expected ranking: every document scored one query at a time (no padding) with the
// model's own ops, sorted (score desc, index asc), top k, the same-id document dropped.
static void brute_force(const Tiny *t, DocStore *s, int k, bool ignore_same, Hits *want) {
    Tokenizer *tok = tiny_tok();
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    const float *X = docstore_f32(s);
    TokBatch tb = {0};
    for (int q = 0; q < NQ; q++) {
        tok_encode_batch(tok, &QTEXT[q], NULL, 1, t->sm.query_max_len, &tb);
        Tensor *ids = tensor_new(c, HYP_I32, HYP_SHAPE(1, tb.len)), *mask = tensor_new(c, HYP_I32, HYP_SHAPE(1, tb.len));
        tensor_from_host(ids, tb.ids);
        tensor_from_host(mask, tb.mask);
        float sc[NDOC];
        Tensor *Xt = tensor_from_floats(c, X, HYP_SHAPE(NDOC, DIM), false);
        if (t->sm.kind == SEARCH_HYPENCODER) {
            QNet qn = hypencoder_queries(c, &t->hyp, ids, mask);
            tensor_to_host(qnet_score_shared(c, &qn, Xt), sc);
        } else {
            float qv[DIM];
            tensor_to_host(bert_forward_cls(c, t->sm.query_bert, ids, mask), qv);
            double qn = 0;
            for (int j = 0; j < DIM; j++) qn += (double)qv[j] * qv[j];
            for (int i = 0; i < NDOC; i++) {
                double dot = 0, xn = 0;
                for (int j = 0; j < DIM; j++) {
                    dot += (double)qv[j] * X[i * DIM + j];
                    xn += (double)X[i * DIM + j] * X[i * DIM + j];
                }
                sc[i] = (float)(t->sm.normalize ? dot / sqrt(qn * xn) : dot);
            }
        }
        Hit all[NDOC];
        int n = 0;
        for (int i = 0; i < NDOC; i++)
            if (!(ignore_same && !strcmp(docstore_id(s, i), QIDS[q]))) all[n++] = (Hit){sc[i], i};
        qsort(all, (size_t)n, sizeof(Hit), hit_cmp);
        want->n[q] = n < k ? n : k;
        memcpy(want->h[q], all, (size_t)want->n[q] * sizeof(Hit));
        ctx_reset(c);
    }
    tok_batch_free(&tb);
    no_grad_end(c);
    ctx_free(c);
    tok_free(tok);
}

// Same documents in the same order, scores within the end-to-end tolerance.
static void expect_hits(const Hits *got, const Hits *want, const char *what) {
    for (int q = 0; q < NQ; q++) {
        cr_assert_eq(got->n[q], want->n[q], "%s: query %d: %d hits, expected %d", what, q, got->n[q], want->n[q]);
        for (int j = 0; j < want->n[q]; j++) {
            const Hit *g = &got->h[q][j], *w = &want->h[q][j];
            cr_assert_eq(g->idx, w->idx, "%s: query %d rank %d: document %d (%.7g), expected %d (%.7g)", what, q, j,
                         g->idx, g->score, w->idx, w->score);
            cr_assert(fabsf(g->score - w->score) <= TOL_E2E * (fabsf(w->score) + 1e-3f),
                      "%s: query %d rank %d: score %.9g, expected %.9g", what, q, j, g->score, w->score);
        }
    }
}

static Hits *run_driver(const Tiny *t, DocStore *s, SearchOptions so, SearchSummary *sum) {
    Tokenizer *tok = tiny_tok();
    Hits *H = hyp_calloc(1, sizeof *H);
    int rc = search_run(&t->sm, tok, s, QIDS, QTEXT, NQ, &so, collect, H, sum);
    cr_assert_eq(rc, 0, "search_run: %s", hyp_last_error());
    tok_free(tok);
    return H;
}

static SearchOptions opts(int k, Device dev) {
    SearchOptions so = search_options_default();
    so.k = k;
    so.batch = 3;          // 7 queries: two full batches and a partial one
    so.block_rows = 64;    // 150 documents: three blocks, the last partial
    so.device = dev;
    return so;
}

// ---------------------------------------------------------------- every kind on the CPU
static void kind_equals_brute_force(SearchKind kind, bool ignore_same) {
    Tiny t;
    tiny_new(&t, kind, HYP_CPU, 7);
    DocStore *s = tiny_store(99);
    SearchOptions so = opts(10, HYP_CPU);
    so.ignore_same_id = ignore_same;
    SearchSummary sum;
    Hits *got = run_driver(&t, s, so, &sum), *want = hyp_calloc(1, sizeof *want);
    brute_force(&t, s, 10, ignore_same, want);
    expect_hits(got, want, search_kind_name(kind));
    cr_assert_eq(sum.queries, NQ);
    cr_assert_eq(sum.documents, NDOC);
    cr_assert_eq(sum.docs_scored_per_query, NDOC, "exhaustive: every document scored");
    cr_assert_eq(sum.scored_fraction, 1.0);
    cr_assert(!sum.graph);
    free(got);
    free(want);
    docstore_free(s);
    tiny_free(&t);
}

Test(driver, hypencoder_exhaustive_equals_brute_force) { kind_equals_brute_force(SEARCH_HYPENCODER, true); }
Test(driver, biencoder_dense_equals_brute_force) { kind_equals_brute_force(SEARCH_BIENCODER, true); }
Test(driver, plain_bert_cosine_equals_brute_force) { kind_equals_brute_force(SEARCH_BERT, false); }

// The store's vectors are not unit length: the cosine ranking differs from the inner
// product's (so the test above could not pass by ranking inner products).
Test(driver, plain_bert_cosine_is_not_the_inner_product) {
    Tiny t;
    tiny_new(&t, SEARCH_BERT, HYP_CPU, 7);
    DocStore *s = tiny_store(99);
    Hits *cos = run_driver(&t, s, opts(10, HYP_CPU), NULL);
    t.sm.normalize = false;
    Hits *dot = run_driver(&t, s, opts(10, HYP_CPU), NULL);
    int differ = 0;
    for (int q = 0; q < NQ; q++)
        for (int j = 0; j < 10; j++) differ += cos->h[q][j].idx != dot->h[q][j].idx;
    cr_assert_gt(differ, 0, "cosine and inner-product rankings are identical");
    free(cos);
    free(dot);
    docstore_free(s);
    tiny_free(&t);
}

// Graph search whose entry points cover the corpus scores every document: it equals the
// exhaustive search, and the summary says the entries cover the corpus.
Test(driver, graph_covering_entries_equals_exhaustive) {
    Tiny t;
    tiny_new(&t, SEARCH_HYPENCODER, HYP_CPU, 7);
    DocStore *s = tiny_store(99);
    Graph g = {0};
    GraphBuildOptions bo = {.k = 4};
    cr_assert_eq(graph_build_exact(s, &bo, &g), 0, "%s", hyp_last_error());
    SearchOptions so = opts(10, HYP_CPU);
    Hits *exh = run_driver(&t, s, so, NULL);
    so.graph = &g;
    so.graph_opts.entry_points = 2 * NDOC;
    so.graph_opts.candidates = 4;
    so.graph_opts.max_iter = 3;
    SearchSummary sum;
    Hits *gr = run_driver(&t, s, so, &sum);
    expect_hits(gr, exh, "graph with covering entries");
    cr_assert(sum.graph && sum.entries_cover);
    cr_assert_eq(sum.entry_points, NDOC);
    cr_assert_eq(sum.docs_scored_per_query, NDOC);
    // Fewer entry points: an approximate search scoring a fraction of the corpus.
    so.graph_opts.entry_points = 8;
    free(run_driver(&t, s, so, &sum));
    cr_assert(!sum.entries_cover);
    cr_assert(sum.scored_fraction > 0 && sum.scored_fraction < 1, "scored fraction %g", sum.scored_fraction);
    free(exh);
    free(gr);
    graph_free(&g);
    docstore_free(s);
    tiny_free(&t);
}

// What each model kind supports, said with the kind found.
Test(driver, refusals_name_the_model_kind) {
    Tiny t;
    tiny_new(&t, SEARCH_BIENCODER, HYP_CPU, 7);
    DocStore *s = tiny_store(99);
    Graph g = {0};
    SearchOptions so = opts(10, HYP_CPU);
    so.graph = &g;
    cr_assert_eq(search_check(&t.sm, s, &so), -1);
    cr_assert(strstr(hyp_last_error(), "BE-Base bi-encoder model") && strstr(hyp_last_error(), "graph search is for Hypencoders"),
              "%s", hyp_last_error());
    float x[3 * 8];
    fill_uniform(x, 24, -1, 1, 3);
    DocStore *narrow = docstore_from_memory(x, 3, 8, NULL, STORE_F32);
    so.graph = NULL;
    cr_assert_eq(search_check(&t.sm, narrow, &so), -1);
    cr_assert(strstr(hyp_last_error(), "8-dimensional documents") && strstr(hyp_last_error(), "encodes 16-dimensional"),
              "%s", hyp_last_error());
    docstore_free(narrow);
    docstore_free(s);
    tiny_free(&t);
    tiny_new(&t, SEARCH_HYPENCODER, HYP_CPU, 7);
    Tokenizer *tok = tiny_tok();
    cr_assert_null(encode_side(&t.sm, SIDE_QUERY, tok, QTEXT, NQ, &(EncodeOptions){.nonfinite_null = true}));
    cr_assert(strstr(hyp_last_error(), "q-nets"), "%s", hyp_last_error());
    tok_free(tok);
    tiny_free(&t);
}

// ---------------------------------------------------------------- the sharded merge
// W ranks as threads; the all-gather through a barrier. Every rank ends with the hits of
// one process (the merged top-k, ties by document index).
#define W 3
typedef struct {
    pthread_barrier_t bar;
    const void *send[W];
    const Tiny *t;
    DocStore *s;
    Hits *got[W];
} FakeJob;
typedef struct { FakeJob *job; int rank; } FakeRank;

static int fake_allgather(void *user, const void *send, size_t bytes, void *recv) {
    FakeRank *r = user;
    r->job->send[r->rank] = send;
    pthread_barrier_wait(&r->job->bar);
    for (int i = 0; i < W; i++) memcpy((char *)recv + (size_t)i * bytes, r->job->send[i], bytes);
    pthread_barrier_wait(&r->job->bar);   // nobody frees its send buffer before all have copied
    return 0;
}
static void *rank_main(void *arg) {
    FakeRank *r = arg;
    SearchOptions so = opts(10, HYP_CPU);
    so.shard = (SearchShard){.rank = r->rank, .world = W, .allgather = fake_allgather, .user = r};
    Tokenizer *tok = tiny_tok();
    r->job->got[r->rank] = hyp_calloc(1, sizeof(Hits));
    if (search_run(&r->job->t->sm, tok, r->job->s, QIDS, QTEXT, NQ, &so, collect, r->job->got[r->rank], NULL))
        r->job->got[r->rank]->n[0] = -1;
    tok_free(tok);
    return NULL;
}

static void sharded_equals_one(SearchKind kind) {
    Tiny t;
    tiny_new(&t, kind, HYP_CPU, 7);
    DocStore *s = tiny_store(99);
    Hits *one = run_driver(&t, s, opts(10, HYP_CPU), NULL);
    FakeJob job = {.t = &t, .s = s};
    pthread_barrier_init(&job.bar, NULL, W);
    FakeRank ranks[W];
    pthread_t th[W];
    for (int r = 0; r < W; r++) {
        ranks[r] = (FakeRank){&job, r};
        cr_assert_eq(pthread_create(&th[r], NULL, rank_main, &ranks[r]), 0);
    }
    for (int r = 0; r < W; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&job.bar);
    for (int r = 0; r < W; r++) {
        cr_assert_neq(job.got[r]->n[0], -1, "rank %d failed", r);
        expect_hits(job.got[r], one, "sharded");
        free(job.got[r]);
    }
    free(one);
    docstore_free(s);
    tiny_free(&t);
}
Test(driver, sharded_hypencoder_equals_one_process) { sharded_equals_one(SEARCH_HYPENCODER); }
Test(driver, sharded_biencoder_equals_one_process) { sharded_equals_one(SEARCH_BIENCODER); }

// ---------------------------------------------------------------- CUDA = CPU
// The model on the GPU (same seed: Philox init is the same on both devices), documents
// scored on the GPU: the hits equal the CPU's.
static void cuda_equals_cpu(SearchKind kind, bool graph) {
    RUN_ON_CUDA_OR_SKIP();
    Tiny cpu, gpu;
    tiny_new(&cpu, kind, HYP_CPU, 7);
    tiny_new(&gpu, kind, HYP_CUDA, 7);
    DocStore *s = tiny_store(99);
    Graph g = {0};
    SearchOptions so = opts(10, HYP_CPU);
    if (graph) {
        GraphBuildOptions bo = {.k = 4};
        cr_assert_eq(graph_build_exact(s, &bo, &g), 0, "%s", hyp_last_error());
        so.graph = &g;
        so.graph_opts.entry_points = 16;
        so.graph_opts.candidates = 4;
        so.graph_opts.max_iter = 4;
    }
    Hits *want = run_driver(&cpu, s, so, NULL);
    so.device = HYP_CUDA;
    Hits *got = run_driver(&gpu, s, so, NULL);
    expect_hits(got, want, "cuda vs cpu");
    free(got);
    free(want);
    graph_free(&g);
    docstore_free(s);
    tiny_free(&gpu);
    tiny_free(&cpu);
}
Test(driver_cuda, hypencoder_exhaustive) { cuda_equals_cpu(SEARCH_HYPENCODER, false); }
Test(driver_cuda, hypencoder_graph) { cuda_equals_cpu(SEARCH_HYPENCODER, true); }
Test(driver_cuda, biencoder_dense) { cuda_equals_cpu(SEARCH_BIENCODER, false); }
Test(driver_cuda, plain_bert_cosine) { cuda_equals_cpu(SEARCH_BERT, false); }

// ---------------------------------------------------------------- validation on CUDA = CPU
// A short training run validates twice; with eval.device=cuda (the training on the CPU) the
// validation metrics equal those with eval.device=cpu, for both model kinds.
#include "train/trainer.h"
static void validation_cuda_equals_cpu(const char *kind) {
    RUN_ON_CUDA_OR_SKIP();
    char dir[64];
    make_synth_task(dir, sizeof dir, "/tmp/hyp_valdev", 200, 80, 4);
    TrainSummary sum[2];
    const char *devs[2] = {"cpu", "cuda"};
    for (int r = 0; r < 2; r++) {
        char s[9][256];
        snprintf(s[0], sizeof s[0], "data.train=%s/data/train.jsonl", dir);
        snprintf(s[1], sizeof s[1], "data.vocab=%s/data/vocab.txt", dir);
        snprintf(s[2], sizeof s[2], "eval.corpus=%s/data/corpus.tsv", dir);
        snprintf(s[3], sizeof s[3], "eval.queries=%s/data/val_queries.tsv", dir);
        snprintf(s[4], sizeof s[4], "eval.qrels=%s/data/val_qrels.txt", dir);
        snprintf(s[5], sizeof s[5], "train.max_steps=4");
        snprintf(s[6], sizeof s[6], "eval.every=2");
        snprintf(s[7], sizeof s[7], "eval.device=%s", devs[r]);
        snprintf(s[8], sizeof s[8], "model.kind=%s", kind);
        const char *sets[9] = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]};
        char out[128];
        snprintf(out, sizeof out, "%s/run_%s", dir, devs[r]);
        TrainOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = 9, .out_dir = out,
                          .device = HYP_CPU, .quiet = true};
        cr_assert_eq(train_run(&o, &sum[r]), 0, "eval.device=%s: %s", devs[r], hyp_last_error());
    }
    for (int i = 0; i < 3; i++) {
        cr_assert(!isnan(sum[0].final_metric[i]), "metric %d not computed", i);
        cr_assert(fabs(sum[1].final_metric[i] - sum[0].final_metric[i]) <= 1e-9, "%s metric %d: cuda %.9f, cpu %.9f",
                  kind, i, sum[1].final_metric[i], sum[0].final_metric[i]);
    }
    cr_assert_gt(sum[0].final_metric[1], 0, "nDCG@10 is 0: the comparison would hold for any ranking");
    cr_assert_eq(sum[1].best_step, sum[0].best_step);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
Test(driver_cuda, validation_hypencoder) { validation_cuda_equals_cpu("hypencoder"); }
Test(driver_cuda, validation_biencoder) { validation_cuda_equals_cpu("biencoder"); }
