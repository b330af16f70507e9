// graph_search.c: Algorithm 1 (reference semantics) and the hyp+ variant (graph_search.h).
#include "search/graph_search.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

GraphSearchOptions graph_search_defaults(void) {
    return (GraphSearchOptions){.k = 1000, .entry_points = 10000, .candidates = 64, .max_iter = 16,
                                .algo = ALGO_PAPER, .seed = 43, .stable_frac = 0.002,
                                .probe_factor = 3.0, .patience = 2};
}

int graph_search_preset(const char *name, GraphSearchOptions *o) {
    if (!strcmp(name, "efficient1")) { o->entry_points = 10000; o->candidates = 64; o->max_iter = 16; }
    else if (!strcmp(name, "efficient2")) { o->entry_points = 100000; o->candidates = 328; o->max_iter = 20; }
    else { hyp_set_error("unknown preset '%s' (efficient1 or efficient2)", name); return -1; }
    return 0;
}

// ---------------------------------------------------------------- q-net scorer over a store
static void store_docs(void *user, int q, const int32_t *idx, long n, float *out) {
    QNetStoreScorer *c = user;
    int d = docstore_dim(c->s);
    if (n > c->cap) {
        free(c->buf);
        c->cap = n;
        c->buf = hyp_malloc((size_t)n * d * sizeof(float));
    }
    if (docstore_gather(c->s, idx, n, c->buf)) {
        c->status = -1;
        for (long i = 0; i < n; i++) out[i] = -INFINITY;
        return;
    }
    qnet_host_score(c->q, q, c->buf, n, out, &c->w);
}
static void store_vecs(void *user, int q, const float *X, long n, float *out) {
    QNetStoreScorer *c = user;
    qnet_host_score(c->q, q, X, n, out, &c->w);
}
GraphScorer qnet_store_scorer(QNetStoreScorer *ctx, DocStore *s, const QNetHost *q) {
    memset(ctx, 0, sizeof *ctx);
    ctx->s = s;
    ctx->q = q;
    return (GraphScorer){.user = ctx, .docs = store_docs, .vecs = store_vecs};
}
void qnet_store_scorer_free(QNetStoreScorer *ctx) {
    qnet_work_free(&ctx->w);
    free(ctx->buf);
    memset(ctx, 0, sizeof *ctx);
}

// ---------------------------------------------------------------- q-net scorer on a device
static void dev_release(QNetDevScorer *c) {
    const Backend *be = c->w.be;
    if (!c->cap) return;
    be->free(c->d_idx);
    be->free(c->d_x);
    be->free(c->d_sc);
    be->free(c->net.z[0]);
    if (c->net.z[1]) be->free(c->net.z[1]);
    c->cap = 0;
}
static void dev_reserve(QNetDevScorer *c, long n) {
    if (n <= c->cap) return;
    const Backend *be = c->w.be;
    size_t d = (size_t)docstore_dim(c->s);
    dev_release(c);
    c->d_idx = be->alloc((size_t)n * sizeof(int32_t));
    c->d_x = be->alloc((size_t)n * d * sizeof(float));
    c->d_sc = be->alloc((size_t)n * sizeof(float));
    c->net.z[0] = be->alloc((size_t)n * d * sizeof(float));
    c->net.z[1] = c->net.layers > 1 ? be->alloc((size_t)n * d * sizeof(float)) : NULL;
    c->cap = n;
}

// Scores (n) to the host of query q over rows X (n, dim) already on the device.
static void dev_score_rows(QNetDevScorer *c, int q, const float *X, long n, float *out) {
    qnet_dev_group(&c->net, &c->w, q, 1);
    qnet_dev_block(&c->net, X, n, c->d_sc);
    c->w.be->copy(out, c->d_sc, (size_t)n * sizeof(float), COPY_D2H);
}

