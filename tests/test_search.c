// Retrieval: embedding store (block reads, fp16/bf16, bad files), top-k heap ordering,
// exhaustive q-net search == scoring every document one by one (qnet_score_shared),
// exact k-NN graph == naive O(N^2) distances (self excluded in every block, ties by index),
// NN-descent recall, k-means, graph files, Algorithm 1 == a straightforward implementation,
// hyp+ validity and recall at equal budget, clear errors on mismatched inputs.
#include "tests/testlib.h"
#include "search/store.h"
#include "search/exhaustive.h"
#include "search/graph.h"
#include "search/graph_search.h"
#include "model/hypencoder.h"
#include "autograd/gradcheck.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- helpers
static float *rand_matrix(long n, int d, uint64_t seed, float lo, float hi) {
    float *x = hyp_malloc((size_t)n * d * sizeof(float));
    fill_uniform(x, (size_t)n * d, lo, hi, seed);
    return x;
}

// Points around `nc` centres (clustered corpus).
static float *clustered(long n, int d, int nc, float spread, uint64_t seed) {
    float *cent = rand_matrix(nc, d, seed, -1, 1), *x = rand_matrix(n, d, seed + 1, -spread, spread);
    for (long i = 0; i < n; i++) {
        int c = (int)(search_rand_u64(seed, 3, (uint64_t)i) % (uint64_t)nc);
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] += cent[(size_t)c * d + j];
    }
    free(cent);
    return x;
}

typedef struct {
    ParamSet *ps;
    Hypencoder m;
    Ctx *c;
    QNet q;
    QNetHost h;
} TinyModel;

// A random tiny Hypencoder; its hyperhead makes B q-nets of width dim from random token states.
static void tiny_model(TinyModel *t, int B, int dim, int layers, uint64_t seed) {
    HypencoderConfig cfg = hypencoder_config_default(layers);
    cfg.bert = (BertConfig){.vocab_size = 8, .hidden = dim, .layers = 1, .heads = 2, .ffn = 8, .max_positions = 8,
                            .type_vocab_size = 2, .ln_eps = 1e-12f, .pad_token_id = 0, .pooler = false};
    t->ps = paramset_new(HYP_CPU);
    hypencoder_register(&t->m, t->ps, &cfg);
    paramset_finalize(t->ps);
    hypencoder_init(&t->m, seed);
    t->c = ctx_new(HYP_CPU);
    no_grad_begin(t->c);
    int T = 5;
    Tensor *H = tensor_rand(t->c, HYP_SHAPE(B, T, dim), -1, 1, seed + 11, false);
    Tensor *mask = tensor_new(t->c, HYP_I32, HYP_SHAPE(B, T));
    for (int i = 0; i < B * T; i++) tensor_i32(mask)[i] = (i % T) < T - (i / T) % 2;   // some padding
    t->q = hyperhead_forward(t->c, &t->m, H, mask);
    t->h = qnet_host_from(&t->q);
}
static void tiny_free(TinyModel *t) {
    qnet_host_free(&t->h);
    no_grad_end(t->c);
    ctx_free(t->c);
    hypencoder_free(&t->m);
    paramset_free(t->ps);
}

// Every document scored on its own: (B, N) through the autograd ops (qnet_score_shared).
static float *brute_scores(TinyModel *t, const float *X, long N) {
    int B = t->q.B, d = t->q.dim;
    float *s = hyp_malloc((size_t)B * N * sizeof(float));
    for (long i = 0; i < N; i++) {
        Tensor *x = tensor_from_floats(t->c, X + (size_t)i * d, HYP_SHAPE(1, d), false);
        Tensor *sc = qnet_score_shared(t->c, &t->q, x);
        float tmp[64];
        tensor_to_host(sc, tmp);
        for (int b = 0; b < B; b++) s[(size_t)b * N + i] = tmp[b];
    }
    return s;
}

static char tmpdir[256];
static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/hyp_test_search_%d", (int)getpid());
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
        cr_assert(system(cmd) == 0);
    }
    char *b = buf[k++ % 4];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

