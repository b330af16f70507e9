// hypencoder.h: the Hypencoder (Killingback et al., SIGIR 2025) exactly as the authors'
// code computes it (shared/reference §1-3): BERT encodes queries and documents; a
// hyperhead turns the query's token states into the weights of a q-net that scores
// document vectors. Parameter names are the authors' state-dict keys.
#ifndef HYP_HYPENCODER_H
#define HYP_HYPENCODER_H
#include "model/bert.h"

#define QNET_MAX_LAYERS 16

// Divisor of the hyperhead attention scores. The released code divides by
// sqrt(out_dim) of the generated tensor (so the output layer and every bias are
// unscaled); the paper's Eq. 3 divides by sqrt(h).
typedef enum { HYPER_SCALE_OUT_DIM = 0, HYPER_SCALE_HIDDEN = 1 } HyperScale;

typedef struct HypencoderConfig {
    BertConfig bert;
    int qnet_layers;        // L hidden layers: the "L_layer" models (paper: 2, 4, 6, 8)
    bool shared_encoder;    // one BERT for queries and documents (as released)
    HyperScale scale;       // HYPER_SCALE_OUT_DIM (reference code) by default
    float ln_eps;           // hyperhead and q-net LayerNorm eps: 1e-5
    Pooling pooling;        // document vectors: POOL_CLS (the reference's) or POOL_MEAN (masked)
} HypencoderConfig;

HypencoderConfig hypencoder_config_default(int qnet_layers);   // bert-base, shared, reference

// The hyperhead's parameters. Weight matrix i (i < n_w = L+1) and bias vector j
// (j < n_b = L) each have their own attention; key/value projection k feeds matrix k
// (k < n_w) or bias k - n_w.
typedef struct HyperHead {
    int n_w, n_b, dim;
    Tensor *base_mat[QNET_MAX_LAYERS + 1];   // (1, out_i, dim)   hyper_base_matrices
    Tensor *w_query[QNET_MAX_LAYERS + 1];    // (1, out_i, dim)   weight_query_embeddings
    Tensor *w_proj_w[QNET_MAX_LAYERS + 1];   // (dim, dim)        weight_hyper_projection.i
    Tensor *w_proj_b[QNET_MAX_LAYERS + 1];   // (dim)
    Tensor *base_vec[QNET_MAX_LAYERS];       // (1, dim)          hyper_base_vectors
    Tensor *b_query[QNET_MAX_LAYERS];        // (1, 1, dim)       bias_query_embeddings
    Tensor *b_proj_w[QNET_MAX_LAYERS];       // (dim, dim)        bias_hyper_projection.j
    Tensor *b_proj_b[QNET_MAX_LAYERS];
    Tensor *key_w[2 * QNET_MAX_LAYERS + 1], *key_b[2 * QNET_MAX_LAYERS + 1];   // (dim, dim), (dim)
    Tensor *val_w[2 * QNET_MAX_LAYERS + 1], *val_b[2 * QNET_MAX_LAYERS + 1];
} HyperHead;

// A batch of generated q-nets (activations: gradients flow back into the hyperhead).
typedef struct QNet {
    int B, layers, dim;
    float eps;                        // LayerNorm eps of the hidden layers (1e-5)
    Tensor *W[QNET_MAX_LAYERS + 1];   // (B, out, in) as generated (the reference's W_i
                                      // transposed): hidden (B, dim, dim), last (B, 1, dim)
    Tensor *b[QNET_MAX_LAYERS];       // (B, dim)
} QNet;

typedef struct Hypencoder {
    HypencoderConfig cfg;
    Bert query_bert;
    Bert doc_bert_own;      // registered only when !shared_encoder
    Bert *doc_bert;         // &query_bert when shared
    HyperHead head;
} Hypencoder;

// Registers BERT as "query_encoder.transformer.*" (and "passage_encoder.transformer.*"
// when not shared) and the hyperhead as "query_encoder.*".
void hypencoder_register(Hypencoder *m, ParamSet *ps, const HypencoderConfig *cfg);
// The reference's initialisation distributions (shared/reference §1.2), from Philox(seed);
// BERT gets bert_init unless it is loaded from a pretrained model afterwards.
void hypencoder_init(Hypencoder *m, uint64_t seed);
void hypencoder_free(Hypencoder *m);

// The hyperhead on BERT's query token states H (B, T, dim) with mask int32 (B, T).
QNet hyperhead_forward(Ctx *c, const Hypencoder *m, Tensor *H, Tensor *mask);
// Query text -> q-nets: BERT then the hyperhead.
QNet hypencoder_queries(Ctx *c, const Hypencoder *m, Tensor *ids, Tensor *mask);
// Document text -> (B, dim) vectors: the final [CLS] state (or cfg.pooling), no projection or
// normalisation.
Tensor *hypencoder_docs(Ctx *c, const Hypencoder *m, Tensor *ids, Tensor *mask);

// Each query's q-net on its own documents: X (B, N, dim) -> scores (B, N).
Tensor *qnet_score(Ctx *c, const QNet *q, Tensor *X);
// Every query's q-net on the same documents: X (N, dim) -> scores (B, N)
// (in-batch negatives; exhaustive search).
Tensor *qnet_score_shared(Ctx *c, const QNet *q, Tensor *X);

#endif
