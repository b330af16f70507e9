// graph.h: the document neighbour graph for graph search (paper §3.6; reference §6.3).
//
// Exact builder: squared L2 k-NN by blocked GEMM, d(i,j) = |x_i|^2 + |x_j|^2 - 2 x_i.x_j,
// the document itself excluded by its global index in every block (the authors' script
// compares with the block-local row and so keeps "self" after the first batch), ties broken
// by the smaller index, rows sorted nearest first. Approximate builder: NN-descent (Dong et
// al., WWW 2011) with its recall@k against the exact graph measured on a sample of rows.
// Optional k-means centroids (for `hyp search --algo hyp+`): centroids, and each cluster's
// members sorted by distance to the centroid.
//
// File (HDF5): /neighbors (N, k) int32 (-1 pads rows when N-1 < k), attributes k, metric
// ("l2"), builder ("exact"|"nndescent"), recall (approximate builds); optional
// /centroids (C, d) f32, /cluster_offsets (C+1) int32, /cluster_members (N) int32.
#ifndef HYP_SEARCH_GRAPH_H
#define HYP_SEARCH_GRAPH_H
#include "search/store.h"

typedef struct Graph {
    long n;
    int k;
    int32_t *nbr;              // (n, k) nearest first, -1 for none
    // k-means (0 / NULL when absent)
    int n_centroids, dim;
    float *centroids;          // (C, dim)
    int32_t *cl_off;           // (C + 1)
    int32_t *cl_members;       // (n) cluster c: cl_members[cl_off[c] .. cl_off[c+1])
    char builder[16];          // "exact" or "nndescent"
    double recall;             // sampled recall@k of an approximate build (-1: not measured / exact)
} Graph;

typedef struct GraphBuildOptions {
    int k;                     // neighbours per document (default 100)
    long block_rows;           // rows per GEMM block (default 4096)
    bool progress;             // rows/s and ETA on stderr
    // NN-descent
    int iters;                 // at most (default 12)
    double rho;                // sample rate (default 0.5)
    int max_candidates;        // per node and iteration (default min(60, k))
    double delta;              // stop when updates < delta * n * k (default 0.001)
    uint64_t seed;
    Device device;             // exact k-NN (graph_build_exact): blocked GEMM + top-k there (HYP_CPU default)
} GraphBuildOptions;

int graph_build_exact(DocStore *s, const GraphBuildOptions *o, Graph *g);
int graph_build_nndescent(DocStore *s, const GraphBuildOptions *o, Graph *g);
// recall@k of g against exact k-NN for `sample` rows drawn with Philox(seed).
double graph_recall_sample(DocStore *s, const Graph *g, int sample, uint64_t seed);
// k-means (Lloyd) for `hyp search --algo hyp+`: each assignment is the exact k-NN with k = 1
// against the centroids (knn_exact_rows_dev, so on the GPU with device = HYP_CUDA); the means
// are updated on the host in double.
typedef struct {
    int centroids;       // C
    int iters;           // Lloyd iterations (<= 0: 10)
    long train_sample;   // rows the centroids are fitted on (<= 0: 256 * C)
    uint64_t seed;
    bool progress;       // a line per iteration on stderr
    Device device;       // where the assignments run (HYP_CPU default)
} KMeansOptions;
// Fits the centroids, then assigns every document; fills the centroid fields of g.
int graph_kmeans(DocStore *s, const KMeansOptions *o, Graph *g);

int graph_write(const char *path, const Graph *g);
// Reads and validates (indices in range, shapes). expect_n >= 0: the row count must match.
int graph_read(const char *path, long expect_n, Graph *g);
void graph_free(Graph *g);

// Exact squared-L2 k-NN of query rows Q (nq, d) against store rows (blocked GEMM). q_index
// (nq) are the queries' own indices in the store (excluded), or NULL. out (nq, k).
int knn_exact_rows(DocStore *s, const float *Q, const long *q_index, long nq, int k, long block_rows,
                   int32_t *out);

// knn_exact_rows on device dev (HYP_CUDA: store resident in fp32 there, GEMM + topk_rows on the
// device, only the k neighbours per query copied back). Same neighbours as the CPU (ties by index).
int knn_exact_rows_dev(DocStore *s, const float *Q, const long *q_index, long nq, int k, long block_rows, Device dev,
                       int32_t *out);

// Philox-based uniform integers in [0, n) for element i of stream seed.
uint64_t search_rand_u64(uint64_t seed, uint64_t stream, uint64_t i);
// `m` distinct indices in [0, n) (all of them when m >= n), a fixed seeded sample.
// out has min(m, n) entries; returns that count.
long search_sample(long n, long m, uint64_t seed, int32_t *out);

#endif