// ---------------------------------------------------------------- top-k
Test(search, topk_exact_order_with_ties) {
    int n = 2000;
    float *s = hyp_malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) s[i] = (float)(search_rand_u64(1, 1, i) % 37);   // many ties
    Hit *all = hyp_malloc(n * sizeof(Hit));
    for (int i = 0; i < n; i++) all[i] = (Hit){s[i], i};
    hits_sort(all, n);
    for (int i = 1; i < n; i++)
        cr_assert(all[i - 1].score > all[i].score || (all[i - 1].score == all[i].score && all[i - 1].idx < all[i].idx));
    for (int k = 1; k <= 300; k += 37) {
        TopK t;
        topk_init(&t, k);
        for (int i = n - 1; i >= 0; i--) topk_offer(&t, s[i], i);   // reverse offering order
        Hit *got = hyp_malloc(k * sizeof(Hit));
        cr_assert_eq(topk_sorted(&t, got), k);
        for (int j = 0; j < k; j++)
            cr_assert(got[j].idx == all[j].idx && got[j].score == all[j].score, "k=%d rank %d: %d vs %d", k, j,
                      got[j].idx, all[j].idx);
        free(got);
        topk_free(&t);
    }
    // strict rule: equal score to the minimum never replaces it
    TopK t;
    topk_init(&t, 2);
    cr_assert(topk_offer_strict(&t, 1.0f, 5));
    cr_assert(topk_offer_strict(&t, 2.0f, 6));
    cr_assert(!topk_offer_strict(&t, 1.0f, 0));
    cr_assert(topk_offer_strict(&t, 1.5f, 7));
    Hit h[2];
    topk_sorted(&t, h);
    cr_assert(h[0].idx == 6 && h[1].idx == 7);
    topk_free(&t);
    free(s);
    free(all);
}

