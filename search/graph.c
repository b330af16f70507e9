// graph.c: exact and NN-descent k-NN graphs, k-means centroids, graph files (graph.h).
#include "search/graph.h"
#include "search/exhaustive.h"     // TopK
#include "search/dense.h"
#include "autograd/h5io.h"
#include "kernels/kernels.h"
#include "kernels/elementwise.h"   // hyp_philox4x32
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- randomness
uint64_t search_rand_u64(uint64_t seed, uint64_t stream, uint64_t i) {
    uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    hyp_philox4x32(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    return (uint64_t)ctr[0] | (uint64_t)ctr[1] << 32;
}

long search_sample(long n, long m, uint64_t seed, int32_t *out) {
    if (m >= n) {
        for (long i = 0; i < n; i++) out[i] = (int32_t)i;
        return n;
    }
    if (m <= 0) return 0;
    // Partial Fisher-Yates over 0..n-1: the first m slots are the sample.
    int32_t *a = hyp_malloc((size_t)n * sizeof(int32_t));
    for (long i = 0; i < n; i++) a[i] = (int32_t)i;
    for (long j = 0; j < m; j++) {
        long r = j + (long)(search_rand_u64(seed, 0x5a3b1e, (uint64_t)j) % (uint64_t)(n - j));
        int32_t t = a[j];
        a[j] = a[r];
        a[r] = t;
    }
    memcpy(out, a, (size_t)m * sizeof(int32_t));
    free(a);
    return m;
}

// ---------------------------------------------------------------- exact k-NN
static void row_norms(const float *X, long n, int d, float *out) {
#pragma omp parallel for schedule(static) if (n > 256)
    for (long i = 0; i < n; i++) {
        float s = 0;
        const float *x = X + (size_t)i * d;
        for (int j = 0; j < d; j++) s += x[j] * x[j];
        out[i] = s;
    }
}

// Offer every store row to the heaps of queries Q (nq, d): heaps keep score = -distance.
static int knn_scan(DocStore *s, const float *Q, const float *qn, const long *q_index, long nq, long block_rows,
                    TopK *heaps) {
    long N = docstore_n(s);
    int d = docstore_dim(s);
    const float *direct = docstore_f32(s);
    long rows = block_rows < N ? block_rows : N;
    float *xb = direct ? NULL : hyp_malloc((size_t)rows * d * sizeof(float));
    float *xn = hyp_malloc((size_t)rows * sizeof(float));
    float *G = hyp_malloc((size_t)nq * rows * sizeof(float));
    int rc = 0;
    for (long j0 = 0; j0 < N; j0 += rows) {
        long m = N - j0 < rows ? N - j0 : rows;
        const float *X = direct ? direct + (size_t)j0 * d : xb;
        if (!direct && docstore_rows(s, j0, m, xb)) { rc = -1; break; }
        row_norms(X, m, d, xn);
        backend_get(HYP_CPU)->gemm(false, true, (int)nq, (int)m, d, 1.0f, Q, 0, X, 0, 0.0f, G, 0, 1, HYP_MATMUL_F32);
#pragma omp parallel for schedule(static)
        for (long i = 0; i < nq; i++) {
            TopK *t = &heaps[i];
            const float *g = G + (size_t)i * m;
            long self = q_index ? q_index[i] : -1;
            for (long j = 0; j < m; j++) {
                if (j0 + j == self) continue;   // the global index, in every block
                float sc = hyp_l2_score(qn[i], xn[j], g[j]);
                if (t->n == t->k && sc < t->h[0].score) continue;
                topk_offer(t, sc, (int32_t)(j0 + j));
            }
        }
    }
    free(xb);
    free(xn);
    free(G);
    return rc;
}

int knn_exact_rows(DocStore *s, const float *Q, const long *q_index, long nq, int k, long block_rows,
                   int32_t *out) {
    if (block_rows <= 0) block_rows = 4096;
    int d = docstore_dim(s);
    float *qn = hyp_malloc((size_t)(nq ? nq : 1) * sizeof(float));
    row_norms(Q, nq, d, qn);
    TopK *heaps = hyp_malloc((size_t)(nq ? nq : 1) * sizeof(TopK));
    for (long i = 0; i < nq; i++) topk_init(&heaps[i], k);
    int rc = knn_scan(s, Q, qn, q_index, nq, block_rows, heaps);
    Hit *tmp = hyp_malloc((size_t)(k ? k : 1) * sizeof(Hit));
    for (long i = 0; i < nq; i++) {
        int n = topk_sorted(&heaps[i], tmp);
        for (int j = 0; j < k; j++) out[(size_t)i * k + j] = j < n ? tmp[j].idx : -1;
        topk_free(&heaps[i]);
    }
    free(tmp);
    free(heaps);
    free(qn);
    return rc;
}

// Squared-L2 scores of a block on the device: S = Q X^T, then -(|q|^2 + |x|^2 - 2 q.x).
typedef struct KnnDev {
    const Backend *be;
    const float *Q, *qn;   // (nq, d), (nq) on the device
    float *xn;             // (rows)
    int nq, d;
} KnnDev;
static void knn_dev_block(void *user, const float *X, long n, float *S) {
    KnnDev *c = user;
    c->be->gemm(false, true, c->nq, (int)n, c->d, 1.0f, c->Q, 0, X, 0, 0.0f, S, 0, 1, HYP_MATMUL_F32);
    KERNEL(c->be, row_sumsq, "row_sumsq")(c->xn, X, n, c->d);
    KERNEL(c->be, dense_epilogue, "dense_epilogue")(0, S, c->qn, c->xn, c->nq, n);
}

int knn_exact_rows_dev(DocStore *s, const float *Q, const long *q_index, long nq, int k, long block_rows, Device dev,
                       int32_t *out) {
    if (dev == HYP_CPU) return knn_exact_rows(s, Q, q_index, nq, k, block_rows, out);
    if (block_rows <= 0) block_rows = 4096;
    if (nq <= 0) return 0;
    HYP_CHECK(nq <= INT32_MAX, "knn_exact_rows_dev: %ld query rows", nq);
    const Backend *be = backend_get(dev);
    int d = docstore_dim(s);
    long N = docstore_n(s), rows = block_rows < N ? block_rows : (N ? N : 1);
    KnnDev c = {.be = be, .nq = (int)nq, .d = d};
    float *Qd = be->alloc((size_t)nq * d * sizeof(float)), *qn = be->alloc((size_t)nq * sizeof(float));
    be->copy(Qd, Q, (size_t)nq * d * sizeof(float), COPY_H2D);
    KERNEL(be, row_sumsq, "row_sumsq")(qn, Qd, nq, d);
    c.Q = Qd;
    c.qn = qn;
    c.xn = be->alloc((size_t)rows * sizeof(float));
    int32_t *skip = q_index ? hyp_malloc((size_t)nq * sizeof(int32_t)) : NULL;   // (nq)
    for (long i = 0; skip && i < nq; i++) skip[i] = (int32_t)q_index[i];
    uint64_t *keys = hyp_malloc((size_t)nq * (k ? k : 1) * sizeof(uint64_t));   // (nq, k)
    DeviceScan sc = {.dev = dev, .resident = STORE_F32, .B = (int)nq, .k = k, .lo = 0, .hi = N, .block_rows = rows,
                     .skip = skip, .score = knn_dev_block, .user = &c};
    int rc = device_scan(s, &sc, keys, NULL);
    if (!rc) {
        Hit *tmp = hyp_malloc((size_t)(k ? k : 1) * sizeof(Hit));
        for (long i = 0; i < nq; i++) {
            int n = search_keys_hits(keys + (size_t)i * k, k, tmp);
            for (int j = 0; j < k; j++) out[(size_t)i * k + j] = j < n ? tmp[j].idx : -1;
        }
        free(tmp);
    }
    free(keys);
    free(skip);
    be->free(Qd);
    be->free(qn);
    be->free(c.xn);
    return rc;
}

static void progress_line(const char *what, long done, long total, double t0, double *last) {
    double now = hyp_now();
    if (now - *last < 2.0 && done < total) return;
    double rate = done / (now - t0 > 0 ? now - t0 : 1e-9);
    fprintf(stderr, "\r%s: %ld/%ld rows | %.0f rows/s | eta %.0f s   ", what, done, total, rate,
            (total - done) / (rate > 0 ? rate : 1));
    if (done >= total) fputc('\n', stderr);
    *last = now;
}

static GraphBuildOptions build_defaults(const GraphBuildOptions *o) {
    GraphBuildOptions r = o ? *o : (GraphBuildOptions){0};
    if (r.k <= 0) r.k = 100;
    if (r.block_rows <= 0) r.block_rows = 4096;
    if (r.iters <= 0) r.iters = 12;
    if (r.rho <= 0) r.rho = 0.5;
    if (r.max_candidates <= 0) r.max_candidates = r.k < 60 ? r.k : 60;
    if (r.max_candidates > 128) r.max_candidates = 128;   // local-join buffers hold 4 * 128
    if (r.delta <= 0) r.delta = 0.001;
    return r;
}

int graph_build_exact(DocStore *s, const GraphBuildOptions *o, Graph *g) {
    GraphBuildOptions opt = build_defaults(o);
    memset(g, 0, sizeof *g);
    long N = docstore_n(s);
    int d = docstore_dim(s), k = opt.k;
    g->n = N;
    g->k = k;
    g->recall = -1;
    snprintf(g->builder, sizeof g->builder, "exact");
    g->nbr = hyp_malloc((size_t)(N ? N : 1) * k * sizeof(int32_t));
    long bq = opt.block_rows;
    float *Q = hyp_malloc((size_t)bq * d * sizeof(float));
    long *qi = hyp_malloc((size_t)bq * sizeof(long));
    double t0 = hyp_now(), last = t0;
    int rc = 0;
    for (long i0 = 0; i0 < N; i0 += bq) {
        long m = N - i0 < bq ? N - i0 : bq;
        if (docstore_rows(s, i0, m, Q)) { rc = -1; break; }
        for (long i = 0; i < m; i++) qi[i] = i0 + i;
        if (knn_exact_rows_dev(s, Q, qi, m, k, opt.block_rows, opt.device, g->nbr + (size_t)i0 * k)) { rc = -1; break; }
        if (opt.progress) progress_line("index (exact)", i0 + m, N, t0, &last);
    }
    free(Q);
    free(qi);
    if (rc) graph_free(g);
    return rc;
}

// ---------------------------------------------------------------- NN-descent
typedef struct { float d; int32_t idx; int32_t isnew; } NN;
static inline bool nn_worse(const NN *a, const NN *b) { return a->d > b->d || (a->d == b->d && a->idx > b->idx); }
// Max-heap of k entries per node (root = worst). Returns 1 when x entered.
static int nn_push(NN *h, int *cnt, int k, float dist, int32_t idx) {
    int n = *cnt;
    for (int i = 0; i < n; i++) if (h[i].idx == idx) return 0;
    NN x = {dist, idx, 1};
    if (n == k) {
        if (!nn_worse(&h[0], &x)) return 0;
        int i = 0;   // replace the root, sift down
        for (;;) {
            int c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && nn_worse(&h[c + 1], &h[c])) c++;
            if (!nn_worse(&h[c], &x)) break;
            h[i] = h[c];
            i = c;
        }
        h[i] = x;
        return 1;
    }
    int i = n;
    *cnt = n + 1;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!nn_worse(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
    return 1;
}
static int nn_cmp(const void *a, const void *b) {
    const NN *x = a, *y = b;
    return nn_worse(x, y) ? 1 : nn_worse(y, x) ? -1 : 0;
}

static inline float l2sq(const float *a, const float *b, float na, float nb, int d) {
    float dot = 0;
    for (int i = 0; i < d; i++) dot += a[i] * b[i];
    return na + nb - 2.0f * dot;
}

// Reservoir-sampled list append (serial use only).
static void res_add(int32_t *list, int *len, int *seen, int cap, int32_t v, uint64_t seed, uint64_t ctr) {
    int c = (*seen)++;
    if (*len < cap) { list[(*len)++] = v; return; }
    uint64_t r = search_rand_u64(seed, 0x7e5e7, ctr) % (uint64_t)(c + 1);
    if (r < (uint64_t)cap) list[r] = v;
}

// NN-descent's working state: every node's heap of k neighbours and, per iteration, its
// sampled new/old neighbour lists and their reverses (each at most mc long).
typedef struct NnDescent {
    const float *X, *xn;         // (N, d) vectors, (N) squared norms
    long N;
    int d, k, mc;
    uint64_t seed;
    NN *H;                       // (N, k) heaps
    int *cnt;                    // (N) heap sizes
    int32_t *newl, *oldl, *rnew, *rold;          // (N, mc)
    int *nn_n, *no_n, *rn_n, *ro_n, *rn_seen, *ro_seen;   // (N)
    omp_lock_t locks[4096];      // heap p is guarded by locks[p % 4096]
} NnDescent;

// Random initial neighbours of every node.
static void nnd_init(NnDescent *w) {
    const long N = w->N;
    const int k = w->k, d = w->d;
#pragma omp parallel for schedule(static)
    for (long v = 0; v < N; v++) {
        uint64_t c = 0;
        while (w->cnt[v] < k) {
            long u = (long)(search_rand_u64(w->seed, 0x1217 + (uint64_t)v, c++) % (uint64_t)N);
            if (u == v) continue;
            nn_push(w->H + (size_t)v * k, &w->cnt[v], k,
                    l2sq(w->X + (size_t)v * d, w->X + (size_t)u * d, w->xn[v], w->xn[u], d), (int32_t)u);
        }
    }
}

// Step 1 of iteration it: per node, up to sample_new "new" neighbours (in the order of a
// random per-iteration key; then marked old) and the old ones.
static void nnd_sample(NnDescent *w, int it, int sample_new) {
    const int k = w->k, mc = w->mc;
#pragma omp parallel for schedule(static)
    for (long v = 0; v < w->N; v++) {
        NN *h = w->H + (size_t)v * k;
        int a = 0, b = 0;
        int32_t *nl = w->newl + (size_t)v * mc, *ol = w->oldl + (size_t)v * mc;
        uint64_t keys[256];
        int slots[256], ns = 0;
        for (int i = 0; i < w->cnt[v] && ns < 256; i++)
            if (h[i].isnew) { slots[ns] = i; keys[ns] = search_rand_u64(w->seed, 0x9000 + (uint64_t)it, (uint64_t)v * k + i); ns++; }
        for (int sel = 0; sel < ns && a < sample_new; sel++) {   // selection of the smallest keys
            int best = sel;
            for (int j = sel + 1; j < ns; j++) if (keys[j] < keys[best]) best = j;
            uint64_t tk = keys[sel]; keys[sel] = keys[best]; keys[best] = tk;
            int ts = slots[sel]; slots[sel] = slots[best]; slots[best] = ts;
            nl[a++] = h[slots[sel]].idx;
            h[slots[sel]].isnew = 0;
        }
        for (int i = 0; i < w->cnt[v] && b < mc; i++)
            if (!h[i].isnew) {
                bool just = false;
                for (int j = 0; j < a; j++) if (nl[j] == h[i].idx) { just = true; break; }
                if (!just) ol[b++] = h[i].idx;
            }
        w->nn_n[v] = a;
        w->no_n[v] = b;
    }
}

// Step 2: the reverse lists (serial, reservoir-sampled to mc).
static void nnd_reverse(NnDescent *w, int it) {
    const long N = w->N;
    const int mc = w->mc;
    memset(w->rn_n, 0, (size_t)N * sizeof(int));
    memset(w->ro_n, 0, (size_t)N * sizeof(int));
    memset(w->rn_seen, 0, (size_t)N * sizeof(int));
    memset(w->ro_seen, 0, (size_t)N * sizeof(int));
    uint64_t ctr = (uint64_t)it << 40;
    for (long v = 0; v < N; v++) {
        for (int i = 0; i < w->nn_n[v]; i++) {
            int32_t u = w->newl[(size_t)v * mc + i];
            res_add(w->rnew + (size_t)u * mc, &w->rn_n[u], &w->rn_seen[u], mc, (int32_t)v, w->seed, ctr++);
        }
        for (int i = 0; i < w->no_n[v]; i++) {
            int32_t u = w->oldl[(size_t)v * mc + i];
            res_add(w->rold + (size_t)u * mc, &w->ro_n[u], &w->ro_seen[u], mc, (int32_t)v, w->seed, ctr++);
        }
    }
}

// Step 3: the local join (every new candidate against every other candidate of the node).
// Returns the number of heap updates.
static long nnd_join(NnDescent *w) {
    const int k = w->k, mc = w->mc, d = w->d;
    long updates = 0;
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : updates)
    for (long v = 0; v < w->N; v++) {
        int32_t nc[512], oc[512];
        int a = 0, b = 0;
        for (int i = 0; i < w->nn_n[v]; i++) nc[a++] = w->newl[(size_t)v * mc + i];
        for (int i = 0; i < w->rn_n[v]; i++) nc[a++] = w->rnew[(size_t)v * mc + i];
        for (int i = 0; i < w->no_n[v]; i++) oc[b++] = w->oldl[(size_t)v * mc + i];
        for (int i = 0; i < w->ro_n[v]; i++) oc[b++] = w->rold[(size_t)v * mc + i];
        for (int i = 0; i < a; i++) {
            int32_t p = nc[i];
            const float *xp = w->X + (size_t)p * d;
            for (int j = i + 1; j < a + b; j++) {
                int32_t q = j < a ? nc[j] : oc[j - a];
                if (q == p) continue;
                float dist = l2sq(xp, w->X + (size_t)q * d, w->xn[p], w->xn[q], d);
                omp_set_lock(&w->locks[p % 4096]);
                updates += nn_push(w->H + (size_t)p * k, &w->cnt[p], k, dist, q);
                omp_unset_lock(&w->locks[p % 4096]);
                omp_set_lock(&w->locks[q % 4096]);
                updates += nn_push(w->H + (size_t)q * k, &w->cnt[q], k, dist, p);
                omp_unset_lock(&w->locks[q % 4096]);
            }
        }
    }
    return updates;
}

