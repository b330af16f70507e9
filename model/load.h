// load.h: a model file (`hyp import`, training's best.h5) as a ready model on a device.
#ifndef HYP_LOAD_H
#define HYP_LOAD_H
#include "model/hypencoder.h"
#include "model/biencoder.h"
#include "model/cross_encoder.h"
#include "model/hf_config.h"

typedef struct Model {
    ModelConfig mc;           // as stored in /config
    Device device;
    ParamSet *ps;             // every parameter, loaded from /params
    Bert bert;                // MODEL_BERT
    Hypencoder hyp;           // MODEL_HYPENCODER
    BiEncoder be;             // MODEL_BIENCODER
    CrossEncoder ce;          // MODEL_CROSS_ENCODER
    char **vocab;             // (n_vocab) from /tokenizer/vocab, or NULL
    int n_vocab;
    bool lowercase;
    int query_max_len, doc_max_len;
    Pooling pooling;          // the model's own pooling (/pooling; sentence-transformers' Pooling module)
    bool normalize;           // L2-normalised vectors (sentence-transformers' Normalize module)
    char *path;
} Model;

// The stored BERT config, checked (0 or -1 + error naming `label` and the key).
int model_bert_config(const ModelConfig *mc, BertConfig *out, const char *label);
int model_hypencoder_config(const ModelConfig *mc, HypencoderConfig *out, const char *label);

// NULL + "path: ..." when the file is not a model file, a parameter is missing, has
// the wrong shape or holds a NaN/inf, or the config asks for something not implemented
// (e.g. an activation).
Model *model_load(const char *path, Device dev);
void model_free(Model *m);
// 0 when every fp32 parameter of ps is finite, else -1 + "label: parameter NAME has K
// non-finite values (first: nan at flat index I of N) ..." (any device).
int model_check_finite(const ParamSet *ps, const char *label);

// The document encoder's BERT (the passage encoder of a Hypencoder, or the BERT itself).
const Bert *model_doc_bert(const Model *m);
// The query encoder's BERT (a Hypencoder's or BE-Base's query BERT, or the BERT itself).
const Bert *model_query_bert(const Model *m);

// One vector per text from BERT token states H (B, T, H) and mask (B, T): `p` pooling, then
// L2 normalisation when `normalize`. Callers pass m->pooling and m->normalize unless the user
// overrides them (--pooling). CLS and mean are differentiable; max and normalisation are
// inference only (no_grad). (B, H).
Tensor *model_pool(Ctx *c, const Model *m, Tensor *H, Tensor *mask, Pooling p, bool normalize);
// The model's own sentence vectors for a batch (no_grad): its document (or query) BERT, its
// pooling and normalisation; CLS pooling runs the cheaper [CLS]-only last layer. (B, H).
Tensor *model_embed(Ctx *c, const Model *m, bool query, Tensor *ids, Tensor *mask);

#endif
