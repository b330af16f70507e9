// driver.h: one search driver for every model kind and device, used by `hyp search`, the
// trainer's validation and any command that needs a model's top-k (a teacher's candidates).
//
//   Hypencoder   queries -> q-nets in batches -> exhaustive q-net search, or graph search
//                (Algorithm 1 / hyp+) when a graph is given
//   BE-Base      query-encoder vectors -> exact inner-product top-k over the store
//   plain BERT   its pooled vectors -> inner product, cosine when the model normalises
//
// Under several processes (shard.world > 1) each rank searches a contiguous slice of the
// documents and the per-query top-k lists are all-gathered and merged, so every rank ends
// with the hits one process would give (ties by document index). Graph search is not
// sharded. Hits are handed to `emit` in query order.
#ifndef HYP_SEARCH_DRIVER_H
#define HYP_SEARCH_DRIVER_H
#include "search/encode.h"
#include "search/graph_search.h"
#include "eval/trec.h"

// The sharded merge's collective, supplied by the caller (train/comm.h's comm_allgather in
// the commands), so search/ does not depend on the training layer.
typedef struct SearchShard {
    int rank, world;        // world <= 1: one process
    // recv (world * bytes) = every rank's send (bytes), in rank order. 0 or -1 + error.
    int (*allgather)(void *user, const void *send, size_t bytes, void *recv);
    void *user;
} SearchShard;

typedef struct SearchOptions {
    int k;                  // hits per query (default 1000)
    int batch;              // queries encoded and searched together (default 8: a q-net is L*d*d floats)
    int query_max_len;      // tokens incl. [CLS]/[SEP]; 0: the model's, else 64
    Device device;          // where documents are scored (the store is moved there once and kept)
    StoreDType resident;    // CUDA: the resident documents' storage (STORE_F32, or STORE_BF16)
    bool ignore_same_id;    // drop the document whose id equals the query id
    long block_rows;        // exhaustive: documents per block (0: 16384)
    bool progress;          // queries/s and ETA on stderr
    const Graph *graph;     // NULL: exhaustive; else graph search (Hypencoders only)
    GraphSearchOptions graph_opts;
    SearchShard shard;
} SearchOptions;
SearchOptions search_options_default(void);

// Hits of query q (in ranking order; idx are store rows). Nonzero stops the search (-1 + error).
typedef int (*SearchEmit)(void *user, int q, const Hit *hits, int n);

typedef struct SearchSummary {
    int queries;
    long documents;
    int dim;
    bool graph;                    // graph search was run
    double seconds;                // wall time of the whole search (encoding included)
    double latency_ms[3];          // per query, query encoding included: mean, p50, p99
    double search_latency_ms[3];   // the search alone
    double docs_scored_per_query;
    double scored_fraction;        // docs_scored_per_query / documents (1: exhaustive)
    double mean_iterations;        // graph search
    long entry_points;             // graph search: documents in the entry set (paper: min(C, N))
    bool entries_cover;            // graph search: the entry points are the whole corpus (exhaustive)
} SearchSummary;

// 0, or -1 + an error naming the model kind and what it supports: dimensions of model and
// store, a graph with a dense model, a sharded graph search, lengths past the positions.
int search_check(const SearchModel *sm, const DocStore *s, const SearchOptions *o);
// nq queries (ids and texts) against the store. sum may be NULL. 0 or -1 + error.
int search_run(const SearchModel *sm, const Tokenizer *tok, DocStore *s, const char *const *qids,
               const char *const *qtexts, int nq, const SearchOptions *o, SearchEmit emit, void *user,
               SearchSummary *sum);

// An emit that adds every hit to a TREC run under the query's id and the document's id.
typedef struct SearchRunSink { TrecRun *run; const char *const *qids; const DocStore *s; } SearchRunSink;
int search_emit_run(void *sink, int q, const Hit *hits, int n);

#endif