// ---------------------------------------------------------------- store
Test(search, store_block_reads_equal_whole_reads) {
    long N = 1003;
    int d = 12;
    float *X = rand_matrix(N, d, 7, -3, 3);
    const char *p = tmp_path("docs.h5");
    cr_assert(docstore_write(p, X, N, d, NULL) == 0, "%s", hyp_last_error());
    DocStore *mem = docstore_open(p, &(DocStoreOptions){.block_rows = 7});
    DocStore *str = docstore_open(p, &(DocStoreOptions){.streaming = true});
    DocStore *h16 = docstore_open(p, &(DocStoreOptions){.dtype = STORE_F16, .block_rows = 100});
    DocStore *b16 = docstore_open(p, &(DocStoreOptions){.dtype = STORE_BF16});
    cr_assert(mem && str && h16 && b16, "%s", hyp_last_error());
    cr_assert_eq(docstore_n(mem), N);
    cr_assert_eq(docstore_dim(str), d);
    cr_assert_str_eq(docstore_id(mem, 17), "17");
    cr_assert_eq(docstore_find(str, "1002"), 1002);
    cr_assert_eq(docstore_find(str, "nope"), -1);
    float *buf = hyp_malloc((size_t)N * d * sizeof(float));
    long ranges[][2] = {{0, N}, {0, 1}, {5, 64}, {999, 4}, {500, 0}};
    for (int r = 0; r < 5; r++) {
        long s0 = ranges[r][0], n = ranges[r][1];
        cr_assert(docstore_rows(mem, s0, n, buf) == 0);
        cr_assert(memcmp(buf, X + s0 * d, (size_t)n * d * 4) == 0, "in-memory rows %ld+%ld", s0, n);
        cr_assert(docstore_rows(str, s0, n, buf) == 0);
        cr_assert(memcmp(buf, X + s0 * d, (size_t)n * d * 4) == 0, "streamed rows %ld+%ld", s0, n);
        cr_assert(docstore_rows(h16, s0, n, buf) == 0);
        for (long i = 0; i < n * d; i++) cr_assert_eq(buf[i], store_f16_to_f32(store_f32_to_f16(X[s0 * d + i])));
    }
    cr_assert(docstore_rows(mem, 1000, 4, buf) != 0, "a range past the end must fail");
    int32_t idx[5] = {1002, 0, 17, 17, 400};
    cr_assert(docstore_gather(str, idx, 5, buf) == 0);
    for (int i = 0; i < 5; i++) cr_assert(memcmp(buf + i * d, X + (size_t)idx[i] * d, d * 4) == 0);
    cr_assert(docstore_gather(b16, idx, 5, buf) == 0);
    double e = rel_err(buf, X + (size_t)1002 * d, d);
    cr_assert(e < 1e-2, "bf16 rounding %g", e);
    int32_t bad = (int32_t)N;
    cr_assert(docstore_gather(mem, &bad, 1, buf) != 0);
    // fp16 specifics: rounding to nearest even, overflow to inf, subnormals
    cr_assert_eq(store_f16_to_f32(store_f32_to_f16(1.0f + 1.0f / 2048)), 1.0f);          // tie -> even
    cr_assert_eq(store_f16_to_f32(store_f32_to_f16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
    cr_assert(isinf(store_f16_to_f32(store_f32_to_f16(70000.0f))));
    cr_assert_eq(store_f16_to_f32(store_f32_to_f16(65504.0f)), 65504.0f);
    cr_assert_eq(store_f16_to_f32(store_f32_to_f16(5.9604645e-8f)), 5.9604645e-8f);      // smallest subnormal
    cr_assert_eq(store_f16_to_f32(store_f32_to_f16(-2.5e-6f)), -2.503395e-6f);
    docstore_free(mem);
    docstore_free(str);
    docstore_free(h16);
    docstore_free(b16);
    free(buf);
    free(X);
}

Test(search, store_bad_inputs) {
    cr_assert_null(docstore_open("/nonexistent/docs.h5", NULL));
    cr_assert(strstr(hyp_last_error(), "/nonexistent/docs.h5"));
    const char *p = tmp_path("noemb.h5");
    H5File *f = h5_create(p);
    h5_write_f32(f, "/other", (float[]){1, 2}, 1, (int[]){2});
    h5_close(f);
    cr_assert_null(docstore_open(p, NULL));
    cr_assert(strstr(hyp_last_error(), "/embeddings"), "%s", hyp_last_error());
    // 1-D embeddings
    f = h5_create(p);
    h5_write_f32(f, "/embeddings", (float[]){1, 2}, 1, (int[]){2});
    h5_close(f);
    cr_assert_null(docstore_open(p, NULL));
    cr_assert(strstr(hyp_last_error(), "2-D"), "%s", hyp_last_error());
    // missing /ids
    f = h5_create(p);
    h5_write_f32(f, "/embeddings", (float[]){1, 2, 3, 4}, 2, (int[]){2, 2});
    h5_close(f);
    cr_assert_null(docstore_open(p, NULL));
    cr_assert(strstr(hyp_last_error(), "/ids"), "%s", hyp_last_error());
    // ids count mismatch
    f = h5_create(p);
    h5_write_f32(f, "/embeddings", (float[]){1, 2, 3, 4, 5, 6}, 2, (int[]){3, 2});
    h5_write_strings(f, "/ids", (const char *[]){"a", "b"}, 2);
    cr_assert(h5_close(f) == 0);
    cr_assert_null(docstore_open(p, NULL));
    cr_assert(strstr(hyp_last_error(), "/ids has 2"), "%s", hyp_last_error());
    const char *ids[] = {"a", "b", "c"};
    float x[6] = {1, 2, 3, 4, 5, 6};
    cr_assert(docstore_write(p, x, 3, 2, ids) == 0);
    DocStore *s = docstore_open(p, NULL);
    cr_assert_not_null(s);
    cr_assert_eq(docstore_find(s, "c"), 2);
    docstore_free(s);
    // not HDF5 at all
    FILE *fp = fopen(p, "w");
    fputs("hello", fp);
    fclose(fp);
    cr_assert_null(docstore_open(p, NULL));
    cr_assert(strstr(hyp_last_error(), "HDF5"), "%s", hyp_last_error());
}

// ---------------------------------------------------------------- exhaustive
static void check_against_brute(const SearchResult *r, const float *bs, long N, int k, long skip, const char *what) {
    // Expected: brute-force scores sorted (score desc, index asc), skip removed.
    Hit *all = hyp_malloc((size_t)N * sizeof(Hit));
    long m = 0;
    for (long i = 0; i < N; i++) if (i != skip) all[m++] = (Hit){bs[i], (int32_t)i};
    hits_sort(all, m);
    long want = k < m ? k : m;
    cr_assert_eq(r->n, want, "%s: %d hits, expected %ld", what, r->n, want);
    double scale = fabs(all[0].score) + 1e-3;
    for (int j = 0; j < r->n; j++) {
        const Hit *g = &r->hits[j], *e = &all[j];
        cr_assert(g->idx != skip, "%s: the query's own document was returned", what);
        // identical to scoring one by one up to fp32 rounding (relative 1e-6)
        cr_assert(fabs(g->score - bs[g->idx]) <= 1e-6 * scale, "%s: rank %d doc %d score %.9g, one-by-one %.9g", what, j,
                  g->idx, g->score, bs[g->idx]);
        cr_assert(g->idx == e->idx || fabs(bs[g->idx] - e->score) <= 1e-6 * scale,
                  "%s: rank %d: doc %d (%.9g), expected doc %d (%.9g)", what, j, g->idx, bs[g->idx], e->idx, e->score);
        if (j > 0) {
            const Hit *p = &r->hits[j - 1];
            cr_assert(p->score > g->score || (p->score == g->score && p->idx < g->idx), "%s: order at rank %d", what, j);
        }
    }
    free(all);
}

Test(search, exhaustive_equals_brute_force) {
    int B = 3, d = 16;
    long N = 517;
    TinyModel t;
    tiny_model(&t, B, d, 3, 21);
    float *X = rand_matrix(N, d, 5, -2, 2);
    memcpy(X + 21 * d, X + 20 * d, d * sizeof(float));     // exact duplicates: equal scores
    memcpy(X + 400 * d, X + 10 * d, d * sizeof(float));
    float *bs = brute_scores(&t, X, N);
    // the direct scorer equals the autograd path document by document
    float *sc = hyp_malloc(N * sizeof(float));
    QNetWork w = {0};
    for (int b = 0; b < B; b++) {
        qnet_host_score(&t.h, b, X, N, sc, &w);
        double e = rel_err(sc, bs + (size_t)b * N, N);
        cr_assert(e <= 1e-6, "query %d: direct scorer vs qnet_score_shared rel err %g", b, e);
    }
    qnet_work_free(&w);
    DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
    int ks[] = {1, 10, 50, 600};
    long blocks[] = {64, 100, 100000};
    for (int ki = 0; ki < 4; ki++)
        for (int bi = 0; bi < 3; bi++) {
            SearchResult r[3] = {0};
            ExhaustiveOptions o = {.k = ks[ki], .block_rows = blocks[bi]};
            cr_assert(exhaustive_search(s, &t.h, NULL, &o, r) == 0, "%s", hyp_last_error());
            for (int b = 0; b < B; b++) {
                char what[64];
                snprintf(what, sizeof what, "k=%d block=%ld query %d", ks[ki], blocks[bi], b);
                check_against_brute(&r[b], bs + (size_t)b * N, N, ks[ki], -1, what);
                cr_assert_eq(r[b].scored, N);
                // one query at a time gives the same hits as the batch
                QNetHost one = qnet_host_slice(&t.h, b, 1);
                SearchResult r1 = {0};
                cr_assert(exhaustive_search(s, &one, NULL, &o, &r1) == 0);
                cr_assert_eq(r1.n, r[b].n);
                for (int j = 0; j < r1.n; j++)
                    cr_assert(r1.hits[j].idx == r[b].hits[j].idx && r1.hits[j].score == r[b].hits[j].score);
                search_result_free(&r1);
                search_result_free(&r[b]);
            }
        }
    // ties: the duplicates score identically and come out lower index first
    SearchResult r[3] = {0};
    cr_assert(exhaustive_search(s, &t.h, NULL, &(ExhaustiveOptions){.k = (int)N}, r) == 0);
    for (int b = 0; b < B; b++) {
        int p20 = -1, p21 = -1;
        for (int j = 0; j < r[b].n; j++) {
            if (r[b].hits[j].idx == 20) p20 = j;
            if (r[b].hits[j].idx == 21) p21 = j;
        }
        cr_assert(p20 >= 0 && p21 == p20 + 1, "query %d: duplicate documents 20, 21 at ranks %d, %d", b, p20, p21);
        cr_assert_eq(r[b].hits[p20].score, r[b].hits[p21].score);
        search_result_free(&r[b]);
    }
    // ignore_same_id: each query's id is the id of its best document
    char *qids[3];
    for (int b = 0; b < B; b++) {
        long best = 0;
        for (long i = 1; i < N; i++) if (bs[(size_t)b * N + i] > bs[(size_t)b * N + best]) best = i;
        qids[b] = hyp_strdup(docstore_id(s, best));
    }
    cr_assert(exhaustive_search(s, &t.h, (const char *const *)qids, &(ExhaustiveOptions){.k = 20, .ignore_same_id = true,
                                .block_rows = 50}, r) == 0);
    for (int b = 0; b < B; b++) {
        check_against_brute(&r[b], bs + (size_t)b * N, N, 20, docstore_find(s, qids[b]), "ignore_same_id");
        search_result_free(&r[b]);
        free(qids[b]);
    }
    // fp16 and bf16 storage: scores close to fp32
    for (int dt = 1; dt <= 2; dt++) {
        DocStore *h = docstore_from_memory(X, N, d, NULL, (StoreDType)dt);
        cr_assert(exhaustive_search(h, &t.h, NULL, &(ExhaustiveOptions){.k = 10}, r) == 0);
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < r[b].n; j++)
                cr_assert(fabs(r[b].hits[j].score - bs[(size_t)b * N + r[b].hits[j].idx]) < 5e-2 * (fabs(bs[b * N]) + 1));
            search_result_free(&r[b]);
        }
        docstore_free(h);
    }
    // wrong dimension: a clear error
    DocStore *bad = docstore_from_memory(X, N / 2, 2 * d, NULL, STORE_F32);
    cr_assert(exhaustive_search(bad, &t.h, NULL, NULL, r) != 0);
    cr_assert(strstr(hyp_last_error(), "dimension"), "%s", hyp_last_error());
    docstore_free(bad);
    docstore_free(s);
    free(sc);
    free(bs);
    free(X);
    tiny_free(&t);
}

