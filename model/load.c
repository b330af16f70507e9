#include "model/load.h"
#include "model/model_file.h"
#include "autograd/h5io.h"
#include <stdlib.h>
#include <string.h>

int model_bert_config(const ModelConfig *mc, BertConfig *out, const char *label) {
    if (bert_config_validate(&mc->bert, label)) return -1;
    *out = mc->bert;
    return 0;
}

int model_hypencoder_config(const ModelConfig *mc, HypencoderConfig *out, const char *label) {
    HypencoderConfig c = hypencoder_config_default(1);
    if (model_bert_config(mc, &c.bert, label)) return -1;
    int n = mc->n_dims;
    if (n < 3 || mc->vector_dimensions[n - 1] != 1) {
        hyp_set_error("%s: vector_dimensions must be [d, ..., d, 1] with at least one hidden layer", label);
        return -1;
    }
    for (int i = 0; i < n - 1; i++)
        if (mc->vector_dimensions[i] != c.bert.hidden) {
            hyp_set_error("%s: vector_dimensions[%d] = %d, but the q-net width must equal the BERT hidden size %d",
                          label, i, mc->vector_dimensions[i], c.bert.hidden);
            return -1;
        }
    if (mc->activation_type[0] && strcmp(mc->activation_type, "relu")) {
        hyp_set_error("%s: q-net activation \"%s\" is not implemented (relu)", label, mc->activation_type);
        return -1;
    }
    // "mean" is our masked mean; the reference's TextEncoder mean divides an unmasked sum by the
    // mask count (shared/reference §2), which no released Hypencoder uses.
    if (mc->passage_pooling[0] && (pooling_parse(mc->passage_pooling, &c.pooling) || c.pooling == POOL_MAX)) {
        hyp_set_error("%s: passage pooling \"%s\" is not supported for the Hypencoder (cls or mean)", label, mc->passage_pooling);
        return -1;
    }
    c.qnet_layers = n - 2;
    c.shared_encoder = mc->shared_encoder;
    *out = c;
    return 0;
}

const Bert *model_doc_bert(const Model *m) {
    switch (m->mc.kind) {
    case MODEL_HYPENCODER: return m->hyp.doc_bert;
    case MODEL_BIENCODER: return m->be.doc_bert;
    case MODEL_CROSS_ENCODER: return &m->ce.bert;
    default: return &m->bert;
    }
}

const Bert *model_query_bert(const Model *m) {
    switch (m->mc.kind) {
    case MODEL_HYPENCODER: return &m->hyp.query_bert;
    case MODEL_BIENCODER: return &m->be.query_bert;
    case MODEL_CROSS_ENCODER: return &m->ce.bert;
    default: return &m->bert;
    }
}

Tensor *model_pool(Ctx *c, const Model *m, Tensor *H, Tensor *mask, Pooling p, bool normalize) {
    (void)m;
    Tensor *v = bert_pool(c, H, mask, p);
    return normalize ? l2_normalize_rows(c, v) : v;
}

Tensor *model_embed(Ctx *c, const Model *m, bool query, Tensor *ids, Tensor *mask) {
    const Bert *b = query ? model_query_bert(m) : model_doc_bert(m);
    Tensor *v = bert_forward_pooled(c, b, ids, mask, m->pooling);
    return m->normalize ? l2_normalize_rows(c, v) : v;
}

int model_check_finite(const ParamSet *ps, const char *label) {
    float *host = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int i = 0; i < ps->n && !rc; i++) {
        const Tensor *t = ps->params[i];
        if (t->dtype != HYP_F32) continue;
        size_t n = tensor_numel(t);
        const float *x = tensor_f32(t);
        if (t->device != HYP_CPU) {
            if (n > cap) host = hyp_realloc(host, (cap = n) * sizeof(float));
            tensor_to_host(t, host);
            x = host;
        }
        size_t count, k = hyp_find_nonfinite(x, n, &count);
        if (k == n) continue;
        hyp_set_error("%s: parameter %s has %zu non-finite value%s (first: %g at flat index %zu of %zu); "
                      "expected finite weights (a diverged or corrupted checkpoint?)",
                      label, t->name ? t->name : "?", count, count == 1 ? "" : "s", x[k], k, n);
        rc = -1;
    }
    free(host);
    return rc;
}

