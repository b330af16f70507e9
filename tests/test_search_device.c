// Search on a device: the search kernels' CPU spec (topk_rows against a full sort, the fused
// last q-net layer against the host scorer, dense search against brute force), and the CUDA
// path against the CPU: exhaustive q-net search (several queries, blocks, query groups, shards,
// ignore_same_id, tied duplicates, bf16 residency), dense dot and cosine, graph search (paper
// and hyp+), exact k-NN graphs; only the k hits per query cross to the host (simulator copy
// counters). The CUDA variants run under the simulator build and skip without a GPU.
#include "tests/testlib.h"
#include "search/store.h"
#include "search/exhaustive.h"
#include "search/graph.h"
#include "search/graph_search.h"
#include "kernels/kernels.h"
#include "kernels/elementwise.h"
#include "autograd/gradcheck.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef HYP_CUDA_SIM
#include "kernels/cuda/sim/hyp_sim.h"
#endif

// ---------------------------------------------------------------- helpers
static float *rand_matrix(long n, int d, uint64_t seed, float lo, float hi) {
    float *x = hyp_malloc((size_t)(n ? n : 1) * d * sizeof(float));
    fill_uniform(x, (size_t)n * d, lo, hi, seed);
    return x;
}

// N random documents, rows dup_to[i] copies of rows dup_from[i] (exactly tied scores).
static DocStore *corpus(long N, int d, uint64_t seed, StoreDType dt) {
    float *x = rand_matrix(N, d, seed, -1, 1);
    for (long i = 0; i + 7 < N; i += 53) memcpy(x + (size_t)(i + 7) * d, x + (size_t)i * d, (size_t)d * sizeof(float));
    DocStore *s = docstore_from_memory(x, N, d, NULL, dt);
    free(x);
    return s;
}

// B random q-nets of L hidden layers, width d, as tensors on ctx c's device (weights scaled so
// that activations stay O(1)).
static QNet rand_qnet(Ctx *c, int B, int d, int L, uint64_t seed) {
    QNet q = {.B = B, .layers = L, .dim = d, .eps = 1e-5f};
    float a = 1.5f / sqrtf((float)d);
    for (int j = 0; j <= L; j++) {
        int out = j < L ? d : 1;
        float *w = rand_matrix((long)B * out, d, seed + 2 * j, -a, a);
        q.W[j] = tensor_from_floats(c, w, HYP_SHAPE(B, out, d), false);
        free(w);
        if (j < L) {
            float *b = rand_matrix(B, d, seed + 2 * j + 1, -0.3f, 0.3f);
            q.b[j] = tensor_from_floats(c, b, HYP_SHAPE(B, d), false);
            free(b);
        }
    }
    return q;
}

// Same hits: equal scores rank by rank within tol, and the same ids except where the scores
// at that rank are tied within tol (then the ids must be a permutation within the tie).
static void expect_same_hits(const SearchResult *got, const SearchResult *want, double tol, const char *what) {
    cr_assert_eq(got->n, want->n, "%s: %d hits against %d", what, got->n, want->n);
    for (int i = 0; i < got->n; i++) {
        float g = got->hits[i].score, w = want->hits[i].score;
        cr_assert(fabsf(g - w) <= tol * (1 + fabsf(w)), "%s: rank %d: score %.9g against %.9g", what, i, g, w);
        if (got->hits[i].idx == want->hits[i].idx) continue;
        bool tied = false;   // the expected id sits at a nearby rank with a score within tol
        for (int j = 0; j < want->n && !tied; j++)
            tied = want->hits[j].idx == got->hits[i].idx && fabsf(want->hits[j].score - w) <= tol * (1 + fabsf(w));
        cr_assert(tied, "%s: rank %d: document %d (%.9g) against %d (%.9g)", what, i, got->hits[i].idx, g,
                  want->hits[i].idx, w);
    }
}

static void free_results(SearchResult *r, int n) {
    for (int i = 0; i < n; i++) search_result_free(&r[i]);
}

// ---------------------------------------------------------------- CPU spec of the kernels
// A row's expected top-k: every (score, index) key sorted descending, the first k.
static void naive_topk(const float *sc, long n, int32_t base, int32_t skip, int k, uint64_t *prev, int nprev,
                       uint64_t *out) {
    long m = 0;
    uint64_t *all = hyp_malloc((size_t)(n + nprev + 1) * sizeof(uint64_t));
    for (int i = 0; i < nprev; i++) all[m++] = prev[i];
    for (long j = 0; j < n; j++)
        if (base + j != skip) all[m++] = hyp_search_key(sc[j], base + (int32_t)j);
    for (long i = 1; i < m; i++)   // insertion sort, descending
        for (long j = i; j > 0 && all[j] > all[j - 1]; j--) {
            uint64_t t = all[j];
            all[j] = all[j - 1];
            all[j - 1] = t;
        }
    for (int i = 0; i < k; i++) out[i] = i < m ? all[i] : 0;
    free(all);
}

