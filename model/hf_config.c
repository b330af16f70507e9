// hf_config.c: HuggingFace config.json (BERT, HypencoderDualEncoder) -> ModelConfig.
#include "model/hf_config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

bool bert_config_known(const char *name, BertConfig *b) {
    static const char *base_uncased[] = {"google-bert/bert-base-uncased", "bert-base-uncased"};
    for (size_t i = 0; i < 2; i++)
        if (name && !strcmp(name, base_uncased[i])) { *b = bert_base_config(); b->pooler = false; return true; }
    return false;
}

int bert_config_validate(const BertConfig *b, const char *label) {
    struct { const char *k; int v, lo, hi; } f[] = {
        {"hidden_size", b->hidden, 1, 1 << 16}, {"num_hidden_layers", b->layers, 1, 1024},
        {"num_attention_heads", b->heads, 1, 4096}, {"intermediate_size", b->ffn, 1, 1 << 18},
        {"vocab_size", b->vocab_size, 1, 1 << 24}, {"max_position_embeddings", b->max_positions, 1, 1 << 20},
        {"type_vocab_size", b->type_vocab_size, 1, 1 << 16}, {"pad_token_id", b->pad_token_id, 0, 1 << 24},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi) { hyp_set_error("%s: %s: %d is out of range [%d, %d]", label, f[i].k, f[i].v, f[i].lo, f[i].hi); return -1; }
    if (b->hidden % b->heads) {
        hyp_set_error("%s: num_attention_heads: %d does not divide hidden_size %d", label, b->heads, b->hidden);
        return -1;
    }
    if (!(b->ln_eps > 0 && b->ln_eps < 1)) { hyp_set_error("%s: layer_norm_eps: %g out of range", label, b->ln_eps); return -1; }
    if ((unsigned)b->act >= UN_COUNT) { hyp_set_error("%s: hidden_act: not an activation (%d)", label, (int)b->act); return -1; }
    return 0;
}

// The first spelling of an op is the one hf_activation_name writes.
static const struct { const char *hf; UnaryOp op; } HF_ACTS[] = {
    {"gelu", UN_GELU}, {"relu", UN_RELU}, {"gelu_pytorch_tanh", UN_GELU_TANH}, {"gelu_new", UN_GELU_TANH},
    {"silu", UN_SILU}, {"swish", UN_SILU},
};

int hf_activation(const char *hidden_act, UnaryOp *out, const char *label) {
    if (!hidden_act[0]) { *out = UN_GELU; return 0; }
    for (size_t i = 0; i < sizeof HF_ACTS / sizeof *HF_ACTS; i++)
        if (!strcmp(hidden_act, HF_ACTS[i].hf)) { *out = HF_ACTS[i].op; return 0; }
    hyp_set_error("%s: hidden_act: unsupported activation \"%s\" (supported: gelu, relu, gelu_new, "
                  "gelu_pytorch_tanh, silu, swish)", label, hidden_act);
    return -1;
}

const char *hf_activation_name(UnaryOp op) {
    for (size_t i = 0; i < sizeof HF_ACTS / sizeof *HF_ACTS; i++)
        if (HF_ACTS[i].op == op) return HF_ACTS[i].hf;
    return "gelu";
}

#ifdef HYP_HAVE_JANSSON
// Optional int field: absent keeps *v; present must be an integer in int range.
static int get_int(json_t *o, const char *k, int *v, bool required, const char *label) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) {
        if (required) { hyp_set_error("%s: %s: missing", label, k); return -1; }
        return 0;
    }
    if (!json_is_integer(x) || json_integer_value(x) < INT32_MIN || json_integer_value(x) > INT32_MAX) {
        hyp_set_error("%s: %s: not an integer", label, k);
        return -1;
    }
    *v = (int)json_integer_value(x);
    return 0;
}
static int get_str(json_t *o, const char *k, char *dst, size_t cap, const char *label) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_string(x)) { hyp_set_error("%s: %s: not a string", label, k); return -1; }
    if (strlen(json_string_value(x)) >= cap) { hyp_set_error("%s: %s: too long", label, k); return -1; }
    snprintf(dst, cap, "%s", json_string_value(x));
    return 0;
}

