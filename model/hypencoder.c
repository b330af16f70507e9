// hypencoder.c: hyperhead and q-net (shared/reference §1-2), built from autograd ops.
#include "model/hypencoder.h"
#include "autograd/init.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

HypencoderConfig hypencoder_config_default(int qnet_layers) {
    return (HypencoderConfig){.bert = bert_base_config(), .qnet_layers = qnet_layers,
                              .shared_encoder = true, .scale = HYPER_SCALE_OUT_DIM, .ln_eps = 1e-5f};
}

static Tensor *reg(ParamSet *ps, const char *fmt, int idx, const char *suffix, int ndim, const int *shape) {
    char name[256];
    int k = snprintf(name, sizeof name, "query_encoder.");
    k += snprintf(name + k, sizeof name - k, fmt, idx);
    if (suffix) snprintf(name + k, sizeof name - k, ".%s", suffix);
    return paramset_add(ps, name, ndim, shape);
}

void hypencoder_register(Hypencoder *m, ParamSet *ps, const HypencoderConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int L = cfg->qnet_layers, d = cfg->bert.hidden;
    HYP_CHECK(L >= 1 && L <= QNET_MAX_LAYERS, "hypencoder: q-net layers %d outside 1..%d", L, QNET_MAX_LAYERS);
    bert_register(&m->query_bert, ps, "query_encoder.transformer.", &cfg->bert);
    if (cfg->shared_encoder) {
        m->doc_bert = &m->query_bert;
    } else {
        bert_register(&m->doc_bert_own, ps, "passage_encoder.transformer.", &cfg->bert);
        m->doc_bert = &m->doc_bert_own;
    }
    HyperHead *h = &m->head;
    h->n_w = L + 1;
    h->n_b = L;
    h->dim = d;
    // Registration order follows the reference's state dict.
    for (int i = 0; i < h->n_w; i++) {
        int out = i < L ? d : 1;
        h->base_mat[i] = reg(ps, "hyper_base_matrices.%d", i, NULL, HYP_SHAPE(1, out, d));
    }
    for (int j = 0; j < h->n_b; j++) h->base_vec[j] = reg(ps, "hyper_base_vectors.%d", j, NULL, HYP_SHAPE(1, d));
    for (int i = 0; i < h->n_w; i++) {
        int out = i < L ? d : 1;
        h->w_query[i] = reg(ps, "weight_query_embeddings.%d", i, NULL, HYP_SHAPE(1, out, d));
    }
    for (int j = 0; j < h->n_b; j++) h->b_query[j] = reg(ps, "bias_query_embeddings.%d", j, NULL, HYP_SHAPE(1, 1, d));
    for (int i = 0; i < h->n_w; i++) {
        h->w_proj_w[i] = reg(ps, "weight_hyper_projection.%d", i, "weight", HYP_SHAPE(d, d));
        h->w_proj_b[i] = reg(ps, "weight_hyper_projection.%d", i, "bias", HYP_SHAPE(d));
    }
    for (int j = 0; j < h->n_b; j++) {
        h->b_proj_w[j] = reg(ps, "bias_hyper_projection.%d", j, "weight", HYP_SHAPE(d, d));
        h->b_proj_b[j] = reg(ps, "bias_hyper_projection.%d", j, "bias", HYP_SHAPE(d));
    }
    for (int k = 0; k < h->n_w + h->n_b; k++) {
        h->key_w[k] = reg(ps, "key_projections.%d", k, "weight", HYP_SHAPE(d, d));
        h->key_b[k] = reg(ps, "key_projections.%d", k, "bias", HYP_SHAPE(d));
    }
    for (int k = 0; k < h->n_w + h->n_b; k++) {
        h->val_w[k] = reg(ps, "value_projections.%d", k, "weight", HYP_SHAPE(d, d));
        h->val_b[k] = reg(ps, "value_projections.%d", k, "bias", HYP_SHAPE(d));
    }
}

