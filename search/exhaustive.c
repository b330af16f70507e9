// exhaustive.c: top-k heap, host q-nets and their direct scorer, exact search (exhaustive.h).
#include "search/exhaustive.h"
#include "kernels/kernels.h"
#include "kernels/elementwise.h"   // hyp_search_key, hyp_inv_norm
#include "search/dense.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- top-k
// Heap order: the root is the worst hit (lowest score; among equal scores the largest index).
static inline bool worse(const Hit *a, const Hit *b) { return hit_better(b->score, b->idx, a->score, a->idx); }

void topk_init(TopK *t, int k) {
    t->k = k > 0 ? k : 0;
    t->n = 0;
    t->h = hyp_malloc((size_t)(t->k ? t->k : 1) * sizeof(Hit));
}
void topk_free(TopK *t) { free(t->h); t->h = NULL; t->n = t->k = 0; }
void topk_clear(TopK *t) { t->n = 0; }

static void sift_down(Hit *h, int n, int i) {
    Hit x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(&h[c + 1], &h[c])) c++;
        if (!worse(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}
static void push(TopK *t, Hit x) {
    int i = t->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!worse(&x, &t->h[p])) break;
        t->h[i] = t->h[p];
        i = p;
    }
    t->h[i] = x;
}

bool topk_offer(TopK *t, float score, int32_t idx) {
    if (t->k == 0) return false;
    if (score != score) score = -INFINITY;
    Hit x = {score, idx};
    if (t->n < t->k) { push(t, x); return true; }
    if (!hit_better(score, idx, t->h[0].score, t->h[0].idx)) return false;
    t->h[0] = x;
    sift_down(t->h, t->n, 0);
    return true;
}

bool topk_offer_strict(TopK *t, float score, int32_t idx) {
    if (t->k == 0) return false;
    if (score != score) score = -INFINITY;
    Hit x = {score, idx};
    if (t->n < t->k) { push(t, x); return true; }
    if (!(score > t->h[0].score)) return false;
    t->h[0] = x;
    sift_down(t->h, t->n, 0);
    return true;
}

static int hit_cmp(const void *a, const void *b) {
    const Hit *x = a, *y = b;
    if (hit_better(x->score, x->idx, y->score, y->idx)) return -1;
    if (hit_better(y->score, y->idx, x->score, x->idx)) return 1;
    return 0;
}
void hits_sort(Hit *h, long n) { if (n > 1) qsort(h, (size_t)n, sizeof *h, hit_cmp); }

int topk_sorted(const TopK *t, Hit *out) {
    memcpy(out, t->h, (size_t)t->n * sizeof(Hit));
    hits_sort(out, t->n);
    return t->n;
}

void search_result_free(SearchResult *r) { free(r->hits); r->hits = NULL; r->n = 0; }

// ---------------------------------------------------------------- host q-nets
QNetHost qnet_host_from(const QNet *q) {
    QNetHost h = {.B = q->B, .layers = q->layers, .dim = q->dim, .eps = q->eps, .owned = true};
    for (int j = 0; j <= q->layers; j++) {
        HYP_CHECK(q->W[j]->dtype == HYP_F32, "q-net weights must be fp32");
        h.W[j] = hyp_malloc(tensor_bytes(q->W[j]));
        tensor_to_host(q->W[j], h.W[j]);
    }
    for (int j = 0; j < q->layers; j++) {
        h.b[j] = hyp_malloc(tensor_bytes(q->b[j]));
        tensor_to_host(q->b[j], h.b[j]);
    }
    return h;
}

QNetHost qnet_host_slice(const QNetHost *q, int b0, int nb) {
    HYP_CHECK(b0 >= 0 && nb >= 0 && b0 + nb <= q->B, "qnet_host_slice: [%d, %d) outside %d queries", b0, b0 + nb, q->B);
    QNetHost h = *q;
    size_t d = (size_t)q->dim;
    h.B = nb;
    h.owned = false;
    for (int j = 0; j < q->layers; j++) {
        h.W[j] = q->W[j] + (size_t)b0 * d * d;
        h.b[j] = q->b[j] + (size_t)b0 * d;
    }
    h.W[q->layers] = q->W[q->layers] + (size_t)b0 * d;
    return h;
}

