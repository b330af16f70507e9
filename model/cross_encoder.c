// cross_encoder.c: BertForSequenceClassification's forward (see cross_encoder.h).
#include "model/cross_encoder.h"
#include <math.h>
#include <stdlib.h>

void cross_encoder_register(CrossEncoder *m, ParamSet *ps, const BertConfig *cfg, int num_labels) {
    HYP_CHECK(cfg->pooler, "cross_encoder_register: the classifier needs the BERT pooler");
    HYP_CHECK(num_labels >= 1, "cross_encoder_register: num_labels %d", num_labels);
    bert_register(&m->bert, ps, "", cfg);
    m->num_labels = num_labels;
    m->cls_w = paramset_add(ps, "classifier.weight", HYP_SHAPE(num_labels, cfg->hidden));
    m->cls_b = paramset_add(ps, "classifier.bias", HYP_SHAPE(num_labels));
}

void cross_encoder_free(CrossEncoder *m) { bert_free(&m->bert); }

Tensor *cross_encoder_logits(Ctx *c, const CrossEncoder *m, Tensor *ids, Tensor *types, Tensor *mask) {
    HYP_CHECK(!grad_enabled(c), "cross_encoder_logits: inference only (call it under no_grad)");
    int B = ids->shape[0], H = m->bert.cfg.hidden, L = m->num_labels;
    Tensor *cls = bert_forward_cls_typed(c, &m->bert, ids, types, mask);          // (B, H)
    Tensor *pre = op_linear(c, cls, m->bert.pool_w, m->bert.pool_b);             // (B, H) before tanh
    float *p = hyp_malloc((size_t)B * H * sizeof(float));                        // (B, H)
    float *w = hyp_malloc((size_t)L * H * sizeof(float));                        // (L, H)
    float *bias = hyp_malloc((size_t)L * sizeof(float));                         // (L)
    float *o = hyp_malloc((size_t)B * L * sizeof(float));                        // (B, L)
    tensor_to_host(pre, p);
    tensor_to_host(m->cls_w, w);
    tensor_to_host(m->cls_b, bias);
    for (int i = 0; i < B; i++)
        for (int l = 0; l < L; l++) {
            double acc = bias[l];
            for (int j = 0; j < H; j++) acc += (double)w[(size_t)l * H + j] * tanhf(p[(size_t)i * H + j]);
            o[(size_t)i * L + l] = (float)acc;
        }
    Tensor *out = tensor_new(c, HYP_F32, HYP_SHAPE(B, L));
    tensor_from_host(out, o);
    free(p);
    free(w);
    free(bias);
    free(o);
    return out;
}