// ---- initialisation (host, then upload; deterministic from Philox)
void hypencoder_init(Hypencoder *m, uint64_t seed) {
    bert_init(&m->query_bert, seed);
    if (!m->cfg.shared_encoder) bert_init(&m->doc_bert_own, seed + 1);
    HyperHead *h = &m->head;
    double d = h->dim;
    float lin_bound = (float)(1.0 / sqrt(d));   // torch.nn.Linear's default U(+-1/sqrt(fan_in))
    uint64_t s = (seed + 7) * 2654435761u;
    for (int i = 0; i < h->n_w; i++) {
        tensor_init_normal(h->base_mat[i], sqrt(2.0 / d), s++);
        tensor_init_normal(h->w_query[i], 10.0, s++);
        tensor_init_normal(h->w_proj_w[i], 1.0 / (d * d), s++);
        tensor_fill_f32(h->w_proj_b[i], 0.0f);
    }
    for (int j = 0; j < h->n_b; j++) {
        tensor_fill_f32(h->base_vec[j], 0.0f);
        tensor_init_normal(h->b_query[j], 10.0, s++);
        // bias_hyper_projection keeps PyTorch's default init in the reference
        tensor_init_uniform(h->b_proj_w[j], lin_bound, s++);
        tensor_init_uniform(h->b_proj_b[j], lin_bound, s++);
    }
    for (int k = 0; k < h->n_w + h->n_b; k++) {
        tensor_init_uniform(h->key_w[k], lin_bound, s++);
        tensor_init_uniform(h->val_w[k], lin_bound, s++);
        // Only the weight-matrix projections get zero biases ("mostly an oversight").
        if (k < h->n_w) {
            tensor_fill_f32(h->key_b[k], 0.0f);
            tensor_fill_f32(h->val_b[k], 0.0f);
        } else {
            tensor_init_uniform(h->key_b[k], lin_bound, s++);
            tensor_init_uniform(h->val_b[k], lin_bound, s++);
        }
    }
}

void hypencoder_free(Hypencoder *m) {
    bert_free(&m->query_bert);
    if (!m->cfg.shared_encoder) bert_free(&m->doc_bert_own);
}

// ---- hyperhead
// One generated tensor: softmax(Q K^T / s) V -> ReLU -> LN (no affine) -> Linear (+ base).
// Q (1, out, dim) learned; H (B, T, dim); returns (B, out, dim).
static Tensor *hyper_attend(Ctx *c, const Hypencoder *m, Tensor *H, Tensor *mask, Tensor *Q,
                            int k, Tensor *pw, Tensor *pb, Tensor *base) {
    const HyperHead *h = &m->head;
    int out = Q->shape[1], d = h->dim;
    Tensor *K = op_linear(c, H, h->key_w[k], h->key_b[k]);              // (B, T, d)
    Tensor *V = op_linear(c, H, h->val_w[k], h->val_b[k]);              // (B, T, d)
    Tensor *Q2 = op_reshape(c, Q, HYP_SHAPE(out, d));
    Tensor *S = op_matmul(c, Q2, K, false, true);                       // (B, out, T)
    double div = m->cfg.scale == HYPER_SCALE_OUT_DIM ? sqrt((double)out) : sqrt((double)d);
    if (div != 1.0) S = op_scale(c, S, (float)(1.0 / div));
    Tensor *A = op_softmax(c, S, mask);                                 // padded tokens get 0
    Tensor *C = op_matmul(c, A, V, false, false);                       // (B, out, d)
    Tensor *G = op_layernorm(c, op_relu(c, C), NULL, NULL, m->cfg.ln_eps);
    Tensor *W = op_linear(c, G, pw, pb);                                // (B, out, d)
    int bshape_n = base->ndim == 3 ? 2 : 1;   // base (1, out, d) or (1, d): add as a suffix
    Tensor *b2 = bshape_n == 2 ? op_reshape(c, base, HYP_SHAPE(out, d)) : op_reshape(c, base, HYP_SHAPE(d));
    return op_add(c, W, b2);
}

