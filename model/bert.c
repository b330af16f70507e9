// bert.c: BERT encoder as HuggingFace's BertModel computes it (post-LN, erf GELU,
// additive-mask attention, token type 0), built from autograd ops.
#include "model/bert.h"
#include "autograd/init.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

BertConfig bert_base_config(void) {
    return (BertConfig){.vocab_size = 30522, .hidden = 768, .layers = 12, .heads = 12, .ffn = 3072,
                        .max_positions = 512, .type_vocab_size = 2, .ln_eps = 1e-12, .pad_token_id = 0,
                        .dropout = 0.1f, .pooler = true, .act = UN_GELU};
}

static Tensor *reg(ParamSet *ps, const char *prefix, const char *name, int ndim, const int *shape) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return paramset_add(ps, full, ndim, shape);
}

void bert_register(Bert *b, ParamSet *ps, const char *prefix, const BertConfig *cfg) {
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    int H = cfg->hidden, F = cfg->ffn;
    HYP_CHECK(cfg->heads > 0 && H % cfg->heads == 0, "bert: hidden %d not divisible by heads %d", H, cfg->heads);
    b->word_emb = reg(ps, prefix, "embeddings.word_embeddings.weight", HYP_SHAPE(cfg->vocab_size, H));
    b->pos_emb = reg(ps, prefix, "embeddings.position_embeddings.weight", HYP_SHAPE(cfg->max_positions, H));
    b->type_emb = reg(ps, prefix, "embeddings.token_type_embeddings.weight", HYP_SHAPE(cfg->type_vocab_size, H));
    b->emb_ln_w = reg(ps, prefix, "embeddings.LayerNorm.weight", HYP_SHAPE(H));
    b->emb_ln_b = reg(ps, prefix, "embeddings.LayerNorm.bias", HYP_SHAPE(H));
    b->layer = hyp_calloc(cfg->layers, sizeof(BertLayer));
    for (int l = 0; l < cfg->layers; l++) {
        BertLayer *L = &b->layer[l];
        char p[160];
#define LAYER(field, suffix, ...) \
    (snprintf(p, sizeof p, "encoder.layer.%d.%s", l, suffix), L->field = reg(ps, prefix, p, __VA_ARGS__))
        LAYER(q_w, "attention.self.query.weight", HYP_SHAPE(H, H));
        LAYER(q_b, "attention.self.query.bias", HYP_SHAPE(H));
        LAYER(k_w, "attention.self.key.weight", HYP_SHAPE(H, H));
        LAYER(k_b, "attention.self.key.bias", HYP_SHAPE(H));
        LAYER(v_w, "attention.self.value.weight", HYP_SHAPE(H, H));
        LAYER(v_b, "attention.self.value.bias", HYP_SHAPE(H));
        LAYER(ao_w, "attention.output.dense.weight", HYP_SHAPE(H, H));
        LAYER(ao_b, "attention.output.dense.bias", HYP_SHAPE(H));
        LAYER(ao_ln_w, "attention.output.LayerNorm.weight", HYP_SHAPE(H));
        LAYER(ao_ln_b, "attention.output.LayerNorm.bias", HYP_SHAPE(H));
        LAYER(in_w, "intermediate.dense.weight", HYP_SHAPE(F, H));
        LAYER(in_b, "intermediate.dense.bias", HYP_SHAPE(F));
        LAYER(out_w, "output.dense.weight", HYP_SHAPE(H, F));
        LAYER(out_b, "output.dense.bias", HYP_SHAPE(H));
        LAYER(out_ln_w, "output.LayerNorm.weight", HYP_SHAPE(H));
        LAYER(out_ln_b, "output.LayerNorm.bias", HYP_SHAPE(H));
#undef LAYER
    }
    if (cfg->pooler) {
        b->pool_w = reg(ps, prefix, "pooler.dense.weight", HYP_SHAPE(H, H));
        b->pool_b = reg(ps, prefix, "pooler.dense.bias", HYP_SHAPE(H));
    }
}

static void init_const(Tensor *t, float v) { tensor_fill_f32(t, v); }