void qnet_host_free(QNetHost *q) {
    if (q->owned) {
        for (int j = 0; j <= q->layers; j++) free(q->W[j]);
        for (int j = 0; j < q->layers; j++) free(q->b[j]);
    }
    memset(q, 0, sizeof *q);
}

void qnet_work_free(QNetWork *w) {
    free(w->a);
    free(w->z);
    memset(w, 0, sizeof *w);
}
static void work_reserve(QNetWork *w, long n, int d) {
    if (n <= w->cap && d == w->dim) return;
    long cap = n > w->cap ? n : w->cap;
    free(w->a);
    free(w->z);
    w->a = hyp_malloc((size_t)cap * d * sizeof(float));
    w->z = hyp_malloc((size_t)cap * d * sizeof(float));
    w->cap = cap;
    w->dim = d;
}

// The q-net of query b on n host rows, with the CPU backend's kernels: per hidden layer one GEMM
// and the fused activation (qnet_act_fwd: the same arithmetic as the differentiable ops of
// model/hypencoder.c's qnet_run), then the output GEMV.
void qnet_host_score(const QNetHost *q, int b, const float *X, long n, float *scores, QNetWork *w) {
    if (n <= 0) return;
    int d = q->dim, L = q->layers;
    work_reserve(w, n, d);
    const Backend *be = backend_get(HYP_CPU);
    const float *x = X;   // current layer input (n, d)
    for (int j = 0; j < L; j++) {
        float *z = j % 2 == 0 ? w->a : w->z;   // (n, d), never the buffer x points into
        const float *W = q->W[j] + (size_t)b * d * d, *bias = q->b[j] + (size_t)b * d;
        be->gemm(false, true, (int)n, d, d, 1.0f, x, 0, W, 0, 0.0f, z, 0, 1, HYP_MATMUL_F32);   // z = x W^T
        be->qnet_act_fwd(z, z, bias, j < L - 1 ? x : NULL, false, 1, n, d, q->eps);      // LN(ReLU(z + b)) (+ x)
        x = z;
    }
    be->gemm(false, true, (int)n, 1, d, 1.0f, x, 0, q->W[L] + (size_t)b * d, 0, 0.0f, scores, 0, 1, HYP_MATMUL_F32);
}

// ---------------------------------------------------------------- exhaustive search
// The documents [lo, hi) of a shard (all of them when doc_end is 0).
static int doc_range(const ExhaustiveOptions *o, long N, long *lo, long *hi) {
    *lo = 0;
    *hi = N;
    if (o->doc_end <= 0) return 0;
    if (o->doc_begin < 0 || o->doc_begin > o->doc_end || o->doc_end > N) {
        hyp_set_error("exhaustive_search: document range [%ld, %ld) outside [0, %ld)", o->doc_begin, o->doc_end, N);
        return -1;
    }
    *lo = o->doc_begin;
    *hi = o->doc_end;
    return 0;
}