QNet hyperhead_forward(Ctx *c, const Hypencoder *m, Tensor *H, Tensor *mask) {
    const HyperHead *h = &m->head;
    HYP_CHECK(H->ndim == 3 && H->shape[2] == h->dim, "hyperhead: H must be (B, T, %d)", h->dim);
    QNet q = {.B = H->shape[0], .layers = h->n_b, .dim = h->dim, .eps = m->cfg.ln_eps};
    for (int i = 0; i < h->n_w; i++)
        q.W[i] = hyper_attend(c, m, H, mask, h->w_query[i], i, h->w_proj_w[i], h->w_proj_b[i], h->base_mat[i]);
    for (int j = 0; j < h->n_b; j++) {
        Tensor *b = hyper_attend(c, m, H, mask, h->b_query[j], h->n_w + j, h->b_proj_w[j], h->b_proj_b[j],
                                 h->base_vec[j]);                       // (B, 1, d)
        q.b[j] = op_reshape(c, b, HYP_SHAPE(q.B, h->dim));
    }
    return q;
}

QNet hypencoder_queries(Ctx *c, const Hypencoder *m, Tensor *ids, Tensor *mask) {
    return hyperhead_forward(c, m, bert_forward(c, &m->query_bert, ids, mask), mask);
}

Tensor *hypencoder_docs(Ctx *c, const Hypencoder *m, Tensor *ids, Tensor *mask) {
    return bert_forward_pooled(c, m->doc_bert, ids, mask, m->cfg.pooling);
}

// ---- q-net: x <- LN(ReLU(x W + b)) (+ x except after the last hidden layer); score = x w.
// x is (B, N, d), or (N, d) shared by every query until the first layer makes it (B, N, d).
static Tensor *qnet_run(Ctx *c, const QNet *q, Tensor *x) {
    float eps = q->eps;
    if (!grad_enabled(c)) {
        // Inference (search): one fused pass per layer after its GEMM instead of four ops.
        const Backend *be = backend_get(x->device);
        for (int j = 0; j < q->layers; j++) {
            Tensor *z = op_matmul(c, x, q->W[j], false, true);          // (B, N, d)
            int N = z->shape[1];
            bool shared = x->ndim == 2, last = j == q->layers - 1;
            KERNEL(be, qnet_act_fwd, "qnet")(z->data, z->data, q->b[j]->data, last ? NULL : x->data, shared,
                                             q->B, N, q->dim, eps);
            x = z;
        }
        Tensor *s = op_matmul(c, x, q->W[q->layers], false, true);
        return op_reshape(c, s, HYP_SHAPE(s->shape[0], s->shape[1]));
    }
    for (int j = 0; j < q->layers; j++) {
        Tensor *z = op_matmul(c, x, q->W[j], false, true);              // (B, N, d) = x W^T
        Tensor *hdn = op_layernorm(c, op_relu(c, op_add_rows(c, z, q->b[j])), NULL, NULL, eps);
        x = j < q->layers - 1 ? op_add(c, hdn, x) : hdn;                // residual; none on the last
    }
    Tensor *s = op_matmul(c, x, q->W[q->layers], false, true);          // (B, N, 1), no bias
    return op_reshape(c, s, HYP_SHAPE(s->shape[0], s->shape[1]));
}

Tensor *qnet_score(Ctx *c, const QNet *q, Tensor *X) {
    HYP_CHECK(X->ndim == 3 && X->shape[0] == q->B && X->shape[2] == q->dim,
              "qnet_score: documents must be (B=%d, N, %d)", q->B, q->dim);
    return qnet_run(c, q, X);
}

Tensor *qnet_score_shared(Ctx *c, const QNet *q, Tensor *X) {
    HYP_CHECK(X->ndim == 2 && X->shape[1] == q->dim, "qnet_score_shared: documents must be (N, %d)", q->dim);
    return qnet_run(c, q, X);
}