// The sizes and activation come from the file; what HF's config does not carry here
// (dropout 0.1, no pooler: model_load decides from the weights) from bert_base_config.
static int parse_bert(json_t *o, const char *label, BertConfig *b) {
    *b = bert_base_config();
    b->pooler = false;
    char act[32] = "";
    if (get_int(o, "hidden_size", &b->hidden, true, label) || get_int(o, "num_hidden_layers", &b->layers, true, label) ||
        get_int(o, "num_attention_heads", &b->heads, true, label) ||
        get_int(o, "intermediate_size", &b->ffn, true, label) || get_int(o, "vocab_size", &b->vocab_size, true, label) ||
        get_int(o, "max_position_embeddings", &b->max_positions, false, label) ||
        get_int(o, "type_vocab_size", &b->type_vocab_size, false, label) || get_int(o, "pad_token_id", &b->pad_token_id, false, label) ||
        get_str(o, "hidden_act", act, sizeof act, label) || hf_activation(act, &b->act, label))
        return -1;
    json_t *eps = json_object_get(o, "layer_norm_eps");
    if (eps) {
        if (!json_is_number(eps)) { hyp_set_error("%s: layer_norm_eps: not a number", label); return -1; }
        b->ln_eps = json_number_value(eps);
    }
    json_t *pe = json_object_get(o, "position_embedding_type");
    if (pe && !json_is_null(pe) && (!json_is_string(pe) || strcmp(json_string_value(pe), "absolute"))) {
        hyp_set_error("%s: position_embedding_type: only \"absolute\" is supported", label);
        return -1;
    }
    return bert_config_validate(b, label);
}

static bool is_hypencoder(json_t *root) {
    json_t *ar = json_object_get(root, "architectures");
    size_t i;
    json_t *v;
    json_array_foreach(ar, i, v)
        if (json_is_string(v) && strstr(json_string_value(v), "Hypencoder")) return true;
    return json_object_get(root, "query_encoder_kwargs") != NULL;
}

static bool is_sequence_classifier(json_t *root) {
    json_t *ar = json_object_get(root, "architectures");
    size_t i;
    json_t *v;
    json_array_foreach(ar, i, v)
        if (json_is_string(v) && strstr(json_string_value(v), "ForSequenceClassification")) return true;
    return false;
}

static int parse_root(json_t *root, const char *label, ModelConfig *out) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(root)) { hyp_set_error("%s: not a JSON object", label); return -1; }
    if (!is_hypencoder(root)) {
        const char *mt = json_string_value(json_object_get(root, "model_type"));
        if (mt && strcmp(mt, "bert")) { hyp_set_error("%s: model_type: \"%s\" is not supported (bert or a Hypencoder)", label, mt); return -1; }
        out->kind = MODEL_BERT;
        if (is_sequence_classifier(root)) {
            out->kind = MODEL_CROSS_ENCODER;
            // HF PretrainedConfig: num_labels = len(id2label), 2 without one.
            json_t *id2 = json_object_get(root, "id2label");
            out->num_labels = json_is_object(id2) ? (int)json_object_size(id2) : 2;
            if (get_int(root, "num_labels", &out->num_labels, false, label)) return -1;
            if (out->num_labels < 1 || out->num_labels > 1 << 16) {
                hyp_set_error("%s: num_labels: %d is out of range", label, out->num_labels);
                return -1;
            }
        }
        return parse_bert(root, label, &out->bert);
    }
    out->kind = MODEL_HYPENCODER;
    snprintf(out->bert_prefix, sizeof out->bert_prefix, "query_encoder.transformer.");
    snprintf(out->activation_type, sizeof out->activation_type, "relu");
    snprintf(out->passage_pooling, sizeof out->passage_pooling, "cls");
    snprintf(out->model_name_or_path, sizeof out->model_name_or_path, "google-bert/bert-base-uncased");
    out->shared_encoder = true;
    json_t *q = json_object_get(root, "query_encoder_kwargs");
    if (!json_is_object(q)) { hyp_set_error("%s: query_encoder_kwargs: missing or not an object", label); return -1; }
    if (get_str(q, "model_name_or_path", out->model_name_or_path, sizeof out->model_name_or_path, label)) return -1;
    json_t *ck = json_object_get(q, "converter_kwargs");
    if (!json_is_object(ck)) { hyp_set_error("%s: query_encoder_kwargs.converter_kwargs: missing or not an object", label); return -1; }
    if (get_str(ck, "activation_type", out->activation_type, sizeof out->activation_type, label)) return -1;
    json_t *vd = json_object_get(ck, "vector_dimensions");
    if (!json_is_array(vd) || json_array_size(vd) < 2 || json_array_size(vd) > HYP_MAX_QNET_DIMS) {
        hyp_set_error("%s: query_encoder_kwargs.converter_kwargs.vector_dimensions: expected 2..%d integers", label, HYP_MAX_QNET_DIMS);
        return -1;
    }
    out->n_dims = (int)json_array_size(vd);
    for (int i = 0; i < out->n_dims; i++) {
        json_t *d = json_array_get(vd, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > (1 << 16)) {
            hyp_set_error("%s: vector_dimensions[%d]: not a positive integer", label, i);
            return -1;
        }
        out->vector_dimensions[i] = (int)json_integer_value(d);
    }
    json_t *se = json_object_get(root, "shared_encoder");
    if (se && !json_is_null(se)) {
        if (!json_is_boolean(se)) { hyp_set_error("%s: shared_encoder: not a boolean", label); return -1; }
        out->shared_encoder = json_is_true(se);
    }
    json_t *pk = json_object_get(root, "passage_encoder_kwargs");
    if (json_is_object(pk) && get_str(pk, "pooling_type", out->passage_pooling, sizeof out->passage_pooling, label)) return -1;
    if (strcmp(out->passage_pooling, "cls") && strcmp(out->passage_pooling, "mean")) {
        hyp_set_error("%s: passage_encoder_kwargs.pooling_type: \"%s\" (cls or mean)", label, out->passage_pooling);
        return -1;
    }
    if (!bert_config_known(out->model_name_or_path, &out->bert)) memset(&out->bert, 0, sizeof out->bert);
    return 0;
}