int exhaustive_search(DocStore *s, const QNetHost *q, const char *const *qids, const ExhaustiveOptions *o,
                      SearchResult *out) {
    ExhaustiveOptions opt = o ? *o : (ExhaustiveOptions){0};
    if (opt.k <= 0) opt.k = 1000;
    if (opt.block_rows <= 0) opt.block_rows = 16384;
    long N = docstore_n(s);
    int d = docstore_dim(s), B = q->B;
    if (d != q->dim) {
        hyp_set_error("%s: documents have dimension %d but the model's q-net expects %d", docstore_path(s), d, q->dim);
        return -1;
    }
    if (opt.ignore_same_id && !qids) { hyp_set_error("exhaustive_search: ignore_same_id needs query ids"); return -1; }
    long *self = hyp_malloc((size_t)(B ? B : 1) * sizeof(long));
    for (int b = 0; b < B; b++) self[b] = opt.ignore_same_id ? docstore_find(s, qids[b]) : -1;
    TopK *heaps = hyp_malloc((size_t)(B ? B : 1) * sizeof(TopK));
    for (int b = 0; b < B; b++) topk_init(&heaps[b], opt.k);
    long lo, hi;
    if (doc_range(&opt, N, &lo, &hi)) {
        for (int b = 0; b < B; b++) topk_free(&heaps[b]);
        free(heaps);
        free(self);
        return -1;
    }
    long rows = opt.block_rows < N ? opt.block_rows : (N > 0 ? N : 1);
    const float *direct = docstore_f32(s);
    float *xbuf = direct ? NULL : hyp_malloc((size_t)rows * d * sizeof(float));
    float *sc = hyp_malloc((size_t)rows * sizeof(float));
    QNetWork w = {0};
    double t0 = hyp_now(), last = t0;
    int rc = 0;
    for (long r0 = lo; r0 < hi; r0 += rows) {
        long n = hi - r0 < rows ? hi - r0 : rows;
        const float *X = direct ? direct + (size_t)r0 * d : xbuf;
        if (!direct && docstore_rows(s, r0, n, xbuf)) { rc = -1; break; }
        for (int b = 0; b < B && !rc; b++) {
            qnet_host_score(q, b, X, n, sc, &w);
            size_t i = hyp_find_nonfinite(sc, (size_t)n, NULL);
            if (i < (size_t)n) {
                // NaN would rank last and inf first, silently: refuse, naming query and document.
                char qn[160];
                if (qids) snprintf(qn, sizeof qn, "'%.120s'", qids[b]);
                else snprintf(qn, sizeof qn, "%d", b);
                hyp_set_error("%s: query %s: the q-net scored document '%s' as %g; expected finite scores "
                              "(non-finite q-net weights from the query encoder?)", docstore_path(s), qn,
                              docstore_id(s, r0 + (long)i), sc[i]);
                rc = -1;
                break;
            }
            TopK *t = &heaps[b];
            for (long i = 0; i < n; i++) {
                long idx = r0 + i;
                if (idx == self[b]) continue;
                // Cheap reject before the heap call (the common case once the heap is full).
                if (t->n == t->k && t->k && !(sc[i] >= t->h[0].score)) continue;
                topk_offer(t, sc[i], (int32_t)idx);
            }
        }
        if (rc) break;
        double now = hyp_now();
        if (opt.progress && (now - last > 2.0 || r0 + n == hi)) {
            double rate = (r0 + n - lo) / (now - t0 > 0 ? now - t0 : 1e-9);
            fprintf(stderr, "\rexhaustive: %ld/%ld documents x %d queries | %.0f docs/s per query | eta %.0f s   ",
                    r0 + n - lo, hi - lo, B, rate, (hi - r0 - n) / (rate > 0 ? rate : 1));
            if (r0 + n == hi) fputc('\n', stderr);
            last = now;
        }
    }
    double dt = hyp_now() - t0;
    for (int b = 0; b < B; b++) {
        if (rc == 0) {
            out[b].hits = hyp_malloc((size_t)(heaps[b].n ? heaps[b].n : 1) * sizeof(Hit));
            out[b].n = topk_sorted(&heaps[b], out[b].hits);
            out[b].scored = hi - lo;
            out[b].seconds = B ? dt / B : 0;
            out[b].iterations = 0;
        }
        topk_free(&heaps[b]);
    }
    qnet_work_free(&w);
    free(heaps);
    free(self);
    free(xbuf);
    free(sc);
    return rc;
}

// ---------------------------------------------------------------- device search
uint64_t search_key(float score, int32_t idx) { return hyp_search_key(score, idx); }
Hit search_key_hit(uint64_t key) { return (Hit){hyp_search_key_score(key), hyp_search_key_idx(key)}; }
int search_keys_hits(const uint64_t *keys, int k, Hit *out) {
    int n = 0;
    for (int i = 0; i < k; i++)
        if (keys[i]) out[n++] = search_key_hit(keys[i]);
    hits_sort(out, n);
    return n;
}

// Options with defaults, the shard and the per-query skipped index (ignore_same_id) for the
// device searches. skip (B) malloc'd. 0 or -1 + error.
static int device_prepare(DocStore *s, const char *const *qids, int B, const ExhaustiveOptions *o,
                          ExhaustiveOptions *opt, long *lo, long *hi, int32_t **skip) {
    *opt = o ? *o : (ExhaustiveOptions){0};
    if (opt->k <= 0) opt->k = 1000;
    if (opt->block_rows <= 0) opt->block_rows = 16384;
    *skip = NULL;
    if (opt->ignore_same_id && !qids) { hyp_set_error("exhaustive_search: ignore_same_id needs query ids"); return -1; }
    if (doc_range(opt, docstore_n(s), lo, hi)) return -1;
    *skip = hyp_malloc((size_t)(B ? B : 1) * sizeof(int32_t));
    for (int b = 0; b < B; b++) (*skip)[b] = opt->ignore_same_id ? (int32_t)docstore_find(s, qids[b]) : -1;
    return 0;
}