int graph_build_nndescent(DocStore *s, const GraphBuildOptions *o, Graph *g) {
    GraphBuildOptions opt = build_defaults(o);
    memset(g, 0, sizeof *g);
    long N = docstore_n(s);
    int d = docstore_dim(s), k = opt.k;
    if (N < 2) return graph_build_exact(s, o, g);
    if (k > N - 1) k = (int)(N - 1);
    const float *X = docstore_f32(s);
    float *own = NULL;
    if (!X) {
        own = hyp_malloc((size_t)N * d * sizeof(float));
        if (docstore_rows(s, 0, N, own)) { free(own); return -1; }
        X = own;
    }
    float *xn = hyp_malloc((size_t)N * sizeof(float));
    row_norms(X, N, d, xn);
    const int mc = opt.max_candidates;
    const size_t lists = (size_t)N * mc * sizeof(int32_t), counts = (size_t)N * sizeof(int);
    NnDescent *w = hyp_calloc(1, sizeof *w);
    *w = (NnDescent){.X = X, .xn = xn, .N = N, .d = d, .k = k, .mc = mc, .seed = opt.seed,
                     .H = hyp_malloc((size_t)N * k * sizeof(NN)), .cnt = hyp_calloc((size_t)N, sizeof(int)),
                     .newl = hyp_malloc(lists), .oldl = hyp_malloc(lists), .rnew = hyp_malloc(lists), .rold = hyp_malloc(lists),
                     .nn_n = hyp_malloc(counts), .no_n = hyp_malloc(counts), .rn_n = hyp_malloc(counts),
                     .ro_n = hyp_malloc(counts), .rn_seen = hyp_malloc(counts), .ro_seen = hyp_malloc(counts)};
    for (int i = 0; i < 4096; i++) omp_init_lock(&w->locks[i]);
    nnd_init(w);
    double t0 = hyp_now();
    int sample_new = (int)(opt.rho * k + 0.5);
    if (sample_new < 1) sample_new = 1;
    if (sample_new > mc) sample_new = mc;
    for (int it = 0; it < opt.iters; it++) {
        nnd_sample(w, it, sample_new);
        nnd_reverse(w, it);
        const long updates = nnd_join(w);
        if (opt.progress)
            fprintf(stderr, "index (nn-descent): iteration %d: %ld updates (%.4f of n*k) | %.1f s\n", it + 1, updates,
                    (double)updates / ((double)N * k), hyp_now() - t0);
        if (updates < opt.delta * (double)N * k) break;
    }
    for (int i = 0; i < 4096; i++) omp_destroy_lock(&w->locks[i]);
    g->n = N;
    g->k = opt.k;
    g->recall = -1;
    snprintf(g->builder, sizeof g->builder, "nndescent");
    g->nbr = hyp_malloc((size_t)N * opt.k * sizeof(int32_t));
#pragma omp parallel for schedule(static)
    for (long v = 0; v < N; v++) {
        NN *h = w->H + (size_t)v * k;
        qsort(h, (size_t)w->cnt[v], sizeof(NN), nn_cmp);
        for (int j = 0; j < opt.k; j++) g->nbr[(size_t)v * opt.k + j] = j < w->cnt[v] ? h[j].idx : -1;
    }
    free(w->H); free(w->cnt); free(w->newl); free(w->oldl); free(w->rnew); free(w->rold);
    free(w->nn_n); free(w->no_n); free(w->rn_n); free(w->ro_n); free(w->rn_seen); free(w->ro_seen);
    free(w);
    free(xn);
    free(own);
    return 0;
}

