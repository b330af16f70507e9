// bert.h: the BERT encoder (HuggingFace BertModel semantics) on the autograd ops.
#ifndef HYP_BERT_H
#define HYP_BERT_H
#include "autograd/ops.h"

// The one description of a BERT: HF config.json (model/hf_config.c), the training INI
// (train/config.c: config_bert) and model files all read into and write from this.
typedef struct BertConfig {
    int vocab_size;          // 30522 for bert-base-uncased
    int hidden;              // 768
    int layers;              // 12
    int heads;               // 12
    int ffn;                 // 3072 (intermediate_size)
    int max_positions;       // 512
    int type_vocab_size;     // 2
    double ln_eps;           // 1e-12 (HF layer_norm_eps; the ops take it as float)
    int pad_token_id;        // 0: its word-embedding row gets no gradient (HF padding_idx)
    float dropout;           // hidden and attention-probability dropout, 0.1
    bool pooler;             // register pooler.dense (present in checkpoints; unused by Hypencoder)
    float init_std;          // bert_init's normal std (HF initializer_range); 0 means 0.02
    UnaryOp act;             // feed-forward activation (HF hidden_act); UN_GELU (zero) for BERT
    bool recompute_act;      // train.recompute = act: op_act_linear, the activation not stored
    bool saves_fp32;         // under bf16 GEMMs keep saved activations in fp32 (default: bf16, lossless)
} BertConfig;

BertConfig bert_base_config(void);

typedef struct BertLayer {
    Tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;   // (H, H), (H)
    Tensor *ao_w, *ao_b, *ao_ln_w, *ao_ln_b;      // attention.output.{dense, LayerNorm}
    Tensor *in_w, *in_b;                          // intermediate.dense (F, H), (F)
    Tensor *out_w, *out_b, *out_ln_w, *out_ln_b;  // output.{dense (H, F), LayerNorm}
} BertLayer;

typedef struct Bert {
    BertConfig cfg;
    Tensor *word_emb, *pos_emb, *type_emb;        // (V, H), (P, H), (T, H)
    Tensor *emb_ln_w, *emb_ln_b;
    BertLayer *layer;                             // cfg.layers entries
    Tensor *pool_w, *pool_b;                      // NULL without pooler
} Bert;

// Register every parameter under `prefix` + HF name (e.g. prefix "query_encoder.transformer."
// gives "query_encoder.transformer.encoder.layer.0.attention.self.query.weight").
void bert_register(Bert *b, ParamSet *ps, const char *prefix, const BertConfig *cfg);
// Initialise like HF (_init_weights): normal(0, 0.02) matrices and embeddings, zero biases,
// LayerNorm weight 1 / bias 0. Deterministic from seed (Philox). Call after finalize.
void bert_init(Bert *b, uint64_t seed);
void bert_free(Bert *b);

// ids, mask: int32 (B, T) (mask 1 = token, 0 = padding); token types are all 0 as in the
// reference. Returns last_hidden_state (B, T, H). Dropout follows c->training.
Tensor *bert_forward(Ctx *c, const Bert *b, Tensor *ids, Tensor *mask);
// bert_pool_cls(bert_forward(...)) without the last layer's other rows: (B, H).
Tensor *bert_forward_cls(Ctx *c, const Bert *b, Tensor *ids, Tensor *mask);
// The same with token types (int32 (B, T), each < type_vocab_size; NULL: all 0), for
// sentence pairs ([CLS] a [SEP] b [SEP], types 0 then 1) as a cross-encoder reads them.
Tensor *bert_forward_cls_typed(Ctx *c, const Bert *b, Tensor *ids, Tensor *types, Tensor *mask);

// How token states become one vector (sentence-transformers' Pooling module modes).
// Stored in model files by value: never renumber.
typedef enum { POOL_CLS = 0, POOL_MEAN = 1, POOL_MAX = 2 } Pooling;
#define POOL_COUNT 3
const char *pooling_name(Pooling p);                    // "cls", "mean", "max"
int pooling_parse(const char *s, Pooling *out);         // 0, or -1 for another name

// Pooling used for retrieval:
Tensor *bert_pool_cls(Ctx *c, Tensor *hidden);                 // (B, H) = hidden[:, 0]   (differentiable)
Tensor *bert_pool_mean(Ctx *c, Tensor *hidden, Tensor *mask);  // masked mean (B, H)      (differentiable)
// Masked max over tokens (B, H): padding counts as -1e9, as sentence-transformers does.
// Inference only (no_grad): computed on the host, so it has no backward.
Tensor *bert_pool_max(Ctx *c, Tensor *hidden, Tensor *mask);
// One of the three.
Tensor *bert_pool(Ctx *c, Tensor *hidden, Tensor *mask, Pooling p);
// BERT then pooling p: (B, H). CLS runs the cheaper [CLS]-only last layer (bert_forward_cls).
Tensor *bert_forward_pooled(Ctx *c, const Bert *b, Tensor *ids, Tensor *mask, Pooling p);
// Rows divided by their L2 norm (at least 1e-12: torch.nn.functional.normalize), (B, H).
// Inference only (no_grad), on the host.
Tensor *l2_normalize_rows(Ctx *c, Tensor *x);
// The same on host vectors in place: x (n, d).
void l2_normalize_host(float *x, size_t n, int d);

#endif