static int key_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

Test(search_device, keys_order_is_ranking_order) {
    float v[] = {3.0f, -1.0f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-30f, -1e-30f, 3.0f};
    int n = sizeof v / sizeof *v;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float a = v[i] != v[i] ? -INFINITY : v[i], b = v[j] != v[j] ? -INFINITY : v[j];
            bool better = hit_better(a, i, b, j);
            cr_assert_eq(search_key(v[i], i) > search_key(v[j], j), better, "%g@%d vs %g@%d", v[i], i, v[j], j);
        }
    for (int i = 0; i < n; i++) {
        Hit h = search_key_hit(search_key(v[i], 1000 + i));
        cr_assert_eq(h.idx, 1000 + i);
        float want = v[i] != v[i] ? -INFINITY : v[i] == 0.0f ? 0.0f : v[i];
        cr_assert(memcmp(&h.score, &want, 4) == 0, "%g decodes as %g", v[i], h.score);
        cr_assert(search_key(v[i], INT32_MAX) != 0);
    }
}

// Streams of blocks through topk_rows on backend be equal the full sort of everything seen.
static void check_topk_rows(const Backend *be, const char *what) {
    int rows = 3, k = 17;
    long n = 40, ld = 45;
    uint64_t *expect = hyp_malloc((size_t)rows * k * sizeof(uint64_t));
    memset(expect, 0, (size_t)rows * k * sizeof(uint64_t));
    uint64_t *kin = be->alloc((size_t)rows * k * 8), *kout = be->alloc((size_t)rows * k * 8);
    float *S = be->alloc((size_t)rows * ld * sizeof(float));
    int32_t *skip = be->alloc(rows * sizeof(int32_t)), *bad = be->alloc(rows * sizeof(int32_t));
    int32_t hskip[3] = {5, -1, 61}, hbad[3] = {INT32_MAX, INT32_MAX, INT32_MAX};
    be->copy(skip, hskip, sizeof hskip, COPY_H2D);
    be->copy(bad, hbad, sizeof hbad, COPY_H2D);
    be->memset0(kin, (size_t)rows * k * 8);
    float *hs = hyp_malloc((size_t)rows * ld * sizeof(float));
    uint64_t *got = hyp_malloc((size_t)rows * k * 8), *tmp = hyp_malloc((size_t)rows * k * 8);
    for (int blk = 0; blk < 4; blk++) {
        long nb = blk == 0 || blk == 3 ? 9 : n;   // short blocks: the first leaves empty slots
        for (long i = 0; i < rows * ld; i++) hs[i] = (float)(search_rand_u64(blk, 9, i) % 11) - 5.0f;   // ties
        if (blk == 1) { hs[3] = NAN; hs[ld + 7] = -INFINITY; hs[2 * ld + 1] = INFINITY; }
        be->copy(S, hs, (size_t)rows * ld * sizeof(float), COPY_H2D);
        int32_t base = blk * (int32_t)n;
        be->topk_rows(kout, kin, S, rows, nb, ld, k, base, skip, bad);
        for (int r = 0; r < rows; r++) {
            naive_topk(hs + r * ld, nb, base, hskip[r], k, expect + r * k, k, tmp);
            memcpy(expect + r * k, tmp, (size_t)k * 8);
        }
        be->copy(got, kout, (size_t)rows * k * 8, COPY_D2H);
        for (int r = 0; r < rows; r++) {
            qsort(got + r * k, k, 8, key_desc);
            for (int i = 0; i < k; i++)
                cr_assert_eq(got[r * k + i], expect[r * k + i], "%s: block %d row %d rank %d", what, blk, r, i);
        }
        uint64_t *t = kin;
        kin = kout;
        kout = t;
    }
    be->copy(hbad, bad, sizeof hbad, COPY_D2H);
    cr_assert(hbad[0] == 40 + 3 && hbad[1] == 40 + 7 && hbad[2] == 40 + 1, "%s: first non-finite %d %d %d", what,
              hbad[0], hbad[1], hbad[2]);
    be->free(kin);
    be->free(kout);
    be->free(S);
    be->free(skip);
    be->free(bad);
    free(hs);
    free(got);
    free(tmp);
    free(expect);
}

