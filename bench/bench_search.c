// bench_search: retrieval speed against references measured in the same run (DESIGN §7).
//  1. Exhaustive search throughput (documents/s per query) with a 768-wide 6-layer q-net
//     vs the raw cblas_sgemm rate on the q-net's GEMM shape (block x 768 x 768): the q-net
//     costs L*d^2 + d MACs per document, so sgemm rate / (2*(L*d^2+d)) is the ceiling.
//     Target: >= 80% of it.
//  2. Graph search at Efficient 1 (10000 / 64 / 16, paper and hyp+) on a synthetic clustered
//     corpus: documents scored, latency, overlap@10 / @1000 with exhaustive, speed-up.
//     The graph is exact k-NN restricted to each document's generating cluster (the clusters
//     are well separated, so this is the exact graph up to rare cross-cluster neighbours;
//     building an exact 1M x 1M graph takes hours on 2 cores). Exhaustive latency on the full
//     corpus is extrapolated from the measured throughput for N > --exhaustive-max.
//  --cuda: the same on the GPU instead (documents resident on the device): exhaustive q-net
//     search in documents/s per query with fp32 and bf16 residency (the one-time upload timed
//     apart), dense dot-product search, graph search at Efficient 1 (paper, hyp+) in ms/query
//     with overlap against the GPU's exhaustive results, and exact k-NN (index) rows/s.
// Usage: bench_search [--quick] [--cuda] [--docs N] [--dim 768] [--layers 6] [--queries Q]
//                     [--clusters C] [--exhaustive-max N]
#include "search/exhaustive.h"
#include "search/graph.h"
#include "search/graph_search.h"
#include "autograd/gradcheck.h"
#include "kernels/kernels.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static QNetHost random_qnet(int B, int d, int L, uint64_t seed) {
    // Weight scales like the reference's hyperhead init output (base matrices ~ N(0, 2/d)).
    QNetHost q = {.B = B, .layers = L, .dim = d, .eps = 1e-5f, .owned = true};
    float a = sqrtf(6.0f / d);   // uniform with variance 2/d
    for (int j = 0; j < L; j++) {
        q.W[j] = hyp_malloc((size_t)B * d * d * sizeof(float));
        fill_uniform(q.W[j], (size_t)B * d * d, -a, a, seed + 2 * j);
        q.b[j] = hyp_malloc((size_t)B * d * sizeof(float));
        fill_uniform(q.b[j], (size_t)B * d, -0.1f, 0.1f, seed + 2 * j + 1);
    }
    q.W[L] = hyp_malloc((size_t)B * d * sizeof(float));
    fill_uniform(q.W[L], (size_t)B * d, -a, a, seed + 99);
    return q;
}

// The host q-nets as tensors on ctx c (what hypencoder_queries hands the search).
static QNet qnet_tensors(Ctx *c, const QNetHost *h) {
    QNet q = {.B = h->B, .layers = h->layers, .dim = h->dim, .eps = h->eps};
    for (int j = 0; j <= h->layers; j++) {
        q.W[j] = tensor_new(c, HYP_F32, HYP_SHAPE(h->B, j < h->layers ? h->dim : 1, h->dim));
        tensor_from_host(q.W[j], h->W[j]);
        if (j < h->layers) {
            q.b[j] = tensor_new(c, HYP_F32, HYP_SHAPE(h->B, h->dim));
            tensor_from_host(q.b[j], h->b[j]);
        }
    }
    return q;
}

static double overlap(const SearchResult *a, const SearchResult *ex, int k) {
    int m = ex->n < k ? ex->n : k, hit = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < a->n && j < k; j++) if (a->hits[j].idx == ex->hits[i].idx) { hit++; break; }
    return m ? (double)hit / m : 1;
}