void bert_init(Bert *b, uint64_t seed) {
    uint64_t s = seed * 1000003u;
    float std = b->cfg.init_std > 0 ? b->cfg.init_std : 0.02f;
    tensor_init_normal(b->word_emb, std, s++);
    tensor_init_normal(b->pos_emb, std, s++);
    tensor_init_normal(b->type_emb, std, s++);
    init_const(b->emb_ln_w, 1.0f);
    init_const(b->emb_ln_b, 0.0f);
    for (int l = 0; l < b->cfg.layers; l++) {
        BertLayer *L = &b->layer[l];
        Tensor *mats[] = {L->q_w, L->k_w, L->v_w, L->ao_w, L->in_w, L->out_w};
        Tensor *zeros[] = {L->q_b, L->k_b, L->v_b, L->ao_b, L->in_b, L->out_b, L->ao_ln_b, L->out_ln_b};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) tensor_init_normal(mats[i], std, s++);
        for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++) init_const(zeros[i], 0.0f);
        init_const(L->ao_ln_w, 1.0f);
        init_const(L->out_ln_w, 1.0f);
    }
    if (b->pool_w) {
        tensor_init_normal(b->pool_w, std, s++);
        init_const(b->pool_b, 0.0f);
    }
}

void bert_free(Bert *b) {
    free(b->layer);
    b->layer = NULL;
}

// t's forward consumers have run and backward reads it only through bf16 GEMMs or as a bf16
// GEMM's (exact) output: under bf16 precision it is saved in bf16 (tensor_keep_bf16), as
// autocast saves it, unless the config asks for fp32. user: an output t's consumer produced;
// when that consumer was not recorded (no gradient wanted), nothing saves t.
static void keep_bf16(Ctx *c, const BertConfig *cfg, const Tensor *user, Tensor *t) {
    if (c->matmul_precision == HYP_MATMUL_BF16 && !cfg->saves_fp32 && user->requires_grad && t->data)
        tensor_keep_bf16(c, t);
}