static void dev_docs(void *user, int q, const int32_t *idx, long n, float *out) {
    QNetDevScorer *c = user;
    if (n <= 0) return;
    const Backend *be = c->w.be;
    int d = docstore_dim(c->s);
    const void *docs = docstore_device(c->s, c->dev, c->resident);
    if (!docs) {
        c->status = -1;
        for (long i = 0; i < n; i++) out[i] = -INFINITY;
        return;
    }
    dev_reserve(c, n);
    be->copy(c->d_idx, idx, (size_t)n * sizeof(int32_t), COPY_H2D);
    if (c->resident == STORE_BF16) KERNEL(be, gather_bf16_rows, "gather_bf16_rows")(c->d_x, docs, c->d_idx, n, d);
    else be->embedding_fwd(c->d_x, docs, c->d_idx, n, d);   // a gather of fp32 rows
    dev_score_rows(c, q, c->d_x, n, out);
}

static void dev_vecs(void *user, int q, const float *X, long n, float *out) {
    QNetDevScorer *c = user;
    if (n <= 0) return;
    dev_reserve(c, n);
    c->w.be->copy(c->d_x, X, (size_t)n * docstore_dim(c->s) * sizeof(float), COPY_H2D);
    dev_score_rows(c, q, c->d_x, n, out);
}

GraphScorer qnet_store_scorer_dev(QNetDevScorer *ctx, DocStore *s, const QNet *q, Device dev, StoreDType resident) {
    memset(ctx, 0, sizeof *ctx);
    ctx->s = s;
    ctx->dev = dev;
    ctx->resident = resident;
    if (dev == HYP_CPU) {
        ctx->host = qnet_host_from(q);
        return qnet_store_scorer(&ctx->cpu, s, &ctx->host);
    }
    HYP_CHECK(q->dim == docstore_dim(s), "%s: documents have dimension %d but the q-net expects %d", docstore_path(s),
              docstore_dim(s), q->dim);
    qnet_dev_weights(&ctx->w, q, dev);
    ctx->net = (QNetDev){.be = ctx->w.be, .nb = 1, .layers = q->layers, .d = q->dim, .eps = q->eps};
    return (GraphScorer){.user = ctx, .docs = dev_docs, .vecs = dev_vecs};
}

int qnet_dev_scorer_status(const QNetDevScorer *ctx) { return ctx->dev == HYP_CPU ? ctx->cpu.status : ctx->status; }

void qnet_dev_scorer_free(QNetDevScorer *ctx) {
    if (ctx->dev == HYP_CPU) {
        qnet_store_scorer_free(&ctx->cpu);
        qnet_host_free(&ctx->host);
    } else {
        dev_release(ctx);
        qnet_dev_weights_free(&ctx->w);
    }
    memset(ctx, 0, sizeof *ctx);
}

// ---------------------------------------------------------------- searcher
struct GraphSearcher {
    const Graph *g;
    long N;
    int dim;
    GraphSearchOptions o;
    int32_t *entries;   // paper: the shared sample
    long n_entries;
    uint64_t *visited;  // (N/64 + 1) bits
    int32_t *cand, *next;   // (N) each: a document enters a candidate set at most once
    float *scores;      // (max(N, C))
    TopK rank, heap;
    Hit *ranked;        // (max(nCandidates, k))
    Hit *pool;          // hyp+: max-heap of scored, not yet expanded documents (N)
    long npool;
};