int hf_config_parse(const char *text, size_t len, const char *label, ModelConfig *out) {
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!root) { hyp_set_error("%s:%d: bad JSON: %s", label, e.line, e.text); return -1; }
    int rc = parse_root(root, label, out);
    json_decref(root);
    return rc;
}

int hf_config_read(const char *path, ModelConfig *out) {
    size_t n;
    char *s = hyp_read_text_file(path, 1 << 20, &n);
    if (!s) return -1;
    int rc = hf_config_parse(s, n, path, out);
    free(s);
    return rc;
}

int hf_bert_config_read(const char *path, BertConfig *b) {
    size_t n;
    char *s = hyp_read_text_file(path, 1 << 20, &n);
    if (!s) return -1;
    json_error_t e;
    json_t *root = json_loadb(s, n, JSON_REJECT_DUPLICATES, &e);
    free(s);
    if (!root) { hyp_set_error("%s:%d: bad JSON: %s", path, e.line, e.text); return -1; }
    int rc = json_is_object(root) ? parse_bert(root, path, b) : (hyp_set_error("%s: not a JSON object", path), -1);
    json_decref(root);
    return rc;
}

static json_t *bert_json(const BertConfig *b) {
    json_t *o = json_object();
    json_object_set_new(o, "hidden_size", json_integer(b->hidden));
    json_object_set_new(o, "num_hidden_layers", json_integer(b->layers));
    json_object_set_new(o, "num_attention_heads", json_integer(b->heads));
    json_object_set_new(o, "intermediate_size", json_integer(b->ffn));
    json_object_set_new(o, "vocab_size", json_integer(b->vocab_size));
    json_object_set_new(o, "max_position_embeddings", json_integer(b->max_positions));
    json_object_set_new(o, "type_vocab_size", json_integer(b->type_vocab_size));
    json_object_set_new(o, "pad_token_id", json_integer(b->pad_token_id));
    json_object_set_new(o, "layer_norm_eps", json_real(b->ln_eps));
    json_object_set_new(o, "hidden_act", json_string(hf_activation_name(b->act)));
    return o;
}

static const char *const KIND_NAMES[] = {"bert", "hypencoder", "biencoder", "cross_encoder"};

const char *model_kind_name(ModelKind k) { return (unsigned)k < 4 ? KIND_NAMES[k] : "?"; }