Test(search_device, topk_rows_cpu_equals_full_sort) { check_topk_rows(&hyp_cpu_backend, "cpu"); }

Test(search_device, qnet_out_dot_cpu_equals_host_scorer) {
    Ctx *c = ctx_new(HYP_CPU);
    int B = 2, d = 24, n = 30;
    QNet q = rand_qnet(c, B, d, 1, 7);
    QNetHost h = qnet_host_from(&q);
    float *X = rand_matrix(n, d, 8, -1, 1), *Z = hyp_malloc((size_t)B * n * d * sizeof(float));
    float *s = hyp_malloc((size_t)B * n * sizeof(float)), *w = hyp_malloc(n * sizeof(float));
    hyp_cpu_backend.gemm(false, true, n, d, d, 1.0f, X, 0, h.W[0], (long long)d * d, 0.0f, Z, (long long)n * d, B,
                         HYP_MATMUL_F32);
    hyp_cpu_backend.qnet_out_dot(s, Z, h.b[0], h.W[1], B, n, d, q.eps);
    QNetWork wk = {0};
    for (int b = 0; b < B; b++) {
        qnet_host_score(&h, b, X, n, w, &wk);
        cr_assert(rel_err(s + (size_t)b * n, w, n) < TOL_OP, "query %d: rel err %g", b, rel_err(s + (size_t)b * n, w, n));
    }
    qnet_work_free(&wk);
    qnet_host_free(&h);
    free(X);
    free(Z);
    free(s);
    free(w);
    ctx_free(c);
}

// Dense search on the CPU against every score computed and sorted here.
Test(search_device, dense_cpu_equals_brute_force) {
    long N = 300;
    int d = 16, B = 3, k = 25;
    DocStore *s = corpus(N, d, 21, STORE_F32);
    float *Q = rand_matrix(B, d, 22, -1, 1);
    const char *qids[3] = {"4", "nope", "250"};
    for (int metric = 0; metric < 2; metric++) {
        SearchResult r[3] = {0};
        ExhaustiveOptions o = {.k = k, .block_rows = 64, .ignore_same_id = true, .doc_begin = 10, .doc_end = 290};
        cr_assert_eq(exhaustive_search_dense(s, Q, B, metric, qids, &o, r), 0, "%s", hyp_last_error());
        for (int b = 0; b < B; b++) {
            const float *q = Q + (size_t)b * d;
            double qq = 0;
            for (int j = 0; j < d; j++) qq += (double)q[j] * q[j];
            Hit *all = hyp_malloc(N * sizeof(Hit));
            long m = 0;
            for (long i = 10; i < 290; i++) {
                if (i == atol(qids[b]) && strcmp(qids[b], "nope")) continue;
                float x[16];
                cr_assert_eq(docstore_rows(s, i, 1, x), 0);
                double dot = 0, xx = 0;
                for (int j = 0; j < d; j++) { dot += (double)q[j] * x[j]; xx += (double)x[j] * x[j]; }
                all[m++] = (Hit){(float)(metric == DENSE_COSINE ? dot / sqrt(qq * xx) : dot), (int32_t)i};
            }
            hits_sort(all, m);
            SearchResult want = {.n = k, .hits = all};
            expect_same_hits(&r[b], &want, TOL_OP, metric ? "cosine" : "dot");
            free(all);
        }
        free_results(r, B);
    }
    free(Q);
    docstore_free(s);
}

// ---------------------------------------------------------------- CUDA against the CPU
Test(search_device, cuda_topk_rows_equals_full_sort) {
    RUN_ON_CUDA_OR_SKIP();
    check_topk_rows(GPU_BACKEND, "cuda");
}

