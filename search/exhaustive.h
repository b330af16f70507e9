// exhaustive.h: exact q-net search over every document, plus the pieces the graph search
// shares with it: q-nets on the host, a direct no-allocation q-net scorer, the top-k heap.
//
// Ranking order everywhere: score descending, then document index ascending, so a search
// gives the same hits whatever the block size, thread count or query batch. A NaN score
// ranks as -inf.
#ifndef HYP_SEARCH_EXHAUSTIVE_H
#define HYP_SEARCH_EXHAUSTIVE_H
#include "model/hypencoder.h"
#include "search/store.h"

// ---------------------------------------------------------------- top-k
typedef struct Hit { float score; int32_t idx; } Hit;

// A bounded min-heap: h[0] is the worst kept hit.
typedef struct TopK { int k, n; Hit *h; } TopK;
void topk_init(TopK *t, int k);
void topk_free(TopK *t);
void topk_clear(TopK *t);
// Keeps the k best hits under the ranking order (exact top-k). True when it entered.
bool topk_offer(TopK *t, float score, int32_t idx);
// The reference's heap rule (Algorithm 1): when full, replace the worst only if `score`
// is strictly greater than its score. True when it entered.
bool topk_offer_strict(TopK *t, float score, int32_t idx);
// The kept hits in ranking order into out (t->n entries); returns t->n. The heap is kept.
int topk_sorted(const TopK *t, Hit *out);
static inline bool hit_better(float sa, int32_t ia, float sb, int32_t ib) {
    return sa > sb || (sa == sb && ia < ib);
}
// Sort hits in ranking order (score desc, index asc).
void hits_sort(Hit *h, long n);

// ---------------------------------------------------------------- q-nets on the host
// Generated q-net weights copied to host memory: B queries, L hidden layers of width d.
typedef struct QNetHost {
    int B, layers, dim;
    float eps;
    float *W[QNET_MAX_LAYERS + 1];   // hidden (B, d, d) as (out, in); last (B, 1, d)
    float *b[QNET_MAX_LAYERS];       // (B, d)
    bool owned;
} QNetHost;
QNetHost qnet_host_from(const QNet *q);                 // copies (any device)
QNetHost qnet_host_slice(const QNetHost *q, int b0, int nb);   // a view of queries [b0, b0+nb)
void qnet_host_free(QNetHost *q);

// Scratch for the direct scorer (grown on demand; one per thread).
typedef struct QNetWork { long cap; int dim; float *a, *z; } QNetWork;
void qnet_work_free(QNetWork *w);
// scores (n) = query b's q-net on rows X (n, d): one GEMM per layer over all rows, then one
// fused pass per row (bias, ReLU, LayerNorm without affine, residual; the output dot product
// fused into the last layer). Equals qnet_score_shared up to fp32 rounding (test). Row passes
// use OpenMP; the GEMM uses the backend's (OpenBLAS) threads.
void qnet_host_score(const QNetHost *q, int b, const float *X, long n, float *scores, QNetWork *w);

// ---------------------------------------------------------------- exhaustive search
typedef struct ExhaustiveOptions {
    int k;                  // hits per query (default 1000)
    long block_rows;        // documents per block (default 16384)
    bool ignore_same_id;    // drop the document whose id equals the query id
    bool progress;          // docs/s on stderr
    long doc_begin, doc_end;  // search only documents [doc_begin, doc_end) (a rank's shard); 0, 0: all
    Device device;          // where scoring and top-k run (HYP_CPU default, zero-init)
    StoreDType resident;    // CUDA: storage of the device-resident documents (STORE_F32 default,
                            // STORE_BF16; scored in fp32 after conversion). Ignored on the CPU.
    int query_batch;        // CUDA: queries scored together per document block (0: as many as fit
                            // in ~1 GiB of activations, at most 64)
} ExhaustiveOptions;

typedef struct SearchResult {
    int n;                  // hits (<= k)
    Hit *hits;              // (n) ranking order, malloc'd
    long scored;            // documents scored by the q-net
    double seconds;         // wall time attributed to this query
    int iterations;         // graph search only
} SearchResult;
void search_result_free(SearchResult *r);

// B = q->B queries over every document of s, each block read once for all of them.
// qids (B) or NULL (needed for ignore_same_id). out (B). 0 or -1 + error (dims, reads).
int exhaustive_search(DocStore *s, const QNetHost *q, const char *const *qids, const ExhaustiveOptions *o,
                      SearchResult *out);

// Q-nets whose tensors live on any device (as hypencoder_queries produced them). On CUDA the
// documents are uploaded once per DocStore (docstore_device: cached in the store, reused by later
// calls and validation sweeps), scored by the fused q-net pass (one batched GEMM per layer for
// several queries per document block, qnet_act_fwd, qnet_out_dot) with a device top-k
// (topk_rows); only the k hits per query come back to the host. On the CPU: the same results as
// qnet_host_from + exhaustive_search. Same options, ranking order, sharding, ignore_same_id and
// non-finite refusal as exhaustive_search. out (q->B). 0 or -1 + error.
int exhaustive_search_qnet(DocStore *s, const QNet *q, const char *const *qids, const ExhaustiveOptions *o,
                           SearchResult *out);

// Dense retrieval (BE-Base, plain BERT): Q (B, d) host vectors. DENSE_DOT: score = q . x;
// DENSE_COSINE: score = (q / |q|) . x * (1 / |x|) (hyp_inv_norm: norms floored at 1e-12).
// Exact top-k by blocked GEMM + topk_rows on o->device (documents resident there on CUDA,
// as for exhaustive_search_qnet). NaN scores rank as -inf. out (B). 0 or -1 + error.
typedef enum { DENSE_DOT = 0, DENSE_COSINE = 1 } DenseMetric;
int exhaustive_search_dense(DocStore *s, const float *Q, int B, DenseMetric metric, const char *const *qids,
                            const ExhaustiveOptions *o, SearchResult *out);

// Device top-k keys (topk_rows): a (score, index) pair as one uint64 whose unsigned order is the
// ranking order (score desc, index asc; NaN as -inf); key 0 is an empty slot.
uint64_t search_key(float score, int32_t idx);
Hit search_key_hit(uint64_t key);
// The non-empty keys (k) as hits in ranking order into out; returns their count.
int search_keys_hits(const uint64_t *keys, int k, Hit *out);

#endif