// cls_only: the last layer computes the [CLS] row only. Its keys and values still see every
// token, but its query, attention output, FFN and LayerNorms are per-row, so the other rows
// (unused by CLS pooling) are skipped: about 5/6 of the last layer's FLOPs. Returns
// (B, T, H), or (B, H) with cls_only.
// types: int32 (B, T) token types, or NULL for type 0 everywhere.
static Tensor *bert_run(Ctx *c, const Bert *b, Tensor *ids, Tensor *types, Tensor *mask, bool cls_only) {
    const BertConfig *cfg = &b->cfg;
    HYP_CHECK(ids->ndim == 2 && ids->dtype == HYP_I32, "bert_forward: ids must be int32 (B, T)");
    HYP_CHECK(mask && same_shape(ids, mask) && mask->dtype == HYP_I32, "bert_forward: mask must be int32 (B, T) like ids");
    HYP_CHECK(!types || (same_shape(ids, types) && types->dtype == HYP_I32), "bert_forward: types must be int32 (B, T) like ids");
    int B = ids->shape[0], T = ids->shape[1];
    HYP_CHECK(T <= cfg->max_positions, "bert_forward: sequence length %d exceeds max positions %d", T, cfg->max_positions);
    float p = cfg->dropout, eps = (float)cfg->ln_eps;

    // Embeddings: word + position + token type 0, LayerNorm, dropout.
    // Position ids 0..T-1 and token types 0 are built on the device, in range by construction
    // (T <= max positions, the type table has a row 0): no host check, no upload.
    HYP_CHECK(b->pos_emb->shape[0] >= T && b->type_emb->shape[0] >= 1,
              "bert_forward: %d position rows for length %d, %d token type rows", b->pos_emb->shape[0], T,
              b->type_emb->shape[0]);
    Tensor *x = op_embedding_pad(c, b->word_emb, ids, cfg->pad_token_id);  // (B, T, H)
    bool checks = op_set_device_index_checks(false);
    x = op_add(c, x, op_embedding(c, b->pos_emb, op_arange(c, T, 0, 1)));    // + (T, H)
    if (!types) x = op_add(c, x, op_embedding(c, b->type_emb, op_arange(c, T, 0, 0)));   // + (T, H)
    op_set_device_index_checks(checks);
    if (types) x = op_add(c, x, op_embedding(c, b->type_emb, types));       // + (B, T, H), range-checked
    x = op_dropout(c, op_layernorm(c, x, b->emb_ln_w, b->emb_ln_b, eps), p);

    float scale = 1.0f / sqrtf((float)(cfg->hidden / cfg->heads));
    for (int l = 0; l < cfg->layers; l++) {
        const BertLayer *L = &b->layer[l];
        // Rows the layer outputs: all, or (B, 1, H) [CLS] rows in the last layer.
        Tensor *xq = cls_only && l == cfg->layers - 1 ? op_slice(c, x, 1, 0, 1) : x;
        Tensor *q = op_linear(c, xq, L->q_w, L->q_b);
        Tensor *k = op_linear(c, x, L->k_w, L->k_b);
        Tensor *v = op_linear(c, x, L->v_w, L->v_b);
        Tensor *ctxv = op_attention_dropout(c, q, k, v, mask, cfg->heads, scale, p);   // (B, Tq, H)
        keep_bf16(c, cfg, ctxv, q), keep_bf16(c, cfg, ctxv, k), keep_bf16(c, cfg, ctxv, v);
        Tensor *a = op_linear(c, ctxv, L->ao_w, L->ao_b);
        Tensor *x1 = op_dropout_add_layernorm(c, a, xq, L->ao_ln_w, L->ao_ln_b, eps, p);
        tensor_release(c, a);   // no backward reads a linear's output or add+LN's input (it saves the sum)
        keep_bf16(c, cfg, a, ctxv);   // read by a's and the attention's backward, both rounding it
        if (xq != x) keep_bf16(c, cfg, q, xq);
        keep_bf16(c, cfg, k, x);      // the layer's input: its residual use is done
        Tensor *z = op_linear(c, x1, L->in_w, L->in_b);
        Tensor *o;
        if (cfg->recompute_act) {
            o = op_act_linear(c, cfg->act, z, L->out_w, L->out_b);
        } else {
            Tensor *g = op_unary(c, cfg->act, z);   // act(z): only o's backward reads it
            o = op_linear(c, g, L->out_w, L->out_b);
            keep_bf16(c, cfg, o, g);
        }
        x = op_dropout_add_layernorm(c, o, x1, L->out_ln_w, L->out_ln_b, eps, p);
        tensor_release(c, o);
        keep_bf16(c, cfg, o, z);      // a bf16 GEMM's output: exact in bf16 whoever reads it
        keep_bf16(c, cfg, z, x1);
    }
    if (!cls_only) return x;
    if (cfg->layers == 0) x = op_slice(c, x, 1, 0, 1);
    return op_reshape(c, x, HYP_SHAPE(B, x->shape[2]));
}

Tensor *bert_forward(Ctx *c, const Bert *b, Tensor *ids, Tensor *mask) { return bert_run(c, b, ids, NULL, mask, false); }

Tensor *bert_forward_cls(Ctx *c, const Bert *b, Tensor *ids, Tensor *mask) { return bert_run(c, b, ids, NULL, mask, true); }

Tensor *bert_forward_cls_typed(Ctx *c, const Bert *b, Tensor *ids, Tensor *types, Tensor *mask) {
    return bert_run(c, b, ids, types, mask, true);
}

static const char *const POOL_NAMES[POOL_COUNT] = {"cls", "mean", "max"};

const char *pooling_name(Pooling p) { return (unsigned)p < POOL_COUNT ? POOL_NAMES[p] : "?"; }

int pooling_parse(const char *s, Pooling *out) {
    for (int i = 0; i < POOL_COUNT; i++)
        if (!strcmp(s, POOL_NAMES[i])) { *out = (Pooling)i; return 0; }
    return -1;
}

Tensor *bert_pool_cls(Ctx *c, Tensor *hidden) {
    Tensor *cls = op_slice(c, hidden, 1, 0, 1);                     // (B, 1, H)
    return op_reshape(c, cls, HYP_SHAPE(hidden->shape[0], hidden->shape[2]));
}