double graph_recall_sample(DocStore *s, const Graph *g, int sample, uint64_t seed) {
    long N = docstore_n(s);
    int d = docstore_dim(s), k = g->k;
    int32_t *rows = hyp_malloc((size_t)(sample > 0 ? sample : 1) * sizeof(int32_t));
    long m = search_sample(N, sample, seed, rows);
    float *Q = hyp_malloc((size_t)(m ? m : 1) * d * sizeof(float));
    long *qi = hyp_malloc((size_t)(m ? m : 1) * sizeof(long));
    for (long i = 0; i < m; i++) qi[i] = rows[i];
    int32_t *ex = hyp_malloc((size_t)(m ? m : 1) * k * sizeof(int32_t));
    double recall = -1;
    if (!docstore_gather(s, rows, m, Q) && !knn_exact_rows(s, Q, qi, m, k, 4096, ex)) {
        long hit = 0, tot = 0;
        for (long i = 0; i < m; i++) {
            const int32_t *a = g->nbr + (size_t)rows[i] * k, *e = ex + (size_t)i * k;
            for (int j = 0; j < k; j++) {
                if (e[j] < 0) continue;
                tot++;
                for (int l = 0; l < k; l++) if (a[l] == e[j]) { hit++; break; }
            }
        }
        recall = tot ? (double)hit / tot : 1.0;
    }
    free(rows); free(Q); free(qi); free(ex);
    return recall;
}