// ---- --cuda: the GPU rates.
static int bench_cuda(float *X, long N, int d, int L, int Q, bool quick) {
    if (!hyp_cuda_available()) { fprintf(stderr, "bench_search --cuda: %s\n", hyp_cuda_why_unavailable()); return 1; }
    QNetHost qh = random_qnet(Q, d, L, 11);
    Ctx *c = ctx_new(HYP_CUDA);
    QNet q = qnet_tensors(c, &qh);   // on the GPU, as the query encoder leaves them
    DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
    const Backend *be = backend_get(HYP_CUDA);
    double macs = L * (double)d * d + d;
    SearchResult *ex = hyp_calloc((size_t)Q, sizeof(SearchResult)), *r = hyp_calloc((size_t)Q, sizeof(SearchResult));
    for (int dt = 0; dt < 2; dt++) {
        StoreDType res = dt ? STORE_BF16 : STORE_F32;
        double t0 = hyp_now();
        if (!docstore_device(s, HYP_CUDA, res)) { fprintf(stderr, "%s\n", hyp_last_error()); return 1; }
        be->synchronize();
        double up = hyp_now() - t0;
        ExhaustiveOptions o = {.k = 1000, .device = HYP_CUDA, .resident = res};
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {   // best of 3; the first also warms cuBLASLt plans
            SearchResult *out = dt == 0 && rep == 0 ? ex : r;
            double t1 = hyp_now();
            if (exhaustive_search_qnet(s, &q, NULL, &o, out)) { fprintf(stderr, "%s\n", hyp_last_error()); return 1; }
            double t = hyp_now() - t1;
            if (t < best) best = t;
            if (out == r) for (int b = 0; b < Q; b++) search_result_free(&r[b]);
        }
        double rate = (double)N * Q / best;
        printf("cuda exhaustive %s resident (%ld docs, upload %.2f s), %d queries, k=1000: %.0f docs/s per query "
               "(%.2f ms/query, %.1f TFLOP/s)\n", store_dtype_name(res), N, up, Q, rate, 1e3 * best / Q,
               rate * 2 * macs / 1e12);
    }
    docstore_device(s, HYP_CUDA, STORE_F32);
    {   // dense dot product (BE-Base) with the same documents, the q-nets' first rows as queries
        float *Qv = hyp_malloc((size_t)Q * d * sizeof(float));
        for (int b = 0; b < Q; b++) memcpy(Qv + (size_t)b * d, qh.W[0] + (size_t)b * d * d, (size_t)d * sizeof(float));
        ExhaustiveOptions o = {.k = 1000, .device = HYP_CUDA};
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t1 = hyp_now();
            exhaustive_search_dense(s, Qv, Q, DENSE_DOT, NULL, &o, r);
            double t = hyp_now() - t1;
            if (t < best) best = t;
            for (int b = 0; b < Q; b++) search_result_free(&r[b]);
        }
        printf("cuda dense dot %ld docs, %d queries, k=1000: %.0f docs/s per query (%.2f ms/query)\n", N, Q,
               (double)N / (best / Q), 1e3 * best / Q);
        free(Qv);
    }
    {   // exact k-NN (hyp index) rows/s on a sample of rows
        long nq = quick ? 1024 : 4096;
        if (nq > N) nq = N;
        long *qi = hyp_malloc((size_t)nq * sizeof(long));
        int32_t *nb = hyp_malloc((size_t)nq * 100 * sizeof(int32_t));
        for (long i = 0; i < nq; i++) qi[i] = i;
        knn_exact_rows_dev(s, X, qi, nq, 100, 16384, HYP_CUDA, nb);   // warm-up
        double t1 = hyp_now();
        knn_exact_rows_dev(s, X, qi, nq, 100, 16384, HYP_CUDA, nb);
        double t = hyp_now() - t1;
        printf("cuda exact k-NN (k=100) against %ld docs: %.0f rows/s (full graph ~%.0f s)\n", N, nq / t, N / (nq / t));
        free(qi);
        free(nb);
    }
    {   // graph search on a k-NN graph built on the GPU (a sample of the corpus for the full run)
        long Ng = quick ? N : (N < 200000 ? N : 200000);
        DocStore *gsx = Ng == N ? s : docstore_from_memory(X, Ng, d, NULL, STORE_F32);
        Graph g;
        double t0 = hyp_now();
        graph_build_exact(gsx, &(GraphBuildOptions){.k = 100, .block_rows = 16384, .device = HYP_CUDA}, &g);
        double tg = hyp_now() - t0;
        double tk0 = hyp_now();
        const int ncent = (int)(2 * sqrt((double)Ng));
        graph_kmeans(gsx, &(KMeansOptions){.centroids = ncent, .iters = 6, .train_sample = 50000, .seed = 3, .device = HYP_CUDA}, &g);
        double tk = hyp_now() - tk0;
        SearchResult *gex = ex;
        if (gsx != s) {   // exhaustive on the sample for the overlap
            gex = hyp_calloc((size_t)Q, sizeof(SearchResult));
            exhaustive_search_qnet(gsx, &q, NULL, &(ExhaustiveOptions){.k = 1000, .device = HYP_CUDA}, gex);
        }
        printf("cuda graph: exact k=100 over %ld docs in %.1f s; k-means %d centroids (6 iterations on up to 50k rows, then every doc) in %.1f s\n", Ng, tg, ncent, tk);
        QNetDevScorer dc;
        GraphScorer sc = qnet_store_scorer_dev(&dc, gsx, &q, HYP_CUDA, STORE_F32);
        for (int algo = 0; algo < 2; algo++) {
            GraphSearchOptions o = graph_search_defaults();
            graph_search_preset("efficient1", &o);
            o.algo = algo;
            if (algo == ALGO_HYPPLUS) o.entry_points = 2000;
            GraphSearcher *gs = graph_searcher_new(&g, Ng, d, &o);
            double lat = 0, scored = 0, o10 = 0, o1k = 0;
            for (int b = 0; b < Q; b++) {
                SearchResult h = {0};
                graph_search(gs, &sc, b, -1, &h);
                lat += h.seconds;
                scored += h.scored;
                o10 += overlap(&h, &gex[b], 10);
                o1k += overlap(&h, &gex[b], 1000);
                search_result_free(&h);
            }
            printf("cuda graph %-5s E=%d/%d/%d: %.0f docs scored/query, %.2f ms/query, overlap@10 %.3f, overlap@1000 %.3f\n",
                   algo ? "hyp+" : "paper", o.entry_points, o.candidates, o.max_iter, scored / Q, 1e3 * lat / Q, o10 / Q,
                   o1k / Q);
            graph_searcher_free(gs);
        }
        qnet_dev_scorer_free(&dc);
        if (gex != ex) {
            for (int b = 0; b < Q; b++) search_result_free(&gex[b]);
            free(gex);
        }
        if (gsx != s) docstore_free(gsx);
        graph_free(&g);
    }
    for (int b = 0; b < Q; b++) search_result_free(&ex[b]);
    free(ex);
    free(r);
    docstore_free(s);
    ctx_free(c);
    qnet_host_free(&qh);
    return 0;
}

