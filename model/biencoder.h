// biencoder.h: the paper's BE-Base baseline: BERT [CLS] vectors, inner-product scores.
// Same encoders and parameter names as the Hypencoder, so the same training, search and
// evaluation pipeline runs both side by side.
#ifndef HYP_BIENCODER_H
#define HYP_BIENCODER_H
#include "model/bert.h"

typedef struct BiEncoder {
    BertConfig bert;
    bool shared_encoder;
    Pooling pooling;        // both sides: POOL_CLS (the reference BE-Base's) or POOL_MEAN (masked)
    Bert query_bert;
    Bert doc_bert_own;
    Bert *doc_bert;
} BiEncoder;

// "query_encoder.transformer.*" (+ "passage_encoder.transformer.*" when not shared).
void biencoder_register(BiEncoder *m, ParamSet *ps, const BertConfig *cfg, bool shared_encoder);
void biencoder_init(BiEncoder *m, uint64_t seed);
void biencoder_free(BiEncoder *m);
Tensor *biencoder_queries(Ctx *c, const BiEncoder *m, Tensor *ids, Tensor *mask);   // (B, d)
Tensor *biencoder_docs(Ctx *c, const BiEncoder *m, Tensor *ids, Tensor *mask);      // (N, d)
// Each query against its own items: q (B, d), items (B, n, d) -> (B, n).
Tensor *biencoder_score(Ctx *c, Tensor *q, Tensor *items);
// Every query against the same documents: q (B, d), docs (N, d) -> (B, N).
Tensor *biencoder_score_shared(Ctx *c, Tensor *q, Tensor *docs);

#endif