// ---------------------------------------------------------------- k-means
typedef struct { float d; int32_t idx; } DI;
static int di_cmp(const void *a, const void *b) {
    const DI *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

// Nearest centroid of each row of X (n, d) among the store cs (C centroids), found on dev by the
// exact k-NN (k = 1: blocked GEMM + top-k, ties to the lower index; only the index comes back
// from a device), and its squared distance, computed here directly.
static int assign_rows(DocStore *cs, const float *X, long n, Device dev, int32_t *assign, float *dist) {
    int d = docstore_dim(cs);
    if (knn_exact_rows_dev(cs, X, NULL, n, 1, docstore_n(cs), dev, assign)) return -1;
    const float *C = docstore_f32(cs);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        const float *x = X + (size_t)i * d, *c = C + (size_t)assign[i] * d;
        float s = 0;
        for (int j = 0; j < d; j++) s += (x[j] - c[j]) * (x[j] - c[j]);
        dist[i] = s;
    }
    return 0;
}

int graph_kmeans(DocStore *s, const KMeansOptions *ko, Graph *g) {
    long N = docstore_n(s);
    int d = docstore_dim(s), C = ko->centroids, iters = ko->iters > 0 ? ko->iters : 10;
    const Device dev = ko->device;
    const uint64_t seed = ko->seed;
    if (C <= 0 || C > N) { hyp_set_error("k-means: %d centroids for %ld documents", C, N); return -1; }
    long train_sample = ko->train_sample > 0 ? ko->train_sample : 256L * C;
    int32_t *tr = hyp_malloc((size_t)(train_sample < N ? train_sample : N) * sizeof(int32_t));
    long nt = search_sample(N, train_sample, seed, tr);
    float *T = hyp_malloc((size_t)nt * d * sizeof(float));   // (nt, d) training rows
    if (docstore_gather(s, tr, nt, T)) { free(tr); free(T); return -1; }
    float *Cm = hyp_malloc((size_t)C * d * sizeof(float));    // (C, d) centroids
    int32_t *init = hyp_malloc((size_t)C * sizeof(int32_t));
    search_sample(nt, C, seed + 1, init);
    for (int c = 0; c < C; c++) memcpy(Cm + (size_t)c * d, T + (size_t)init[c] * d, (size_t)d * sizeof(float));
    long blk = dev == HYP_CPU ? 4096 : 65536;   // rows per assignment call (a device call uploads them)
    int32_t *as = hyp_malloc((size_t)nt * sizeof(int32_t));
    float *ds = hyp_malloc((size_t)nt * sizeof(float));
    double *sum = hyp_malloc((size_t)C * d * sizeof(double));
    long *cc = hyp_malloc((size_t)C * sizeof(long));
    double t0 = hyp_now();
    int rc = 0;
    for (int it = 0; it < iters && !rc; it++) {
        DocStore *cs = docstore_from_memory(Cm, C, d, NULL, STORE_F32);   // this iteration's centroids
        for (long i = 0; i < nt && !rc; i += blk) {
            long m = nt - i < blk ? nt - i : blk;
            rc = assign_rows(cs, T + (size_t)i * d, m, dev, as + i, ds + i);
        }
        docstore_free(cs);
        if (rc) break;
        memset(sum, 0, (size_t)C * d * sizeof(double));
        memset(cc, 0, (size_t)C * sizeof(long));
        double inertia = 0;
        for (long i = 0; i < nt; i++) {
            double *sc = sum + (size_t)as[i] * d;
            const float *x = T + (size_t)i * d;
            for (int j = 0; j < d; j++) sc[j] += x[j];
            cc[as[i]]++;
            inertia += ds[i];
        }
        for (int c = 0; c < C; c++) {
            if (cc[c] == 0) {   // empty: re-seed from a random training row
                long r = (long)(search_rand_u64(seed, 0xe3e7 + (uint64_t)it, (uint64_t)c) % (uint64_t)nt);
                memcpy(Cm + (size_t)c * d, T + (size_t)r * d, (size_t)d * sizeof(float));
                continue;
            }
            for (int j = 0; j < d; j++) Cm[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] / cc[c]);
        }
        if (ko->progress) fprintf(stderr, "k-means: iteration %d/%d: mean squared distance %.4g | %.1f s\n", it + 1, iters,
                                  inertia / nt, hyp_now() - t0);
    }
    free(T); free(tr); free(init); free(as); free(ds); free(sum);
    if (rc) { free(Cm); free(cc); return -1; }
    // Every document: its cluster, then members sorted by distance (ties: index).
    int32_t *asn = hyp_malloc((size_t)N * sizeof(int32_t));
    float *dsn = hyp_malloc((size_t)N * sizeof(float));
    float *xb = hyp_malloc((size_t)blk * d * sizeof(float));   // (blk, d) document rows
    DocStore *cs = docstore_from_memory(Cm, C, d, NULL, STORE_F32);
    for (long i = 0; i < N && !rc; i += blk) {
        long m = N - i < blk ? N - i : blk;
        rc = docstore_rows(s, i, m, xb) || assign_rows(cs, xb, m, dev, asn + i, dsn + i) ? -1 : 0;
    }
    docstore_free(cs);
    free(xb);
    if (rc) { free(asn); free(dsn); free(Cm); free(cc); return -1; }
    free(g->centroids); free(g->cl_off); free(g->cl_members);
    g->n_centroids = C;
    g->dim = d;
    g->centroids = Cm;
    g->cl_off = hyp_calloc((size_t)C + 1, sizeof(int32_t));
    for (long i = 0; i < N; i++) g->cl_off[asn[i] + 1]++;
    for (int c = 0; c < C; c++) g->cl_off[c + 1] += g->cl_off[c];
    DI *tmp = hyp_malloc((size_t)N * sizeof(DI));
    memset(cc, 0, (size_t)C * sizeof(long));
    for (long i = 0; i < N; i++) tmp[g->cl_off[asn[i]] + cc[asn[i]]++] = (DI){dsn[i], (int32_t)i};
    g->cl_members = hyp_malloc((size_t)N * sizeof(int32_t));