// Keys of queries [b0, b0+nb) into their results.
static void device_results(const uint64_t *keys, int nb, int k, long scored, double seconds, SearchResult *out) {
    for (int b = 0; b < nb; b++) {
        out[b].hits = hyp_malloc((size_t)(k ? k : 1) * sizeof(Hit));
        out[b].n = search_keys_hits(keys + (size_t)b * k, k, out[b].hits);
        out[b].scored = scored;
        out[b].seconds = seconds;
        out[b].iterations = 0;
    }
}

int exhaustive_search_qnet(DocStore *s, const QNet *q, const char *const *qids, const ExhaustiveOptions *o,
                           SearchResult *out) {
    Device dev = o ? o->device : HYP_CPU;
    if (dev == HYP_CPU) {
        QNetHost h = qnet_host_from(q);
        int rc = exhaustive_search(s, &h, qids, o, out);
        qnet_host_free(&h);
        return rc;
    }
    int d = docstore_dim(s), B = q->B, L = q->layers;
    if (d != q->dim) {
        hyp_set_error("%s: documents have dimension %d but the model's q-net expects %d", docstore_path(s), d, q->dim);
        return -1;
    }
    ExhaustiveOptions opt;
    long lo, hi;
    int32_t *skip;
    if (device_prepare(s, qids, B, o, &opt, &lo, &hi, &skip)) return -1;
    const Backend *be = backend_get(dev);
    QNetDevWeights wts;
    qnet_dev_weights(&wts, q, dev);
    long span = hi - lo, rows = opt.block_rows < span ? opt.block_rows : (span > 0 ? span : 1);
    // Queries per group: activations (2 x nb x rows x d floats) within ~1 GiB.
    int G = opt.query_batch > 0 ? opt.query_batch : (int)((1L << 27) / ((long)rows * d));
    if (opt.query_batch <= 0 && G > 64) G = 64;
    if (G < 1) G = 1;
    if (G > B) G = B > 0 ? B : 1;
    QNetDev qd = {.be = be, .layers = L, .d = d, .eps = q->eps};
    qd.z[0] = be->alloc((size_t)G * rows * d * sizeof(float));
    qd.z[1] = L > 1 ? be->alloc((size_t)G * rows * d * sizeof(float)) : NULL;
    uint64_t *keys = hyp_malloc((size_t)G * opt.k * sizeof(uint64_t));   // (G, k)
    int32_t *bad = hyp_malloc((size_t)G * sizeof(int32_t));
    int rc = 0;
    double t0 = hyp_now();
    for (int b0 = 0; b0 < B && !rc; b0 += G) {
        int nb = B - b0 < G ? B - b0 : G;
        qnet_dev_group(&qd, &wts, b0, nb);
        DeviceScan sc = {.dev = dev, .resident = opt.resident, .B = nb, .k = opt.k, .lo = lo, .hi = hi,
                         .block_rows = rows, .skip = skip + b0, .check_bad = true, .progress = opt.progress,
                         .what = "exhaustive (gpu)", .score = qnet_dev_block, .user = &qd};
        if ((rc = device_scan(s, &sc, keys, bad))) break;
        for (int b = 0; b < nb; b++) {
            if (bad[b] == INT32_MAX) continue;
            // NaN would rank last and inf first, silently: refuse, naming query and document.
            char qn[160];
            if (qids) snprintf(qn, sizeof qn, "'%.120s'", qids[b0 + b]);
            else snprintf(qn, sizeof qn, "%d", b0 + b);
            hyp_set_error("%s: query %s: the q-net scored document '%s' as non-finite; expected finite scores "
                          "(non-finite q-net weights from the query encoder?)", docstore_path(s), qn,
                          docstore_id(s, bad[b]));
            rc = -1;
            for (int c = 0; c < b0; c++) search_result_free(&out[c]);
            break;
        }
        if (!rc) device_results(keys, nb, opt.k, span, (hyp_now() - t0) / (b0 + nb), out + b0);
    }
    // Every query's time is the mean over the whole run.
    double dt = hyp_now() - t0;
    for (int b = 0; b < B && !rc; b++) out[b].seconds = B ? dt / B : 0;
    free(keys);
    free(bad);
    be->free(qd.z[0]);
    if (qd.z[1]) be->free(qd.z[1]);
    qnet_dev_weights_free(&wts);
    free(skip);
    return rc;
}