Tensor *bert_pool_mean(Ctx *c, Tensor *hidden, Tensor *mask) {
    int B = hidden->shape[0], T = hidden->shape[1], H = hidden->shape[2];
    // Weights mask / count as a (B, 1, T) constant; one batched matmul does the masked mean.
    int32_t *m = hyp_malloc((size_t)B * T * sizeof(int32_t));
    float *w = hyp_malloc((size_t)B * T * sizeof(float));
    tensor_to_host(mask, m);
    for (int i = 0; i < B; i++) {
        int cnt = 0;
        for (int t = 0; t < T; t++) cnt += m[i * T + t] != 0;
        for (int t = 0; t < T; t++) w[i * T + t] = cnt ? (m[i * T + t] != 0) / (float)cnt : 0.0f;
    }
    Tensor *wt = tensor_new(c, HYP_F32, HYP_SHAPE(B, 1, T));
    tensor_from_host(wt, w);
    free(m);
    free(w);
    return op_reshape(c, op_matmul(c, wt, hidden, false, false), HYP_SHAPE(B, H));
}

Tensor *bert_pool_max(Ctx *c, Tensor *hidden, Tensor *mask) {
    HYP_CHECK(!grad_enabled(c), "bert_pool_max: inference only (call it under no_grad)");
    int B = hidden->shape[0], T = hidden->shape[1], H = hidden->shape[2];
    float *h = hyp_malloc((size_t)B * T * H * sizeof(float));    // (B, T, H)
    int32_t *m = hyp_malloc((size_t)B * T * sizeof(int32_t));   // (B, T)
    float *o = hyp_malloc((size_t)B * H * sizeof(float));       // (B, H)
    tensor_to_host(hidden, h);
    tensor_to_host(mask, m);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < H; j++) {
            float best = -INFINITY;
            for (int t = 0; t < T; t++) {
                float v = m[i * T + t] ? h[((size_t)i * T + t) * H + j] : -1e9f;   // sentence-transformers' fill
                if (v > best) best = v;
            }
            o[(size_t)i * H + j] = best;
        }
    Tensor *out = tensor_new(c, HYP_F32, HYP_SHAPE(B, H));
    tensor_from_host(out, o);
    free(h);
    free(m);
    free(o);
    return out;
}

Tensor *bert_pool(Ctx *c, Tensor *hidden, Tensor *mask, Pooling p) {
    switch (p) {
    case POOL_MEAN: return bert_pool_mean(c, hidden, mask);
    case POOL_MAX: return bert_pool_max(c, hidden, mask);
    default: return bert_pool_cls(c, hidden);
    }
}

Tensor *bert_forward_pooled(Ctx *c, const Bert *b, Tensor *ids, Tensor *mask, Pooling p) {
    return p == POOL_CLS ? bert_forward_cls(c, b, ids, mask) : bert_pool(c, bert_forward(c, b, ids, mask), mask, p);
}

void l2_normalize_host(float *x, size_t n, int d) {
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * (size_t)d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)r[j] * r[j];
        float norm = (float)sqrt(ss);
        float inv = 1.0f / (norm > 1e-12f ? norm : 1e-12f);   // F.normalize: x / max(||x||, eps)
        for (int j = 0; j < d; j++) r[j] *= inv;
    }
}

Tensor *l2_normalize_rows(Ctx *c, Tensor *x) {
    HYP_CHECK(!grad_enabled(c), "l2_normalize_rows: inference only (call it under no_grad)");
    HYP_CHECK(x->ndim == 2 && x->dtype == HYP_F32, "l2_normalize_rows: x must be f32 (B, H)");
    size_t n = tensor_numel(x);
    float *h = hyp_malloc(n * sizeof(float));
    tensor_to_host(x, h);
    l2_normalize_host(h, (size_t)x->shape[0], x->shape[1]);
    Tensor *out = tensor_new(c, HYP_F32, HYP_SHAPE(x->shape[0], x->shape[1]));
    tensor_from_host(out, h);
    free(h);
    return out;
}