Test(search, exhaustive_streaming_store_equals_memory) {
    int B = 2, d = 8;
    long N = 300;
    TinyModel t;
    tiny_model(&t, B, d, 2, 3);
    float *X = rand_matrix(N, d, 9, -1, 1);
    const char *p = tmp_path("stream.h5");
    cr_assert(docstore_write(p, X, N, d, NULL) == 0);
    DocStore *a = docstore_open(p, NULL), *b = docstore_open(p, &(DocStoreOptions){.streaming = true});
    SearchResult ra[2] = {0}, rb[2] = {0};
    ExhaustiveOptions o = {.k = 40, .block_rows = 33};
    cr_assert(exhaustive_search(a, &t.h, NULL, &o, ra) == 0);
    cr_assert(exhaustive_search(b, &t.h, NULL, &o, rb) == 0);
    for (int q = 0; q < B; q++) {
        cr_assert_eq(ra[q].n, rb[q].n);
        for (int j = 0; j < ra[q].n; j++) cr_assert(ra[q].hits[j].idx == rb[q].hits[j].idx);
        search_result_free(&ra[q]);
        search_result_free(&rb[q]);
    }
    docstore_free(a);
    docstore_free(b);
    free(X);
    tiny_free(&t);
}

// ---------------------------------------------------------------- graph
// Integer coordinates: every distance is exact in fp32 whichever formula computes it, so
// the GEMM graph must equal the naive one exactly, ties included.
static void naive_knn(const float *X, long N, int d, int k, int32_t *out) {
    Hit *h = hyp_malloc((size_t)N * sizeof(Hit));
    for (long i = 0; i < N; i++) {
        long m = 0;
        for (long j = 0; j < N; j++) {
            if (j == i) continue;
            float s = 0;
            for (int c = 0; c < d; c++) {
                float t = X[i * d + c] - X[j * d + c];
                s += t * t;
            }
            h[m++] = (Hit){-s, (int32_t)j};
        }
        hits_sort(h, m);
        for (int j = 0; j < k; j++) out[i * k + j] = j < m ? h[j].idx : -1;
    }
    free(h);
}