char *model_config_to_json(const ModelConfig *c) {
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(model_kind_name(c->kind)));
    if (c->kind == MODEL_CROSS_ENCODER) {
        json_t *h = json_object();
        json_object_set_new(h, "num_labels", json_integer(c->num_labels));
        json_object_set_new(o, "cross_encoder", h);
    }
    if (c->kind == MODEL_BIENCODER) {
        json_t *h = json_object();
        json_object_set_new(h, "shared_encoder", json_boolean(c->shared_encoder));
        json_object_set_new(o, "biencoder", h);
    }
    json_object_set_new(o, "bert_prefix", json_string(c->bert_prefix));
    json_object_set_new(o, "bert", bert_json(&c->bert));
    if (c->kind == MODEL_HYPENCODER) {
        json_t *h = json_object(), *vd = json_array();
        for (int i = 0; i < c->n_dims; i++) json_array_append_new(vd, json_integer(c->vector_dimensions[i]));
        json_object_set_new(h, "vector_dimensions", vd);
        json_object_set_new(h, "activation_type", json_string(c->activation_type));
        json_object_set_new(h, "shared_encoder", json_boolean(c->shared_encoder));
        json_object_set_new(h, "model_name_or_path", json_string(c->model_name_or_path));
        json_object_set_new(h, "passage_pooling", json_string(c->passage_pooling));
        json_object_set_new(o, "hypencoder", h);
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

int model_config_from_json(const char *text, const char *label, ModelConfig *c) {
    json_error_t e;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!root) { hyp_set_error("%s:%d: bad JSON: %s", label, e.line, e.text); return -1; }
    int rc = -1;
    memset(c, 0, sizeof *c);
    const char *kind = json_string_value(json_object_get(root, "kind"));
    int k = 0;
    while (kind && k < 4 && strcmp(kind, KIND_NAMES[k])) k++;
    if (!kind || k == 4) {
        hyp_set_error("%s: kind: expected \"bert\", \"hypencoder\", \"biencoder\" or \"cross_encoder\"", label);
        goto out;
    }
    c->kind = (ModelKind)k;
    if (c->kind == MODEL_CROSS_ENCODER) {
        json_t *ce = json_object_get(root, "cross_encoder");
        if (!json_is_object(ce) || get_int(ce, "num_labels", &c->num_labels, true, label)) {
            if (!json_is_object(ce)) hyp_set_error("%s: cross_encoder: missing", label);
            goto out;
        }
        if (c->num_labels < 1 || c->num_labels > 1 << 16) { hyp_set_error("%s: cross_encoder.num_labels: %d out of range", label, c->num_labels); goto out; }
    }
    if (c->kind == MODEL_BIENCODER) c->shared_encoder = json_is_true(json_object_get(json_object_get(root, "biencoder"), "shared_encoder"));
    json_t *b = json_object_get(root, "bert");
    if (!json_is_object(b) || parse_bert(b, label, &c->bert)) { if (!json_is_object(b)) hyp_set_error("%s: bert: missing", label); goto out; }
    if (get_str(root, "bert_prefix", c->bert_prefix, sizeof c->bert_prefix, label)) goto out;
    if (c->kind == MODEL_HYPENCODER) {
        json_t *h = json_object_get(root, "hypencoder"), *vd = json_object_get(h, "vector_dimensions");
        if (!json_is_object(h) || !json_is_array(vd) || json_array_size(vd) < 2 || json_array_size(vd) > HYP_MAX_QNET_DIMS) {
            hyp_set_error("%s: hypencoder.vector_dimensions: missing or bad", label);
            goto out;
        }
        c->n_dims = (int)json_array_size(vd);
        for (int i = 0; i < c->n_dims; i++) {
            json_t *d = json_array_get(vd, (size_t)i);
            if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > (1 << 16)) { hyp_set_error("%s: vector_dimensions[%d] bad", label, i); goto out; }
            c->vector_dimensions[i] = (int)json_integer_value(d);
        }
        if (get_str(h, "activation_type", c->activation_type, sizeof c->activation_type, label) ||
            get_str(h, "model_name_or_path", c->model_name_or_path, sizeof c->model_name_or_path, label) ||
            get_str(h, "passage_pooling", c->passage_pooling, sizeof c->passage_pooling, label)) goto out;
        c->shared_encoder = json_is_true(json_object_get(h, "shared_encoder"));
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

char *model_config_to_hf_bert_json(const ModelConfig *c) {
    json_t *o = bert_json(&c->bert), *ar = json_array();
    json_array_append_new(ar, json_string("BertModel"));
    json_object_set_new(o, "architectures", ar);
    json_object_set_new(o, "model_type", json_string("bert"));
    json_object_set_new(o, "attention_probs_dropout_prob", json_real(0.1));
    json_object_set_new(o, "hidden_dropout_prob", json_real(0.1));
    json_object_set_new(o, "initializer_range", json_real(0.02));
    json_object_set_new(o, "position_embedding_type", json_string("absolute"));
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}
#else
static int no_json(const char *label) { hyp_set_error("%s: reading JSON needs jansson (install libjansson-dev and rebuild)", label); return -1; }
int hf_config_parse(const char *text, size_t len, const char *label, ModelConfig *out) { (void)text; (void)len; (void)out; return no_json(label); }
int hf_config_read(const char *path, ModelConfig *out) { (void)out; return no_json(path); }
int hf_bert_config_read(const char *path, BertConfig *b) { (void)b; return no_json(path); }
char *model_config_to_json(const ModelConfig *c) { (void)c; no_json("config"); return NULL; }
int model_config_from_json(const char *text, const char *label, ModelConfig *c) { (void)text; (void)c; return no_json(label); }
char *model_config_to_hf_bert_json(const ModelConfig *c) { (void)c; no_json("config"); return NULL; }
#endif