// Dense scores of a block: S (B, n) = Q X^T, cosine scaled by the documents' inverse norms.
typedef struct DenseDev {
    const Backend *be;
    const float *Q;   // (B, d) on the device (cosine: already normalised)
    int B, d;
    DenseMetric metric;
    float *xs;        // (rows) document sums of squares
} DenseDev;

static void dense_dev_block(void *user, const float *X, long n, float *S) {
    DenseDev *q = user;
    q->be->gemm(false, true, q->B, (int)n, q->d, 1.0f, q->Q, 0, X, 0, 0.0f, S, 0, 1, HYP_MATMUL_F32);
    if (q->metric == DENSE_COSINE) {
        KERNEL(q->be, row_sumsq, "row_sumsq")(q->xs, X, n, q->d);
        KERNEL(q->be, dense_epilogue, "dense_epilogue")(1, S, NULL, q->xs, q->B, n);
    }
}

int exhaustive_search_dense(DocStore *s, const float *Q, int B, DenseMetric metric, const char *const *qids,
                            const ExhaustiveOptions *o, SearchResult *out) {
    int d = docstore_dim(s);
    ExhaustiveOptions opt;
    long lo, hi;
    int32_t *skip;
    if (device_prepare(s, qids, B, o, &opt, &lo, &hi, &skip)) return -1;
    if (B <= 0) { free(skip); return 0; }
    Device dev = opt.device;
    const Backend *be = backend_get(dev);
    long span = hi - lo, rows = opt.block_rows < span ? opt.block_rows : (span > 0 ? span : 1);
    // Queries per group: the score block (G, rows) within ~1 GiB.
    int G = opt.query_batch > 0 ? opt.query_batch : (int)((1L << 28) / rows);
    if (G < 1) G = 1;
    if (G > B) G = B;
    float *qh = hyp_malloc((size_t)G * d * sizeof(float));   // (G, d) host, normalised for cosine
    DenseDev dd = {.be = be, .d = d, .metric = metric};
    float *Qd = be->alloc((size_t)G * d * sizeof(float));
    dd.Q = Qd;
    dd.xs = metric == DENSE_COSINE ? be->alloc((size_t)rows * sizeof(float)) : NULL;
    uint64_t *keys = hyp_malloc((size_t)G * opt.k * sizeof(uint64_t));   // (G, k)
    int rc = 0;
    double t0 = hyp_now();
    for (int b0 = 0; b0 < B; b0 += G) {
        int nb = B - b0 < G ? B - b0 : G;
        for (int b = 0; b < nb; b++) {
            const float *x = Q + (size_t)(b0 + b) * d;
            float *y = qh + (size_t)b * d;
            float ss = 0.0f;
            for (int i = 0; i < d; i++) ss += x[i] * x[i];
            float r = metric == DENSE_COSINE ? hyp_inv_norm(ss) : 1.0f;
            for (int i = 0; i < d; i++) y[i] = metric == DENSE_COSINE ? x[i] * r : x[i];
        }
        be->copy(Qd, qh, (size_t)nb * d * sizeof(float), COPY_H2D);
        dd.B = nb;
        DeviceScan sc = {.dev = dev, .resident = opt.resident, .B = nb, .k = opt.k, .lo = lo, .hi = hi,
                         .block_rows = rows, .skip = skip + b0, .progress = opt.progress, .what = "exhaustive (dense)",
                         .score = dense_dev_block, .user = &dd};
        if ((rc = device_scan(s, &sc, keys, NULL))) {
            for (int c = 0; c < b0; c++) search_result_free(&out[c]);
            break;
        }
        device_results(keys, nb, opt.k, span, 0, out + b0);
    }
    double dt = hyp_now() - t0;
    for (int b = 0; b < B && !rc; b++) out[b].seconds = dt / B;
    free(qh);
    free(keys);
    be->free(Qd);
    if (dd.xs) be->free(dd.xs);
    free(skip);
    return rc;
}