Test(search, exact_graph_equals_naive) {
    long Ns[] = {203, 8, 1};
    for (int t = 0; t < 3; t++) {
        long N = Ns[t];
        int d = 5, k = 10;
        float *X = rand_matrix(N, d, 40 + t, -3, 3.99f);
        for (long i = 0; i < N * d; i++) X[i] = floorf(X[i]);
        if (N > 100) memcpy(X + 77 * d, X + 3 * d, d * sizeof(float));   // a duplicate at distance 0
        DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
        int32_t *want = hyp_malloc((size_t)N * k * sizeof(int32_t));
        naive_knn(X, N, d, k, want);
        long blocks[] = {16, 7, 1000};
        for (int b = 0; b < 3; b++) {
            Graph g;
            cr_assert(graph_build_exact(s, &(GraphBuildOptions){.k = k, .block_rows = blocks[b]}, &g) == 0);
            cr_assert_eq(g.n, N);
            cr_assert_eq(g.k, k);
            for (long i = 0; i < N * k; i++)
                cr_assert_eq(g.nbr[i], want[i], "N=%ld block=%ld row %ld slot %ld: %d vs naive %d", N, blocks[b], i / k,
                             i % k, g.nbr[i], want[i]);
            graph_free(&g);
        }
        if (N > 100) {
            cr_assert_eq(want[3 * k], 77);   // the duplicate is the nearest, self is excluded
            cr_assert_eq(want[77 * k], 3);
        }
        free(want);
        docstore_free(s);
        free(X);
    }
}

Test(search, graph_file_roundtrip_and_errors) {
    long N = 300;
    int d = 6;
    float *X = clustered(N, d, 5, 0.2f, 3);
    DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph g, r;
    cr_assert(graph_build_exact(s, &(GraphBuildOptions){.k = 7}, &g) == 0);
    cr_assert(graph_kmeans(s, &(KMeansOptions){.centroids = 6, .iters = 5, .seed = 1}, &g) == 0);
    const char *p = tmp_path("graph.h5");
    cr_assert(graph_write(p, &g) == 0, "%s", hyp_last_error());
    cr_assert(graph_read(p, N, &r) == 0, "%s", hyp_last_error());
    cr_assert(r.n == N && r.k == 7 && r.n_centroids == 6 && r.dim == d);
    cr_assert(memcmp(r.nbr, g.nbr, N * 7 * 4) == 0);
    cr_assert(memcmp(r.cl_members, g.cl_members, N * 4) == 0);
    cr_assert_str_eq(r.builder, "exact");
    graph_free(&r);
    // N mismatch
    cr_assert(graph_read(p, N + 1, &r) != 0);
    cr_assert(strstr(hyp_last_error(), "301"), "%s", hyp_last_error());
    // out-of-range neighbour
    g.nbr[5] = (int32_t)N;
    cr_assert(graph_write(p, &g) == 0);
    cr_assert(graph_read(p, N, &r) != 0);
    cr_assert(strstr(hyp_last_error(), "outside"), "%s", hyp_last_error());
    // not a graph
    cr_assert(docstore_write(p, X, N, d, NULL) == 0);
    cr_assert(graph_read(p, N, &r) != 0);
    cr_assert(strstr(hyp_last_error(), "/neighbors"), "%s", hyp_last_error());
    // k-means: clusters partition the documents, members nearest first
    long seen = 0;
    for (int c = 0; c < g.n_centroids; c++)
        for (int32_t m = g.cl_off[c]; m < g.cl_off[c + 1]; m++, seen++) {
            if (m > g.cl_off[c]) {
                float da = 0, db = 0;
                for (int j = 0; j < d; j++) {
                    float a = X[g.cl_members[m - 1] * d + j] - g.centroids[c * d + j];
                    float b = X[g.cl_members[m] * d + j] - g.centroids[c * d + j];
                    da += a * a;
                    db += b * b;
                }
                cr_assert(da <= db + 1e-4f);
            }
        }
    cr_assert_eq(seen, N);
    graph_free(&g);
    docstore_free(s);
    free(X);
}

