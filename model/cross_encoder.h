// cross_encoder.h: a BERT cross-encoder (HF BertForSequenceClassification, the usual MS MARCO
// teacher layout): [CLS] query [SEP] passage [SEP] with token types 0/1, BERT, the pooler
// (tanh(dense([CLS]))) and a linear classifier; the relevance score is the single logit.
// Inference only: used as a teacher by `hyp label`, never trained here.
#ifndef HYP_CROSS_ENCODER_H
#define HYP_CROSS_ENCODER_H
#include "model/bert.h"

typedef struct CrossEncoder {
    Bert bert;            // registered without prefix ("embeddings.*", "encoder.*", "pooler.dense.*")
    Tensor *cls_w;        // (L, H) classifier.weight
    Tensor *cls_b;        // (L) classifier.bias
    int num_labels;       // L = 1 (one relevance logit)
} CrossEncoder;

// cfg->pooler must be true (the classifier reads the pooled [CLS]).
void cross_encoder_register(CrossEncoder *m, ParamSet *ps, const BertConfig *cfg, int num_labels);
void cross_encoder_free(CrossEncoder *m);
// ids, types, mask: int32 (B, T) pairs from tok_encode_pair_batch. Returns the logits (B, L)
// (host-computed tanh and classifier: call under no_grad).
Tensor *cross_encoder_logits(Ctx *c, const CrossEncoder *m, Tensor *ids, Tensor *types, Tensor *mask);

#endif