#pragma omp parallel for schedule(dynamic, 16)
    for (int c = 0; c < C; c++) {
        qsort(tmp + g->cl_off[c], (size_t)(g->cl_off[c + 1] - g->cl_off[c]), sizeof(DI), di_cmp);
        for (int32_t i = g->cl_off[c]; i < g->cl_off[c + 1]; i++) g->cl_members[i] = tmp[i].idx;
    }
    free(tmp); free(asn); free(dsn); free(cc);
    return 0;
}

// ---------------------------------------------------------------- files
int graph_write(const char *path, const Graph *g) {
    H5File *f = h5_begin(path);
    if (!f) return -1;
    h5_write_i32(f, "/neighbors", g->nbr, 2, (int[]){(int)g->n, g->k});
    if (g->n_centroids > 0) {
        h5_write_f32(f, "/centroids", g->centroids, 2, (int[]){g->n_centroids, g->dim});
        h5_write_i32(f, "/cluster_offsets", g->cl_off, 1, (int[]){g->n_centroids + 1});
        h5_write_i32(f, "/cluster_members", g->cl_members, 1, (int[]){(int)g->n});
    }
    h5_write_attr_i64(f, "/neighbors", "k", g->k);
    h5_write_attr_str(f, "/neighbors", "metric", "l2");
    h5_write_attr_str(f, "/neighbors", "builder", g->builder[0] ? g->builder : "exact");
    if (g->recall >= 0) h5_write_attr_f64(f, "/neighbors", "recall", g->recall);
    return h5_commit(f);
}

