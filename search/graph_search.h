// graph_search.h: approximate q-net search over the neighbour graph.
//
// ALGO_PAPER is Algorithm 1 with the semantics of the authors' HypecoderGraphRetriever
// (shared/reference §6.4), not the paper's pseudo-code where they differ:
//   * entry points: one fixed seeded sample of C documents shared by all queries (Philox,
//     search_sample; the authors used CPython's random.sample with seed 43);
//   * explored = every document ever put in a candidate set (so each is scored once);
//   * per iteration: score the whole candidate set in one batched q-net call, rank it
//     (score descending, ties by smaller index), offer the top max(nCandidates, k) to a
//     bounded min-heap of size k that replaces its minimum only on a strictly greater
//     score, and expand (append unexplored neighbours, in rank and neighbour order) only
//     the top nCandidates;
//   * stop after maxIter iterations, when no candidates remain, or (early stopping, on by
//     default) when no document entered the heap in an iteration;
//   * return the heap sorted by score descending.
// With ignore_same_id the query's own document is scored and expanded but never offered
// to the heap.
//
// ALGO_HYPPLUS ("beyond the paper"): the same loop with
//   * per-query entry points: the q-net first scores the k-means centroids stored in the
//     graph file (hyp index --centroids N); the entry set takes `entry_points` documents
//     round-robin from the best scoring clusters that together hold probe_factor times as
//     many (each cluster's members nearest to its centroid first);
//   * best-first expansion: every scored document joins a pool, and each iteration expands
//     the best nCandidates not yet expanded from the whole pool, not only from the last
//     candidate set (the paper's §4.4.4 suspects good initial candidates that are never
//     expanded);
//   * termination on heap stability: stop after `patience` iterations in a row in which
//     fewer than max(1, stable_frac * k) documents entered the heap.
// Centroid evaluations are counted in `scored` (they cost a q-net evaluation each).
// Both use a visited bitmap (N bits per searcher).
#ifndef HYP_SEARCH_GRAPH_SEARCH_H
#define HYP_SEARCH_GRAPH_SEARCH_H
#include "search/exhaustive.h"
#include "search/graph.h"
#include "search/dense.h"

typedef enum { ALGO_PAPER = 0, ALGO_HYPPLUS = 1 } GraphAlgo;

typedef struct GraphSearchOptions {
    int k;                  // hits (default 1000)
    int entry_points;       // C (paper default 10000)
    int candidates;         // nCandidates (default 64)
    int max_iter;           // (default 16)
    bool no_early_stop;     // run all maxIter iterations (paper: "without early stopping")
    GraphAlgo algo;
    uint64_t seed;          // entry-point sample (default 43, the authors' seed value)
    double stable_frac;     // hyp+: an iteration is "stale" when fewer than max(1, stable_frac*k)
                            // documents entered the heap (default 0.002)
    int patience;           // hyp+: stop after this many stale iterations in a row (default 2)
    double probe_factor;    // hyp+: entry clusters hold probe_factor * entry_points documents (default 3)
} GraphSearchOptions;

// Presets of the paper (Table 4): "efficient1" (10000/64/16), "efficient2" (100000/328/20).
int graph_search_preset(const char *name, GraphSearchOptions *o);
GraphSearchOptions graph_search_defaults(void);

// The scorer: scores (n) of documents idx (n) for query q; and (hyp+) of raw vectors X (n, d).
typedef struct GraphScorer {
    void *user;
    void (*docs)(void *user, int q, const int32_t *idx, long n, float *out);
    void (*vecs)(void *user, int q, const float *X, long n, float *out);
} GraphScorer;

// The q-net scorer over a document store (gathers the rows, then qnet_host_score).
typedef struct QNetStoreScorer {
    DocStore *s;
    const QNetHost *q;
    QNetWork w;
    float *buf;
    long cap;
    int status;             // -1 after a read error (hyp_last_error)
} QNetStoreScorer;
GraphScorer qnet_store_scorer(QNetStoreScorer *ctx, DocStore *s, const QNetHost *q);
void qnet_store_scorer_free(QNetStoreScorer *ctx);

// The q-net scorer on a device: documents resident there (docstore_device, cached in the store),
// each frontier (candidate indices) uploaded, gathered and scored on the device in one batched
// pass; only its n scores come back (the heap and visited set stay on the host). q's tensors may
// live on any device (uploaded when they are not on dev). dev HYP_CPU: the host scorer over
// qnet_host_from(q). Read errors score -inf and make qnet_dev_scorer_status -1 (hyp_last_error).
typedef struct QNetDevScorer {
    DocStore *s;
    Device dev;
    StoreDType resident;
    QNetDevWeights w;       // the q-nets on dev
    QNetDev net;            // one query at a time (net.z grown to cap rows)
    int32_t *d_idx;         // (cap) frontier indices on dev
    float *d_x, *d_sc;      // (cap, dim) gathered rows, (cap) scores
    long cap;
    QNetHost host;          // HYP_CPU: qnet_host_from(q) and the host scorer
    QNetStoreScorer cpu;
    int status;
} QNetDevScorer;
GraphScorer qnet_store_scorer_dev(QNetDevScorer *ctx, DocStore *s, const QNet *q, Device dev, StoreDType resident);
int qnet_dev_scorer_status(const QNetDevScorer *ctx);   // 0, or -1 after a read error
void qnet_dev_scorer_free(QNetDevScorer *ctx);

typedef struct GraphSearcher GraphSearcher;
// NULL + error when options and graph disagree (hyp+ without centroids, N mismatch, ...).
GraphSearcher *graph_searcher_new(const Graph *g, long n_docs, int dim, const GraphSearchOptions *o);
void graph_searcher_free(GraphSearcher *gs);
// One query. skip: a document index never offered to the heap (ignore_same_id), or -1.
int graph_search(GraphSearcher *gs, const GraphScorer *sc, int q, long skip, SearchResult *out);
// The paper's shared entry points (after graph_searcher_new); count in *n.
const int32_t *graph_searcher_entries(const GraphSearcher *gs, long *n);

#endif