Test(search, nndescent_recall) {
    long N = 3000;
    int d = 16, k = 10;
    float *X = clustered(N, d, 20, 0.3f, 8);
    DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph a, e;
    cr_assert(graph_build_nndescent(s, &(GraphBuildOptions){.k = k, .seed = 1}, &a) == 0);
    cr_assert(graph_build_exact(s, &(GraphBuildOptions){.k = k}, &e) == 0);
    long hit = 0;
    for (long i = 0; i < N; i++)
        for (int j = 0; j < k; j++) {
            cr_assert(a.nbr[i * k + j] != i && a.nbr[i * k + j] >= 0);
            for (int l = 0; l < k; l++) if (a.nbr[i * k + j] == e.nbr[i * k + l]) { hit++; break; }
        }
    double full = (double)hit / (N * k), sampled = graph_recall_sample(s, &a, 300, 2);
    cr_assert(full >= 0.9, "NN-descent recall@%d %.3f", k, full);
    cr_assert(fabs(sampled - full) < 0.05, "sampled recall %.3f vs full %.3f", sampled, full);
    cr_assert(graph_recall_sample(s, &e, 100, 3) == 1.0);
    graph_free(&a);
    graph_free(&e);
    docstore_free(s);
    free(X);
}

// ---------------------------------------------------------------- graph search
// A table of scores per (query, document) as the scorer.
typedef struct { const float *s; long N; } Table;
static void table_docs(void *u, int q, const int32_t *idx, long n, float *out) {
    Table *t = u;
    for (long i = 0; i < n; i++) out[i] = t->s[(size_t)q * t->N + idx[i]];
}

// Algorithm 1 as the authors' code runs it, written plainly: arrays, linear scans, no heap.
typedef struct { int n; Hit h[4096]; long scored; int iters; } RefOut;
static void reference_alg1(const float *s, long N, const int32_t *nbr, int gk, const int32_t *entries, long ne,
                           int k, int ncand, int max_iter, bool early, long skip, RefOut *out) {
    bool *explored = hyp_calloc(N, 1);
    int32_t *cand = hyp_malloc(N * 4), *next = hyp_malloc(N * 4);
    Hit *ranked = hyp_malloc(N * sizeof(Hit));
    long nc = 0;
    for (long i = 0; i < ne; i++) { cand[nc++] = entries[i]; explored[entries[i]] = true; }
    out->n = 0;
    out->scored = 0;
    out->iters = 0;
    for (int it = 0; it < max_iter && nc > 0; it++) {
        for (long i = 0; i < nc; i++) ranked[i] = (Hit){s[cand[i]], cand[i]};
        out->scored += nc;
        // insertion sort: score descending, ties by smaller index
        for (long i = 1; i < nc; i++) {
            Hit x = ranked[i];
            long j = i - 1;
            while (j >= 0 && (ranked[j].score < x.score || (ranked[j].score == x.score && ranked[j].idx > x.idx))) {
                ranked[j + 1] = ranked[j];
                j--;
            }
            ranked[j + 1] = x;
        }
        long kk = ncand > k ? ncand : k;
        if (kk > nc) kk = nc;
        long nn = 0, added = 0;
        for (long i = 0; i < kk; i++) {
            if (ranked[i].idx != skip) {
                if (out->n < k) { out->h[out->n++] = ranked[i]; added++; }
                else {
                    int w = 0;   // the minimum: lowest score, ties the larger index
                    for (int j = 1; j < out->n; j++)
                        if (out->h[j].score < out->h[w].score || (out->h[j].score == out->h[w].score && out->h[j].idx > out->h[w].idx)) w = j;
                    if (ranked[i].score > out->h[w].score) { out->h[w] = ranked[i]; added++; }
                }
            }
            if (i < ncand)
                for (int j = 0; j < gk; j++) {
                    int32_t v = nbr[ranked[i].idx * gk + j];
                    if (v >= 0 && !explored[v]) { explored[v] = true; next[nn++] = v; }
                }
        }
        out->iters = it + 1;
        if (early && added == 0) break;
        memcpy(cand, next, nn * 4);
        nc = nn;
    }
    hits_sort(out->h, out->n);
    free(explored);
    free(cand);
    free(next);
    free(ranked);
}

