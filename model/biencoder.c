#include "model/biencoder.h"
#include <string.h>

void biencoder_register(BiEncoder *m, ParamSet *ps, const BertConfig *cfg, bool shared_encoder) {
    memset(m, 0, sizeof *m);
    m->bert = *cfg;
    m->shared_encoder = shared_encoder;
    bert_register(&m->query_bert, ps, "query_encoder.transformer.", cfg);
    if (shared_encoder) {
        m->doc_bert = &m->query_bert;
    } else {
        bert_register(&m->doc_bert_own, ps, "passage_encoder.transformer.", cfg);
        m->doc_bert = &m->doc_bert_own;
    }
}

void biencoder_init(BiEncoder *m, uint64_t seed) {
    bert_init(&m->query_bert, seed);
    if (!m->shared_encoder) bert_init(&m->doc_bert_own, seed + 1);
}

void biencoder_free(BiEncoder *m) {
    bert_free(&m->query_bert);
    if (!m->shared_encoder) bert_free(&m->doc_bert_own);
}

Tensor *biencoder_queries(Ctx *c, const BiEncoder *m, Tensor *ids, Tensor *mask) {
    return bert_forward_pooled(c, &m->query_bert, ids, mask, m->pooling);
}

Tensor *biencoder_docs(Ctx *c, const BiEncoder *m, Tensor *ids, Tensor *mask) {
    return bert_forward_pooled(c, m->doc_bert, ids, mask, m->pooling);
}

Tensor *biencoder_score(Ctx *c, Tensor *q, Tensor *items) {
    HYP_CHECK(q->ndim == 2 && items->ndim == 3 && items->shape[0] == q->shape[0] && items->shape[2] == q->shape[1],
              "biencoder_score: q (B, d) and items (B, n, d) expected");
    int B = q->shape[0], d = q->shape[1], n = items->shape[1];
    Tensor *s = op_matmul(c, items, op_reshape(c, q, HYP_SHAPE(B, d, 1)), false, false);   // (B, n, 1)
    return op_reshape(c, s, HYP_SHAPE(B, n));
}

Tensor *biencoder_score_shared(Ctx *c, Tensor *q, Tensor *docs) {
    HYP_CHECK(q->ndim == 2 && docs->ndim == 2 && docs->shape[1] == q->shape[1],
              "biencoder_score_shared: q (B, d) and docs (N, d) expected");
    return op_matmul(c, q, docs, false, true);
}
