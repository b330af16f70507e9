// dense.h: the streaming top-k scan over a document store on a device, shared by exhaustive
// q-net and dense search (exhaustive.c) and exact k-NN (graph.c). The documents stay resident
// on the device (docstore_device); per block a scorer fills a (B, n) score matrix there and
// topk_rows merges it into per-row running top-k keys, so only the final B*k keys reach the host.
#ifndef HYP_SEARCH_DENSE_H
#define HYP_SEARCH_DENSE_H
#include "search/store.h"
#include "kernels/kernels.h"
#include "model/hypencoder.h"   // QNet

// S (B, n) on the device = the scores of the block's rows X (n, dim) (fp32, on the device).
typedef void (*ScanScoreFn)(void *user, const float *X, long n, float *S);

typedef struct DeviceScan {
    Device dev;
    StoreDType resident;     // CUDA: STORE_F32 or STORE_BF16 (converted to fp32 per block)
    int B, k;                // score rows (queries), keys kept per row
    long lo, hi;             // documents [lo, hi)
    long block_rows;         // documents per block
    const int32_t *skip;     // host (B) or NULL: per row an index never kept (-1: none)
    bool check_bad;          // record each row's first non-finite score in bad
    bool progress;
    const char *what;        // progress label
    ScanScoreFn score;
    void *user;
} DeviceScan;

// keys (B, k) host: each row's k best keys (search_key order; unordered, 0 = empty slot).
// bad (B) host when check_bad: the smallest document index with a non-finite score, or
// INT32_MAX. 0 or -1 + error (store reads).
int device_scan(DocStore *s, const DeviceScan *sc, uint64_t *keys, int32_t *bad);

// A batch of q-nets' tensors as pointers on a device: the tensors themselves when they live
// there, else uploaded copies (own). Layout as QNet: W hidden (B, d, d), last (B, 1, d); b (B, d).
typedef struct QNetDevWeights {
    const Backend *be;
    const float *W[QNET_MAX_LAYERS + 1], *b[QNET_MAX_LAYERS];
    float *own[2 * QNET_MAX_LAYERS + 1];
    int nown;
} QNetDevWeights;
void qnet_dev_weights(QNetDevWeights *w, const QNet *q, Device dev);
void qnet_dev_weights_free(QNetDevWeights *w);

// A group of nb q-nets scoring document rows on a device (a ScanScoreFn): one batched GEMM per
// layer (z[b] = x[b] W_j[b]^T, x the shared rows for the first layer), the fused activation
// with the residual (qnet_act_fwd), and the fused last layer (qnet_out_dot) into S (nb, n).
typedef struct QNetDev {
    const Backend *be;
    int nb, layers, d;
    float eps;
    const float *W[QNET_MAX_LAYERS + 1], *b[QNET_MAX_LAYERS];   // the group's first query
    float *z[2];   // (nb, n, d) each (z[1] only for 2+ layers)
} QNetDev;
void qnet_dev_block(void *user, const float *X, long n, float *S);
// Points qd (nb queries from b0) into w.
void qnet_dev_group(QNetDev *qd, const QNetDevWeights *w, int b0, int nb);

#endif