Test(search, graph_search_equals_reference_algorithm1) {
    long N = 700;
    int d = 8, gk = 8, Q = 4;
    float *X = rand_matrix(N, d, 77, -1, 1);
    DocStore *st = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph g;
    cr_assert(graph_build_exact(st, &(GraphBuildOptions){.k = gk}, &g) == 0);
    // random scores on a coarse grid: many exact ties
    float *s = hyp_malloc((size_t)Q * N * sizeof(float));
    for (long i = 0; i < Q * N; i++) s[i] = (float)(search_rand_u64(9, 4, i) % 50) * 0.25f;
    Table tb = {s, N};
    GraphScorer sc = {.user = &tb, .docs = table_docs};
    int Es[] = {1, 5, 50, 1000}, Cs[] = {1, 3, 10}, Ks[] = {5, 20, 1000}, Is[] = {1, 3, 16};
    static RefOut ref;
    int cases = 0;
    for (int e = 0; e < 4; e++)
        for (int c = 0; c < 3; c++)
            for (int kk = 0; kk < 3; kk++)
                for (int it = 0; it < 3; it++)
                    for (int early = 0; early < 2; early++) {
                        GraphSearchOptions o = graph_search_defaults();
                        o.entry_points = Es[e];
                        o.candidates = Cs[c];
                        o.k = Ks[kk];
                        o.max_iter = Is[it];
                        o.no_early_stop = !early;
                        o.seed = 43 + e;
                        GraphSearcher *gs = graph_searcher_new(&g, N, d, &o);
                        cr_assert_not_null(gs, "%s", hyp_last_error());
                        long ne;
                        const int32_t *ent = graph_searcher_entries(gs, &ne);
                        cr_assert_eq(ne, Es[e] < N ? Es[e] : N);
                        for (int q = 0; q < Q; q++) {
                            long skip = q == 1 ? ent[0] : -1;
                            SearchResult r = {0};
                            cr_assert(graph_search(gs, &sc, q, skip, &r) == 0);
                            reference_alg1(s + (size_t)q * N, N, g.nbr, gk, ent, ne, o.k, o.candidates, o.max_iter, early,
                                           skip, &ref);
                            cr_assert_eq(r.n, ref.n, "E=%d C=%d k=%d it=%d early=%d q=%d: %d hits vs %d", Es[e], Cs[c], Ks[kk],
                                         Is[it], early, q, r.n, ref.n);
                            cr_assert_eq(r.scored, ref.scored);
                            cr_assert_eq(r.iterations, ref.iters);
                            for (int j = 0; j < r.n; j++)
                                cr_assert(r.hits[j].idx == ref.h[j].idx && r.hits[j].score == ref.h[j].score,
                                          "rank %d: %d vs reference %d", j, r.hits[j].idx, ref.h[j].idx);
                            // every document scored at most once
                            cr_assert(r.scored <= N);
                            search_result_free(&r);
                            cases++;
                        }
                        graph_searcher_free(gs);
                    }
    cr_assert_eq(cases, 4 * 3 * 3 * 3 * 2 * Q);
    // the entry sample: distinct, in range, deterministic in the seed
    int32_t a[100], b[100];
    cr_assert_eq(search_sample(N, 100, 5, a), 100);
    search_sample(N, 100, 5, b);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < i; j++) cr_assert(a[i] != a[j] && a[i] >= 0 && a[i] < N);
    free(s);
    graph_free(&g);
    docstore_free(st);
    free(X);
}

// The production scorer (q-net on gathered rows) gives the reference's result on q-net scores.
Test(search, graph_search_qnet_scorer_matches_reference) {
    long N = 800;
    int d = 16, B = 2;
    TinyModel t;
    tiny_model(&t, B, d, 2, 17);
    float *X = clustered(N, d, 8, 0.4f, 19);
    DocStore *st = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph g;
    cr_assert(graph_build_exact(st, &(GraphBuildOptions){.k = 10}, &g) == 0);
    float *full = hyp_malloc((size_t)B * N * sizeof(float));
    QNetWork w = {0};
    for (int b = 0; b < B; b++) qnet_host_score(&t.h, b, X, N, full + (size_t)b * N, &w);
    qnet_work_free(&w);
    QNetStoreScorer ctx;
    GraphScorer sc = qnet_store_scorer(&ctx, st, &t.h);
    GraphSearchOptions o = graph_search_defaults();
    o.entry_points = 40;
    o.candidates = 4;
    o.k = 50;
    o.max_iter = 8;
    GraphSearcher *gs = graph_searcher_new(&g, N, d, &o);
    long ne;
    const int32_t *ent = graph_searcher_entries(gs, &ne);
    static RefOut ref;
    for (int b = 0; b < B; b++) {
        SearchResult r = {0};
        graph_search(gs, &sc, b, -1, &r);
        reference_alg1(full + (size_t)b * N, N, g.nbr, g.k, ent, ne, o.k, o.candidates, o.max_iter, true, -1, &ref);
        cr_assert_eq(r.n, ref.n);
        for (int j = 0; j < r.n; j++) {
            cr_assert_eq(r.hits[j].idx, ref.h[j].idx, "query %d rank %d", b, j);
            cr_assert(fabsf(r.hits[j].score - ref.h[j].score) <= 1e-6f * (fabsf(ref.h[0].score) + 1));
        }
        search_result_free(&r);
    }
    cr_assert_eq(ctx.status, 0);
    qnet_store_scorer_free(&ctx);
    graph_searcher_free(gs);
    free(full);
    graph_free(&g);
    docstore_free(st);
    free(X);
    tiny_free(&t);
}