void model_free(Model *m) {
    if (!m) return;
    if (m->mc.kind == MODEL_HYPENCODER) hypencoder_free(&m->hyp);
    else if (m->mc.kind == MODEL_BIENCODER) biencoder_free(&m->be);
    else if (m->mc.kind == MODEL_CROSS_ENCODER) cross_encoder_free(&m->ce);
    else bert_free(&m->bert);
    paramset_free(m->ps);
    h5_free_strings(m->vocab, (size_t)m->n_vocab);
    free(m->path);
    free(m);
}

Model *model_load(const char *path, Device dev) {
    H5File *f = h5_open(path);
    if (!f) return NULL;
    bool ok = h5_exists(f, "/params") && h5_exists(f, "/config");
    // A training checkpoint (ckpt-*.h5) holds the model's JSON in /model_config (its /config is
    // the training config): it loads as the model it saved.
    const char *cfg_ds = ok && h5_exists(f, "/model_config") ? "/model_config" : "/config";
    bool pooler = ok && (h5_exists(f, "/params/pooler.dense.weight") ||
                         h5_exists(f, "/params/query_encoder.transformer.pooler.dense.weight"));
    char *cfg = ok ? h5_read_string(f, cfg_ds) : NULL;
    h5_close(f);
    if (!ok) {
        hyp_set_error("%s: not a model file (no /params or /config; made by `hyp import` or training?)", path);
        return NULL;
    }
    Model *m = hyp_calloc(1, sizeof *m);
    m->path = hyp_strdup(path);
    m->device = dev;
    if (!cfg || model_config_from_json(cfg, path, &m->mc)) { free(cfg); goto fail; }
    free(cfg);
    m->ps = paramset_new(dev);
    if (m->mc.kind == MODEL_HYPENCODER) {
        HypencoderConfig hc;
        if (model_hypencoder_config(&m->mc, &hc, path)) goto fail;
        hc.bert.pooler = pooler;
        hypencoder_register(&m->hyp, m->ps, &hc);
    } else if (m->mc.kind == MODEL_BIENCODER) {
        BertConfig bc;
        if (model_bert_config(&m->mc, &bc, path)) goto fail;
        bc.pooler = pooler;
        biencoder_register(&m->be, m->ps, &bc, m->mc.shared_encoder);
    } else if (m->mc.kind == MODEL_CROSS_ENCODER) {
        BertConfig bc;
        if (model_bert_config(&m->mc, &bc, path)) goto fail;
        if (!pooler) { hyp_set_error("%s: a cross-encoder needs /params/pooler.dense.weight (its classifier reads the pooled [CLS])", path); goto fail; }
        if (m->mc.num_labels != 1) {
            hyp_set_error("%s: a cross-encoder with %d labels: only one relevance logit (num_labels 1, the MS MARCO "
                          "cross-encoders) is supported", path, m->mc.num_labels);
            goto fail;
        }
        bc.pooler = true;
        cross_encoder_register(&m->ce, m->ps, &bc, m->mc.num_labels);
    } else {
        BertConfig bc;
        if (model_bert_config(&m->mc, &bc, path)) goto fail;
        bc.pooler = pooler;
        bert_register(&m->bert, m->ps, m->mc.bert_prefix, &bc);
    }
    paramset_finalize(m->ps);
    f = h5_open(path);
    if (!f || h5_load_params(f, "/params", m->ps, false)) { h5_close(f); goto fail; }
    h5_close(f);
    if (model_check_finite(m->ps, path)) goto fail;
    if (model_file_read_tokenizer(path, &m->vocab, &m->n_vocab, &m->lowercase, &m->query_max_len, &m->doc_max_len) ||
        model_file_read_pooling(path, &m->pooling, &m->normalize))
        goto fail;
    // The encoders pool as the file says (/pooling; for a Hypencoder without one, its config's).
    if (m->mc.kind == MODEL_HYPENCODER) {
        if (!model_file_has_pooling(path)) m->pooling = m->hyp.cfg.pooling;
        m->hyp.cfg.pooling = m->pooling;
    } else if (m->mc.kind == MODEL_BIENCODER) m->be.pooling = m->pooling;
    return m;
fail:
    model_free(m);
    return NULL;
}