// Exhaustive q-net search: CUDA (q-nets on the host or on the device, fp32 or bf16 residency)
// against exhaustive_search on the CPU.
static void check_exhaustive_qnet(int L, StoreDType dt, bool qnet_on_gpu) {
    long N = 700;
    int d = 32, B = 5;
    DocStore *s = corpus(N, d, 30 + L, dt);
    Ctx *c = ctx_new(HYP_CPU), *g = ctx_new(HYP_CUDA);
    QNet q = rand_qnet(c, B, d, L, 40 + L), qg = q;
    if (qnet_on_gpu)
        for (int j = 0; j <= L; j++) {
            qg.W[j] = tensor_to_ctx(g, q.W[j]);
            if (j < L) qg.b[j] = tensor_to_ctx(g, q.b[j]);
        }
    const char *qids[5] = {"3", "60", "x", "699", "12"};
    ExhaustiveOptions shards[3] = {
        {.k = 40, .block_rows = 128, .query_batch = 2, .ignore_same_id = true},
        {.k = 40, .block_rows = 100, .query_batch = 3, .doc_begin = 50, .doc_end = 460},
        {.k = 1000, .block_rows = 256},   // k above the document count
    };
    for (int t = 0; t < 3; t++) {
        SearchResult want[5] = {0}, got[5] = {0};
        ExhaustiveOptions o = shards[t];
        cr_assert_eq(exhaustive_search_qnet(s, &q, qids, &o, want), 0, "%s", hyp_last_error());
        o.device = HYP_CUDA;
        o.resident = dt == STORE_BF16 ? STORE_BF16 : STORE_F32;
        cr_assert_eq(exhaustive_search_qnet(s, &qg, qids, &o, got), 0, "%s", hyp_last_error());
        for (int b = 0; b < B; b++) {
            char what[96];
            snprintf(what, sizeof what, "L=%d %s case %d query %d", L, store_dtype_name(dt), t, b);
            expect_same_hits(&got[b], &want[b], TOL_OP, what);
            cr_assert_eq(got[b].scored, want[b].scored);
        }
        if (t == 0)   // the tied duplicate pairs (rows i and i+7) rank by index on both
            for (int b = 0; b < B; b++)
                for (int i = 1; i < got[b].n; i++)
                    if (got[b].hits[i].score == got[b].hits[i - 1].score)
                        cr_assert(got[b].hits[i].idx > got[b].hits[i - 1].idx);
        free_results(want, B);
        free_results(got, B);
    }
    ctx_free(g);
    ctx_free(c);
    docstore_free(s);
}

Test(search_device, cuda_exhaustive_qnet_equals_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    check_exhaustive_qnet(1, STORE_F32, false);
    check_exhaustive_qnet(2, STORE_F32, true);
    check_exhaustive_qnet(3, STORE_F32, true);
}

Test(search_device, cuda_exhaustive_qnet_bf16_resident_equals_cpu_bf16_store) {
    RUN_ON_CUDA_OR_SKIP();
    check_exhaustive_qnet(2, STORE_BF16, false);
}

// Only the k keys per query come back; the corpus is uploaded once and freed on request.
Test(search_device, cuda_exhaustive_copies_only_hits) {
    RUN_ON_CUDA_OR_SKIP();
#ifndef HYP_CUDA_SIM
    cr_skip_test("needs the simulator's copy counters");
#else
    long N = 2000;
    int d = 16, B = 4, k = 10;
    DocStore *s = corpus(N, d, 50, STORE_F32);
    Ctx *c = ctx_new(HYP_CPU);
    QNet q = rand_qnet(c, B, d, 2, 51);
    ExhaustiveOptions o = {.k = k, .block_rows = 256, .device = HYP_CUDA};
    SearchResult r[4] = {0};
    size_t before = hyp_sim_stats().bytes_allocated;
    for (int rep = 0; rep < 2; rep++) {
        hyp_sim_reset_stats();
        cr_assert_eq(exhaustive_search_qnet(s, &q, NULL, &o, r), 0, "%s", hyp_last_error());
        HypSimStats st = hyp_sim_stats();
        uint64_t hits = (uint64_t)B * k * sizeof(uint64_t) + B * sizeof(int32_t);
        cr_assert(st.bytes_d2h <= hits, "rep %d: %llu bytes came back, the hits are %llu", rep,
                  (unsigned long long)st.bytes_d2h, (unsigned long long)hits);
        uint64_t corpus_bytes = (uint64_t)N * d * sizeof(float);
        if (rep == 0) cr_assert(st.bytes_h2d >= corpus_bytes);
        else cr_assert(st.bytes_h2d < corpus_bytes / 4, "rep 1 uploaded %llu bytes again", (unsigned long long)st.bytes_h2d);
        free_results(r, B);
    }
    size_t resident = hyp_sim_stats().bytes_allocated;
    docstore_device_free(s);
    cr_assert(hyp_sim_stats().bytes_allocated + (size_t)N * d * sizeof(float) <= resident,
              "the device copy was not freed (%zu -> %zu bytes, %zu before)", resident, hyp_sim_stats().bytes_allocated,
              before);
    docstore_free(s);
    ctx_free(c);
#endif
}