int main(int argc, char **argv) {
    long N = 1000000, ex_max = 65536;
    int d = 768, L = 6, Q = 4, ncl = 1000;
    bool quick = false, cuda = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--cuda")) cuda = true;
        else if (!strcmp(argv[i], "--docs") && i + 1 < argc) N = atol(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) d = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) L = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--queries") && i + 1 < argc) Q = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clusters") && i + 1 < argc) ncl = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--exhaustive-max") && i + 1 < argc) ex_max = atol(argv[++i]);
        else { fprintf(stderr, "usage: bench_search [--quick] [--cuda] [--docs N] [--dim D] [--layers L] [--queries Q] [--clusters C] [--exhaustive-max N]\n"); return 1; }
    }
    if (quick) { N = 100000; ex_max = 16384; Q = 2; ncl = 200; }
    printf("bench_search: %d threads, q-net d=%d L=%d (%.2f M MACs/doc)\n", omp_get_max_threads(), d, L,
           (L * (double)d * d + d) / 1e6);

    // ---- 1. exhaustive throughput vs sgemm. The reference and ours alternate, best of
    // `reps` each (the minimum is the least noisy on a shared machine).
    long blk = 16384;
    long ne = N < ex_max ? N : ex_max;
    if (blk > ne) blk = ne;
    float *X = hyp_malloc((size_t)N * d * sizeof(float));
    // clustered corpus: centres U(-1,1), points centre + U(-0.3, 0.3)
    float *cent = hyp_malloc((size_t)ncl * d * sizeof(float));
    fill_uniform(cent, (size_t)ncl * d, -1, 1, 5);
    fill_uniform(X, (size_t)N * d, -0.3f, 0.3f, 6);
    int32_t *cl = hyp_malloc((size_t)N * sizeof(int32_t));
#pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        cl[i] = (int32_t)(search_rand_u64(7, 1, (uint64_t)i) % (uint64_t)ncl);
        for (int j = 0; j < d; j++) X[(size_t)i * d + j] += cent[(size_t)cl[i] * d + j];
    }
    free(cent);
    if (cuda) {
        free(cl);
        int rc = bench_cuda(X, N, d, L, Q, quick);
        free(X);
        return rc;
    }
    QNetHost q = random_qnet(Q, d, L, 11);
    DocStore *sub = docstore_from_memory(X, ne, d, NULL, STORE_F32);
    float *Cb = hyp_malloc((size_t)blk * d * sizeof(float));
    int reps = 3;
    double macs = L * (double)d * d + d, t_ref = 1e30, ex_rate = 0, best_ratio = 0;
    int Bs[] = {1, Q};
    double t_ex_b[2] = {1e30, 1e30};
    for (int r = 0; r < reps + 1; r++) {
        double t0 = hyp_now();
        for (int j = 0; j < L; j++)   // the q-net's GEMMs on one block: (blk x d) x (d x d)^T
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)blk, d, d, 1.0f, X, d, q.W[j], d, 0.0f, Cb, d);
        double t = (hyp_now() - t0) / blk;   // seconds per document (L GEMM rows)
        if (r && t < t_ref) t_ref = t;
        for (int bi = 0; bi < 2; bi++) {
            QNetHost qb = qnet_host_slice(&q, 0, Bs[bi]);
            SearchResult *res = hyp_calloc((size_t)Bs[bi], sizeof(SearchResult));
            double t1 = hyp_now();
            exhaustive_search(sub, &qb, NULL, &(ExhaustiveOptions){.k = 1000, .block_rows = blk}, res);
            double te = (hyp_now() - t1) / ((double)ne * Bs[bi]);
            if (r && te < t_ex_b[bi]) t_ex_b[bi] = te;
            for (int b = 0; b < Bs[bi]; b++) search_result_free(&res[b]);
            free(res);
        }
    }
    free(Cb);
    double ceiling = 1.0 / t_ref;
    printf("sgemm reference (%d GEMMs %ldx%dx%d per block): %.1f GFLOP/s -> ceiling %.0f docs/s per query\n", L, blk, d, d,
           L * 2.0 * d * d / t_ref / 1e9, ceiling);
    for (int bi = 0; bi < 2; bi++) {
        double rate = 1.0 / t_ex_b[bi];
        if (rate > ex_rate) ex_rate = rate;
        if (rate / ceiling > best_ratio) best_ratio = rate / ceiling;
        printf("exhaustive %ld docs, %d queries/batch, k=1000: %.0f docs/s per query = %.1f GFLOP/s = %.1f%% of sgemm (target >= 80%%)\n",
               ne, Bs[bi], rate, rate * 2 * macs / 1e9, 100 * rate / ceiling);
    }
    docstore_free(sub);

    // ---- 2. graph search at Efficient 1
    DocStore *s = docstore_from_memory(X, N, d, NULL, STORE_F32);
    Graph g = {.n = N, .k = 100, .recall = -1};
    snprintf(g.builder, sizeof g.builder, "cluster-exact");
    g.nbr = hyp_malloc((size_t)N * 100 * sizeof(int32_t));
    double tg = hyp_now();
    {   // exact k-NN inside each generating cluster
        int32_t *off = hyp_calloc((size_t)ncl + 1, sizeof(int32_t)), *mem = hyp_malloc((size_t)N * sizeof(int32_t));
        for (long i = 0; i < N; i++) off[cl[i] + 1]++;
        for (int c = 0; c < ncl; c++) off[c + 1] += off[c];
        int32_t *fill = hyp_calloc((size_t)ncl, sizeof(int32_t));
        for (long i = 0; i < N; i++) mem[off[cl[i]] + fill[cl[i]]++] = (int32_t)i;
        for (int c = 0; c < ncl; c++) {
            long n = off[c + 1] - off[c];
            float *Y = hyp_malloc((size_t)(n ? n : 1) * d * sizeof(float));
            for (long i = 0; i < n; i++) memcpy(Y + (size_t)i * d, X + (size_t)mem[off[c] + i] * d, (size_t)d * sizeof(float));
            DocStore *cs = docstore_from_memory(Y, n, d, NULL, STORE_F32);
            long *qi = hyp_malloc((size_t)(n ? n : 1) * sizeof(long));
            int32_t *nb = hyp_malloc((size_t)(n ? n : 1) * 100 * sizeof(int32_t));
            for (long i = 0; i < n; i++) qi[i] = i;
            knn_exact_rows(cs, Y, qi, n, 100, 4096, nb);
            for (long i = 0; i < n; i++)
                for (int j = 0; j < 100; j++) {
                    int32_t v = nb[i * 100 + j];
                    g.nbr[(size_t)mem[off[c] + i] * 100 + j] = v >= 0 ? mem[off[c] + v] : -1;
                }
            free(Y); free(qi); free(nb);
            docstore_free(cs);
        }
        free(off); free(mem); free(fill);
    }
    tg = hyp_now() - tg;
    double tk = hyp_now();
    int nc = (int)(2 * sqrt((double)N));
    graph_kmeans(s, &(KMeansOptions){.centroids = nc, .iters = 6, .train_sample = 50000, .seed = 3}, &g);
    tk = hyp_now() - tk;
    printf("synthetic corpus %ld x %d (%d clusters): graph k=100 in %.1f s, k-means C=%d in %.1f s\n", N, d, ncl, tg, nc, tk);

    // exhaustive reference results for overlap (full corpus when small enough, else skipped)
    bool have_ex = N <= ex_max * 4;
    SearchResult *ex = hyp_calloc((size_t)Q, sizeof(SearchResult));
    double t_ex = (double)N / ex_rate;
    if (have_ex) {
        double t0 = hyp_now();
        exhaustive_search(s, &q, NULL, &(ExhaustiveOptions){.k = 1000, .block_rows = blk}, ex);
        t_ex = (hyp_now() - t0) / Q;
    }
    printf("exhaustive latency: %.3f s/query (%s)\n", t_ex, have_ex ? "measured" : "extrapolated from the throughput above");
    QNetStoreScorer sctx;
    GraphScorer sc = qnet_store_scorer(&sctx, s, &q);
    for (int algo = 0; algo < 2; algo++) {
        GraphSearchOptions o = graph_search_defaults();
        graph_search_preset("efficient1", &o);
        o.algo = algo;
        if (algo == ALGO_HYPPLUS) o.entry_points = 2000;
        GraphSearcher *gs = graph_searcher_new(&g, N, d, &o);
        double lat = 0, scored = 0, o10 = 0, o1k = 0;
        for (int b = 0; b < Q; b++) {
            SearchResult r = {0};
            graph_search(gs, &sc, b, -1, &r);
            lat += r.seconds;
            scored += r.scored;
            if (have_ex) { o10 += overlap(&r, &ex[b], 10); o1k += overlap(&r, &ex[b], 1000); }
            search_result_free(&r);
        }
        printf("graph %-5s E=%d/%d/%d: %.0f docs scored/query (%.2f%% of N), %.3f s/query, speed-up %.1fx",
               algo ? "hyp+" : "paper", o.entry_points, o.candidates, o.max_iter, scored / Q, 100 * scored / Q / N, lat / Q,
               t_ex / (lat / Q));
        if (have_ex) printf(", overlap@10 %.3f, overlap@1000 %.3f", o10 / Q, o1k / Q);
        printf("\n");
        graph_searcher_free(gs);
    }
    for (int b = 0; b < Q; b++) search_result_free(&ex[b]);
    free(ex);
    qnet_store_scorer_free(&sctx);
    graph_free(&g);
    docstore_free(s);
    qnet_host_free(&q);
    free(X);
    free(cl);
    return 0;
}