// hyp+'s pool: a max-heap in ranking order (best at the root).
static void pool_push(GraphSearcher *gs, Hit x) {
    Hit *h = gs->pool;
    long i = gs->npool++;
    while (i > 0) {
        long p = (i - 1) / 2;
        if (!hit_better(x.score, x.idx, h[p].score, h[p].idx)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}
static Hit pool_pop(GraphSearcher *gs) {
    Hit *h = gs->pool, top = h[0], x = h[--gs->npool];
    long n = gs->npool, i = 0;
    for (;;) {
        long c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hit_better(h[c + 1].score, h[c + 1].idx, h[c].score, h[c].idx)) c++;
        if (!hit_better(h[c].score, h[c].idx, x.score, x.idx)) break;
        h[i] = h[c];
        i = c;
    }
    if (n > 0) h[i] = x;
    return top;
}

GraphSearcher *graph_searcher_new(const Graph *g, long n_docs, int dim, const GraphSearchOptions *o) {
    GraphSearchOptions opt = o ? *o : graph_search_defaults();
    if (g->n != n_docs) {
        hyp_set_error("the graph has %ld rows but the document store has %ld documents (built for another corpus?)", g->n,
                      n_docs);
        return NULL;
    }
    if (opt.k <= 0 || opt.entry_points <= 0 || opt.candidates <= 0 || opt.max_iter <= 0) {
        hyp_set_error("graph search: k, entry points, candidates and max-iter must be positive");
        return NULL;
    }
    if (opt.probe_factor <= 0) opt.probe_factor = 3.0;
    if (opt.patience <= 0) opt.patience = 2;
    if (opt.algo == ALGO_HYPPLUS) {
        if (g->n_centroids <= 0) {
            hyp_set_error("--algo hyp+ needs k-means centroids in the graph file (rebuild with hyp index --centroids N)");
            return NULL;
        }
        if (g->dim != dim) {
            hyp_set_error("the graph's centroids have dimension %d but the documents have %d", g->dim, dim);
            return NULL;
        }
    }
    GraphSearcher *gs = hyp_calloc(1, sizeof *gs);
    gs->g = g;
    gs->N = n_docs;
    gs->dim = dim;
    gs->o = opt;
    long N1 = n_docs ? n_docs : 1;
    gs->visited = hyp_calloc((size_t)(n_docs / 64 + 1), sizeof(uint64_t));
    gs->cand = hyp_malloc((size_t)N1 * sizeof(int32_t));
    gs->next = hyp_malloc((size_t)N1 * sizeof(int32_t));
    long ns = N1 > g->n_centroids ? N1 : g->n_centroids;
    gs->scores = hyp_malloc((size_t)ns * sizeof(float));
    int kk = opt.candidates > opt.k ? opt.candidates : opt.k;
    topk_init(&gs->rank, kk);
    topk_init(&gs->heap, opt.k);
    gs->ranked = hyp_malloc((size_t)(ns > kk ? ns : kk) * sizeof(Hit));
    if (opt.algo == ALGO_HYPPLUS) gs->pool = hyp_malloc((size_t)N1 * sizeof(Hit));
    if (opt.algo == ALGO_PAPER) {
        gs->entries = hyp_malloc((size_t)(opt.entry_points < N1 ? opt.entry_points : N1) * sizeof(int32_t));
        gs->n_entries = search_sample(n_docs, opt.entry_points, opt.seed, gs->entries);
    }
    return gs;
}

void graph_searcher_free(GraphSearcher *gs) {
    if (!gs) return;
    free(gs->entries);
    free(gs->visited);
    free(gs->cand);
    free(gs->next);
    free(gs->scores);
    free(gs->ranked);
    free(gs->pool);
    topk_free(&gs->rank);
    topk_free(&gs->heap);
    free(gs);
}

const int32_t *graph_searcher_entries(const GraphSearcher *gs, long *n) {
    *n = gs->n_entries;
    return gs->entries;
}

static inline bool test_set(uint64_t *bm, int32_t i) {
    uint64_t bit = 1ull << (i & 63), *w = &bm[i >> 6];
    if (*w & bit) return true;
    *w |= bit;
    return false;
}

int graph_search(GraphSearcher *gs, const GraphScorer *sc, int q, long skip, SearchResult *out) {
    const Graph *g = gs->g;
    const GraphSearchOptions *o = &gs->o;
    double t0 = hyp_now();
    memset(gs->visited, 0, (size_t)(gs->N / 64 + 1) * sizeof(uint64_t));
    topk_clear(&gs->heap);
    long nc = 0, scored = 0;
    if (o->algo == ALGO_PAPER) {
        for (long i = 0; i < gs->n_entries; i++)
            if (!test_set(gs->visited, gs->entries[i])) gs->cand[nc++] = gs->entries[i];
    } else {
        // Score the centroids, then take whole clusters (nearest members first) in order.
        int C = g->n_centroids;
        sc->vecs(sc->user, q, g->centroids, C, gs->scores);
        scored += C;
        for (int c = 0; c < C; c++) gs->ranked[c] = (Hit){gs->scores[c] != gs->scores[c] ? -INFINITY : gs->scores[c], c};
        hits_sort(gs->ranked, C);
        long want = o->entry_points < gs->N ? o->entry_points : gs->N;
        // The best clusters holding probe_factor * entry_points documents, taken round-robin
        // (each cluster's nearest members first): the entries cover every promising region.
        int P = 0;
        long tot = 0;
        while (P < C && tot < o->probe_factor * want) { int c = gs->ranked[P].idx; tot += g->cl_off[c + 1] - g->cl_off[c]; P++; }
        for (int32_t rank = 0; nc < want; rank++) {
            bool any = false;
            for (int r = 0; r < P && nc < want; r++) {
                int c = gs->ranked[r].idx;
                if (g->cl_off[c] + rank < g->cl_off[c + 1]) {
                    any = true;
                    int32_t m = g->cl_members[g->cl_off[c] + rank];
                    if (!test_set(gs->visited, m)) gs->cand[nc++] = m;
                }
            }
            if (!any) break;
        }
    }
    long need = o->no_early_stop ? 0 : o->algo == ALGO_PAPER ? 1 : (long)ceil(o->stable_frac * o->k);
    if (!o->no_early_stop && need < 1) need = 1;
    int iter = 0, stale = 0;
    gs->npool = 0;
    while (o->algo == ALGO_HYPPLUS && nc > 0 && iter < o->max_iter) {
        // Best-first: every scored document joins the pool; each iteration expands the best
        // nCandidates not yet expanded from the whole pool (not only from this iteration).
        sc->docs(sc->user, q, gs->cand, nc, gs->scores);
        scored += nc;
        long inserted = 0;
        for (long i = 0; i < nc; i++) {
            float v = gs->scores[i] != gs->scores[i] ? -INFINITY : gs->scores[i];
            if (gs->cand[i] != skip) inserted += topk_offer_strict(&gs->heap, v, gs->cand[i]);
            pool_push(gs, (Hit){v, gs->cand[i]});
        }
        iter++;
        stale = inserted < need ? stale + 1 : 0;
        if (!o->no_early_stop && stale >= o->patience) break;
        long nn = 0;
        for (int e = 0; e < o->candidates && gs->npool > 0; e++) {
            Hit x = pool_pop(gs);
            const int32_t *nb = g->nbr + (size_t)x.idx * g->k;
            for (int j = 0; j < g->k; j++)
                if (nb[j] >= 0 && !test_set(gs->visited, nb[j])) gs->next[nn++] = nb[j];
        }
        int32_t *t = gs->cand;
        gs->cand = gs->next;
        gs->next = t;
        nc = nn;
    }
    while (o->algo == ALGO_PAPER && nc > 0 && iter < o->max_iter) {
        sc->docs(sc->user, q, gs->cand, nc, gs->scores);   // one batched q-net call
        scored += nc;
        long kk = o->candidates > o->k ? o->candidates : o->k;
        if (kk > nc) kk = nc;
        topk_clear(&gs->rank);
        gs->rank.k = (int)kk;
        for (long i = 0; i < nc; i++) {
            TopK *t = &gs->rank;
            if (t->n == t->k && gs->scores[i] < t->h[0].score) continue;
            topk_offer(t, gs->scores[i], gs->cand[i]);
        }
        int nr = topk_sorted(&gs->rank, gs->ranked);
        long nn = 0, inserted = 0;
        for (int i = 0; i < nr; i++) {
            int32_t d = gs->ranked[i].idx;
            if (d != skip) inserted += topk_offer_strict(&gs->heap, gs->ranked[i].score, d);
            if (i < o->candidates) {
                const int32_t *nb = g->nbr + (size_t)d * g->k;
                for (int j = 0; j < g->k; j++)
                    if (nb[j] >= 0 && !test_set(gs->visited, nb[j])) gs->next[nn++] = nb[j];
            }
        }
        iter++;
        if (!o->no_early_stop && inserted < need) break;
        int32_t *t = gs->cand;
        gs->cand = gs->next;
        gs->next = t;
        nc = nn;
    }
    out->hits = hyp_malloc((size_t)(gs->heap.n ? gs->heap.n : 1) * sizeof(Hit));
    out->n = topk_sorted(&gs->heap, out->hits);
    out->scored = scored;
    out->iterations = iter;
    out->seconds = hyp_now() - t0;
    return 0;
}