int graph_read(const char *path, long expect_n, Graph *g) {
    memset(g, 0, sizeof *g);
    g->recall = -1;
    H5File *f = h5_open(path);
    if (!f) return -1;
    int shape[HYP_MAX_DIMS], nd;
    if (!h5_exists(f, "/neighbors")) {
        hyp_set_error("%s: /neighbors: not found (expected the output of `hyp index`)", path);
        h5_close(f);
        return -1;
    }
    int32_t *nbr = h5_read_i32(f, "/neighbors", &nd, shape);
    if (!nbr) { h5_close(f); return -1; }
    if (nd != 2 || shape[1] <= 0) {
        hyp_set_error("%s: /neighbors: expected (N, k), got rank %d", path, nd);
        free(nbr);
        h5_close(f);
        return -1;
    }
    g->n = shape[0];
    g->k = shape[1];
    g->nbr = nbr;
    if (expect_n >= 0 && g->n != expect_n) {
        hyp_set_error("%s: the graph has %ld rows but the document store has %ld documents (built for another corpus?)",
                      path, g->n, expect_n);
        goto fail;
    }
    for (size_t i = 0; i < (size_t)g->n * g->k; i++)
        if (nbr[i] < -1 || nbr[i] >= g->n) {
            hyp_set_error("%s: /neighbors: entry %zu = %d outside -1..%ld", path, i, nbr[i], g->n - 1);
            goto fail;
        }
    if (h5_exists(f, "/centroids")) {
        int cs[HYP_MAX_DIMS], os[HYP_MAX_DIMS], ms[HYP_MAX_DIMS], n1, n2, n3;
        g->centroids = h5_read_f32(f, "/centroids", &n1, cs);
        g->cl_off = g->centroids ? h5_read_i32(f, "/cluster_offsets", &n2, os) : NULL;
        g->cl_members = g->cl_off ? h5_read_i32(f, "/cluster_members", &n3, ms) : NULL;
        if (!g->cl_members) goto fail;
        if (n1 != 2 || n2 != 1 || n3 != 1 || os[0] != cs[0] + 1 || ms[0] != g->n) {
            hyp_set_error("%s: /centroids, /cluster_offsets, /cluster_members: inconsistent shapes", path);
            goto fail;
        }
        g->n_centroids = cs[0];
        g->dim = cs[1];
        bool ok = g->cl_off[0] == 0 && g->cl_off[g->n_centroids] == g->n;
        for (int c = 0; ok && c < g->n_centroids; c++) ok = g->cl_off[c] <= g->cl_off[c + 1];
        for (long i = 0; ok && i < g->n; i++) ok = g->cl_members[i] >= 0 && g->cl_members[i] < g->n;
        if (!ok) { hyp_set_error("%s: /cluster_offsets or /cluster_members: invalid entries", path); goto fail; }
    }
    // Optional attributes: the builder's name and NN-descent's sampled recall.
    if (h5_read_attr_str(f, "/neighbors", "builder", g->builder, sizeof g->builder) || !g->builder[0])
        snprintf(g->builder, sizeof g->builder, "exact");
    if (h5_read_attr_f64(f, "/neighbors", "recall", &g->recall)) g->recall = -1;
    h5_close(f);
    return 0;
fail:
    h5_close(f);
    graph_free(g);
    return -1;
}

void graph_free(Graph *g) {
    free(g->nbr);
    free(g->centroids);
    free(g->cl_off);
    free(g->cl_members);
    memset(g, 0, sizeof *g);
}