static double recall_vs(const SearchResult *r, const SearchResult *ex, int k) {
    int hit = 0, m = ex->n < k ? ex->n : k;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < r->n && j < k; j++) if (r->hits[j].idx == ex->hits[i].idx) { hit++; break; }
    return m ? (double)hit / m : 1;
}

Test(search, hypplus_valid_and_better_at_equal_budget) {
    long N = 20000;
    int d = 16, B = 8, k = 100;
    TinyModel t;
    tiny_model(&t, B, d, 2, 31);
    float *X = clustered(N, d, 64, 0.25f, 33);
    DocStore *st = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph g;
    cr_assert(graph_build_exact(st, &(GraphBuildOptions){.k = 16}, &g) == 0);
    cr_assert(graph_kmeans(st, &(KMeansOptions){.centroids = 128, .iters = 8, .seed = 5}, &g) == 0);
    SearchResult ex[8] = {0};
    cr_assert(exhaustive_search(st, &t.h, NULL, &(ExhaustiveOptions){.k = k}, ex) == 0);
    QNetStoreScorer ctx;
    GraphScorer sc = qnet_store_scorer(&ctx, st, &t.h);
    GraphSearchOptions po = graph_search_defaults(), ho;
    po.k = k;
    po.entry_points = 3000;
    po.candidates = 32;
    po.max_iter = 16;
    ho = po;
    ho.algo = ALGO_HYPPLUS;
    ho.entry_points = 1000;
    GraphSearcher *pg = graph_searcher_new(&g, N, d, &po), *hg = graph_searcher_new(&g, N, d, &ho);
    cr_assert(pg && hg, "%s", hyp_last_error());
    double rp = 0, rh = 0;
    long sp = 0, sh = 0;
    for (int b = 0; b < B; b++) {
        SearchResult a = {0}, h = {0};
        graph_search(pg, &sc, b, -1, &a);
        graph_search(hg, &sc, b, -1, &h);
        // valid: distinct documents in range, ranking order, scores equal the exhaustive scorer's
        for (int j = 0; j < h.n; j++) {
            cr_assert(h.hits[j].idx >= 0 && h.hits[j].idx < N);
            for (int l = 0; l < j; l++) cr_assert(h.hits[l].idx != h.hits[j].idx);
            if (j) cr_assert(h.hits[j - 1].score >= h.hits[j].score);
        }
        cr_assert_eq(h.n, k);
        rp += recall_vs(&a, &ex[b], k);
        rh += recall_vs(&h, &ex[b], k);
        sp += a.scored;
        sh += h.scored;
        search_result_free(&a);
        search_result_free(&h);
        search_result_free(&ex[b]);
    }
    cr_log_info("paper: recall@%d %.3f with %.0f scored/query; hyp+: %.3f with %.0f", k, rp / B, (double)sp / B, rh / B,
                (double)sh / B);
    cr_assert(sh <= sp, "hyp+ scored %ld documents, the paper's algorithm %ld: not an equal budget", sh, sp);
    cr_assert(rh >= rp, "hyp+ recall %.3f below the paper's %.3f at equal budget", rh / B, rp / B);
    // hyp+ without centroids, and a graph for another corpus: clear errors
    Graph bare = g;
    bare.n_centroids = 0;
    cr_assert_null(graph_searcher_new(&bare, N, d, &ho));
    cr_assert(strstr(hyp_last_error(), "centroids"), "%s", hyp_last_error());
    cr_assert_null(graph_searcher_new(&g, N - 1, d, &po));
    cr_assert(strstr(hyp_last_error(), "graph"), "%s", hyp_last_error());
    graph_searcher_free(pg);
    graph_searcher_free(hg);
    qnet_store_scorer_free(&ctx);
    graph_free(&g);
    docstore_free(st);
    free(X);
    tiny_free(&t);
}