Test(search_device, cuda_exhaustive_refuses_nonfinite_scores) {
    RUN_ON_CUDA_OR_SKIP();
    DocStore *s = corpus(100, 8, 60, STORE_F32);
    Ctx *c = ctx_new(HYP_CPU);
    QNet q = rand_qnet(c, 2, 8, 1, 61);
    tensor_f32(q.W[1])[8 + 3] = NAN;   // query 1's output weights
    SearchResult r[2] = {0};
    const char *qids[2] = {"a", "b"};
    ExhaustiveOptions o = {.k = 5, .block_rows = 32, .device = HYP_CUDA};
    cr_assert_eq(exhaustive_search_qnet(s, &q, qids, &o, r), -1);
    cr_assert(strstr(hyp_last_error(), "query 'b'") && strstr(hyp_last_error(), "document '0'"), "%s",
              hyp_last_error());
    docstore_free(s);
    ctx_free(c);
}

Test(search_device, cuda_dense_equals_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    long N = 500;
    int d = 24, B = 6;
    DocStore *s = corpus(N, d, 70, STORE_F32);
    float *Q = rand_matrix(B, d, 71, -1, 1);
    const char *qids[6] = {"1", "2", "400", "q", "8", "499"};
    for (int metric = 0; metric < 2; metric++)
        for (int t = 0; t < 2; t++) {
            SearchResult want[6] = {0}, got[6] = {0};
            ExhaustiveOptions o = {.k = 30, .block_rows = 96, .query_batch = 4, .ignore_same_id = t == 0,
                                   .doc_begin = t ? 33 : 0, .doc_end = t ? 477 : 0};
            cr_assert_eq(exhaustive_search_dense(s, Q, B, metric, qids, &o, want), 0, "%s", hyp_last_error());
            o.device = HYP_CUDA;
            cr_assert_eq(exhaustive_search_dense(s, Q, B, metric, qids, &o, got), 0, "%s", hyp_last_error());
            for (int b = 0; b < B; b++) expect_same_hits(&got[b], &want[b], TOL_OP, metric ? "cosine" : "dot");
            free_results(want, B);
            free_results(got, B);
        }
    free(Q);
    docstore_free(s);
}

Test(search_device, cuda_exact_knn_graph_equals_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    long N = 400;
    int d = 12, k = 9;
    DocStore *s = corpus(N, d, 80, STORE_F32);
    Graph a, b;
    cr_assert_eq(graph_build_exact(s, &(GraphBuildOptions){.k = k, .block_rows = 96}, &a), 0);
    cr_assert_eq(graph_build_exact(s, &(GraphBuildOptions){.k = k, .block_rows = 96, .device = HYP_CUDA}, &b), 0,
                 "%s", hyp_last_error());
    float *X = rand_matrix(N, d, 0, 0, 0);
    cr_assert_eq(docstore_rows(s, 0, N, X), 0);
    long differ = 0;
    for (long i = 0; i < N; i++)
        for (int j = 0; j < k; j++) {
            int32_t p = a.nbr[i * k + j], q = b.nbr[i * k + j];
            if (p == q) continue;
            // Only a near-tie may swap: both at the same distance within fp32 tolerance.
            float dp = 0, dq = 0;
            for (int t = 0; t < d; t++) {
                float u = X[i * d + t] - X[(size_t)p * d + t], v = X[i * d + t] - X[(size_t)q * d + t];
                dp += u * u;
                dq += v * v;
            }
            cr_assert(fabsf(dp - dq) <= 1e-4f * (1 + dp), "row %ld rank %d: %d (%g) against %d (%g)", i, j, q, dq, p, dp);
            differ++;
        }
    cr_assert(differ < N * k / 100, "%ld of %ld neighbours differ", differ, N * k);
    free(X);
    graph_free(&a);
    graph_free(&b);
    docstore_free(s);
}

// k-means with its assignments on the GPU (hyp index --centroids N --device cuda) finds the same
// clusters as on the CPU: the same members in the same order, centroids equal within fp32
// rounding. Clustered data (8 tight clusters, 12 centroids) keeps assignments far from ties.
Test(search_device, cuda_kmeans_equals_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    long N = 900;
    int d = 10, C = 12;
    float *cent = rand_matrix(8, d, 85, -3, 3), *X = rand_matrix(N, d, 86, -0.2f, 0.2f);
    for (long i = 0; i < N; i++)
        for (int j = 0; j < d; j++) X[i * d + j] += cent[(i % 8) * d + j];
    DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph a = {0}, b = {0};
    KMeansOptions o = {.centroids = C, .iters = 6, .train_sample = 500, .seed = 4};
    cr_assert_eq(graph_kmeans(s, &o, &a), 0, "%s", hyp_last_error());
    o.device = HYP_CUDA;
    cr_assert_eq(graph_kmeans(s, &o, &b), 0, "%s", hyp_last_error());
    cr_assert_eq(b.n_centroids, C);
    cr_assert_eq(memcmp(a.cl_off, b.cl_off, (size_t)(C + 1) * sizeof(int32_t)), 0, "cluster sizes differ");
    cr_assert_eq(memcmp(a.cl_members, b.cl_members, (size_t)N * sizeof(int32_t)), 0, "cluster members differ");
    for (long i = 0; i < (long)C * d; i++)
        cr_assert(fabsf(a.centroids[i] - b.centroids[i]) <= 1e-5f * (1 + fabsf(a.centroids[i])), "centroid value %ld: %g vs %g",
                  i, b.centroids[i], a.centroids[i]);
    // and the assignment is the nearest centroid (the CPU result checked by brute force)
    for (int c = 0; c < C; c++)
        for (int32_t m = a.cl_off[c]; m < a.cl_off[c + 1]; m++) {
            const float *x = X + (size_t)a.cl_members[m] * d;
            float best = INFINITY, mine = 0;
            for (int e = 0; e < C; e++) {
                float v = 0;
                for (int j = 0; j < d; j++) v += (x[j] - a.centroids[e * d + j]) * (x[j] - a.centroids[e * d + j]);
                if (e == c) mine = v;
                if (v < best) best = v;
            }
            cr_assert(mine <= best * (1 + 1e-5f) + 1e-6f, "document %d is not in its nearest cluster", a.cl_members[m]);
        }
    free(cent);
    free(X);
    graph_free(&a);
    graph_free(&b);
    docstore_free(s);
}

// Graph search with the device scorer against the host scorer (paper and hyp+).
static void check_graph(GraphAlgo algo, StoreDType resident) {
    long N = 600;
    int d = 16, B = 3;
    DocStore *s = corpus(N, d, 90, resident);
    Graph g;
    cr_assert_eq(graph_build_exact(s, &(GraphBuildOptions){.k = 8}, &g), 0);
    if (algo == ALGO_HYPPLUS) cr_assert_eq(graph_kmeans(s, &(KMeansOptions){.centroids = 12, .iters = 5, .seed = 3}, &g), 0);
    Ctx *c = ctx_new(HYP_CPU);
    QNet q = rand_qnet(c, B, d, 2, 91);
    GraphSearchOptions o = graph_search_defaults();
    o.k = 20;
    o.entry_points = 40;
    o.candidates = 6;
    o.max_iter = 6;
    o.algo = algo;
    GraphSearcher *gs = graph_searcher_new(&g, N, d, &o);
    cr_assert(gs, "%s", hyp_last_error());
    QNetDevScorer hc, dc;
    GraphScorer hsc = qnet_store_scorer_dev(&hc, s, &q, HYP_CPU, STORE_F32);
    GraphScorer dsc = qnet_store_scorer_dev(&dc, s, &q, HYP_CUDA, resident);
    for (int b = 0; b < B; b++) {
        SearchResult want = {0}, got = {0};
        cr_assert_eq(graph_search(gs, &hsc, b, b == 1 ? 5 : -1, &want), 0);
        cr_assert_eq(graph_search(gs, &dsc, b, b == 1 ? 5 : -1, &got), 0);
        expect_same_hits(&got, &want, TOL_OP, algo == ALGO_PAPER ? "paper" : "hyp+");
        cr_assert_eq(got.scored, want.scored);
        cr_assert_eq(got.iterations, want.iterations);
        search_result_free(&want);
        search_result_free(&got);
    }
    cr_assert_eq(qnet_dev_scorer_status(&dc), 0);
    qnet_dev_scorer_free(&hc);
    qnet_dev_scorer_free(&dc);
    graph_searcher_free(gs);
    graph_free(&g);
    ctx_free(c);
    docstore_free(s);
}

Test(search_device, cuda_graph_search_paper_equals_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    check_graph(ALGO_PAPER, STORE_F32);
    check_graph(ALGO_PAPER, STORE_BF16);
}

Test(search_device, cuda_graph_search_hypplus_equals_cpu) {
    RUN_ON_CUDA_OR_SKIP();
    check_graph(ALGO_HYPPLUS, STORE_F32);
}
