// model_import.c: `hyp import` (see model_import.h).
#include "model/model_import.h"
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

#define BERT_HYP_PREFIX "query_encoder.transformer."
#define PASSAGE_PREFIX "passage_encoder.transformer."
#define HEAD_PREFIX "query_encoder."

__attribute__((format(printf, 2, 3)))
static void note(FILE *f, const char *fmt, ...) {
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "hyp import: ");
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
}

static bool starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }
static bool ends(const char *s, const char *p) { size_t a = strlen(s), b = strlen(p); return a >= b && !strcmp(s + a - b, p); }

// A list of names for messages: "a, b, c, ... (N in all)".
typedef struct { char buf[1024]; int n; } NameList;
static void nl_add(NameList *l, const char *name) {
    if (l->n < 8) {
        size_t u = strlen(l->buf);
        snprintf(l->buf + u, sizeof l->buf - u, "%s%s", l->n ? ", " : "", name);
    }
    l->n++;
}
static const char *nl_str(NameList *l) {
    if (l->n > 8) {
        size_t u = strlen(l->buf);
        snprintf(l->buf + u, sizeof l->buf - u, ", ... (%d in all)", l->n);
    }
    return l->buf;
}

// ------------------------------------------------------------------ expected keys
typedef struct { char name[256]; int ndim; int shape[HYP_MAX_DIMS]; bool optional; } Expect;
typedef struct { Expect *v; int n, cap; } ExpectList;

static void expect(ExpectList *l, bool optional, int ndim, const int *shape, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void expect(ExpectList *l, bool optional, int ndim, const int *shape, const char *fmt, ...) {
    if (l->n == l->cap) { l->cap = l->cap ? 2 * l->cap : 64; l->v = hyp_realloc(l->v, (size_t)l->cap * sizeof(Expect)); }
    Expect *e = &l->v[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof(int));
    e->optional = optional;
}
#define S(...) (int[]){__VA_ARGS__}

static void expect_bert(ExpectList *l, const char *P, const BertConfig *b) {
    int H = b->hidden, I = b->ffn;
    expect(l, false, 2, S(b->vocab_size, H), "%sembeddings.word_embeddings.weight", P);
    expect(l, false, 2, S(b->max_positions, H), "%sembeddings.position_embeddings.weight", P);
    expect(l, false, 2, S(b->type_vocab_size, H), "%sembeddings.token_type_embeddings.weight", P);
    expect(l, false, 1, S(H), "%sembeddings.LayerNorm.weight", P);
    expect(l, false, 1, S(H), "%sembeddings.LayerNorm.bias", P);
    for (int i = 0; i < b->layers; i++) {
        static const char *qkv[] = {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"};
        for (int k = 0; k < 4; k++) {
            expect(l, false, 2, S(H, H), "%sencoder.layer.%d.%s.weight", P, i, qkv[k]);
            expect(l, false, 1, S(H), "%sencoder.layer.%d.%s.bias", P, i, qkv[k]);
        }
        expect(l, false, 1, S(H), "%sencoder.layer.%d.attention.output.LayerNorm.weight", P, i);
        expect(l, false, 1, S(H), "%sencoder.layer.%d.attention.output.LayerNorm.bias", P, i);
        expect(l, false, 2, S(I, H), "%sencoder.layer.%d.intermediate.dense.weight", P, i);
        expect(l, false, 1, S(I), "%sencoder.layer.%d.intermediate.dense.bias", P, i);
        expect(l, false, 2, S(H, I), "%sencoder.layer.%d.output.dense.weight", P, i);
        expect(l, false, 1, S(H), "%sencoder.layer.%d.output.dense.bias", P, i);
        expect(l, false, 1, S(H), "%sencoder.layer.%d.output.LayerNorm.weight", P, i);
        expect(l, false, 1, S(H), "%sencoder.layer.%d.output.LayerNorm.bias", P, i);
    }
    expect(l, true, 2, S(H, H), "%spooler.dense.weight", P);     // BertModel(add_pooling_layer=False) has none
    expect(l, true, 1, S(H), "%spooler.dense.bias", P);
}

// Hyperhead (reference §1.2/§4): vector_dimensions d[0..L+1], n_w = L+1 weights, n_b = L biases.
static void expect_hyperhead(ExpectList *l, const ModelConfig *c) {
    const int *d = c->vector_dimensions, H = c->bert.hidden, nw = c->n_dims - 1, nb = c->n_dims - 2;
    const char *P = HEAD_PREFIX;
    for (int i = 0; i < nw; i++) {
        expect(l, false, 3, S(1, d[i + 1], d[i]), "%shyper_base_matrices.%d", P, i);
        expect(l, false, 3, S(1, d[i + 1], d[i]), "%sweight_query_embeddings.%d", P, i);
        expect(l, false, 2, S(d[i], d[i]), "%sweight_hyper_projection.%d.weight", P, i);
        expect(l, false, 1, S(d[i]), "%sweight_hyper_projection.%d.bias", P, i);
    }
    for (int j = 0; j < nb; j++) {
        expect(l, false, 2, S(1, d[j + 1]), "%shyper_base_vectors.%d", P, j);
        expect(l, false, 3, S(1, 1, d[j + 1]), "%sbias_query_embeddings.%d", P, j);
        expect(l, false, 2, S(d[j + 1], d[j + 1]), "%sbias_hyper_projection.%d.weight", P, j);
        expect(l, false, 1, S(d[j + 1]), "%sbias_hyper_projection.%d.bias", P, j);
    }
    for (int k = 0; k < nw + nb; k++) {
        int in = k < nw ? d[k] : d[k - nw + 1];
        expect(l, false, 2, S(in, H), "%skey_projections.%d.weight", P, k);
        expect(l, false, 1, S(in), "%skey_projections.%d.bias", P, k);
        expect(l, false, 2, S(in, H), "%svalue_projections.%d.weight", P, k);
        expect(l, false, 1, S(in), "%svalue_projections.%d.bias", P, k);
    }
}

static void fmt_shape(char *buf, size_t cap, int nd, const int *sh) {
    size_t u = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && u < cap; i++) u += (size_t)snprintf(buf + u, cap - u, "%s%d", i ? ", " : "", sh[i]);
    if (u < cap) snprintf(buf + u, cap - u, "]");
}

// ------------------------------------------------------------------ inference from shapes
static const NamedTensor *getf(const WeightSet *ws, const char *P, const char *k) {
    char n[300];
    snprintf(n, sizeof n, "%s%s", P, k);
    return weights_get(ws, n);
}

static int infer_bert(const WeightSet *ws, const char *P, BertConfig *b, const char *label, FILE *notes) {
    const NamedTensor *we = getf(ws, P, "embeddings.word_embeddings.weight"), *pe = getf(ws, P, "embeddings.position_embeddings.weight"),
                      *te = getf(ws, P, "embeddings.token_type_embeddings.weight"),
                      *it = getf(ws, P, "encoder.layer.0.intermediate.dense.weight");
    if (!we || we->ndim != 2 || !pe || pe->ndim != 2 || !te || te->ndim != 2 || !it || it->ndim != 2) {
        hyp_set_error("%s: %sembeddings.*: cannot infer the BERT sizes from the weights (embeddings or layer 0 missing); pass --config", label, P);
        return -1;
    }
    *b = bert_base_config();
    b->pooler = false;
    b->vocab_size = we->shape[0];
    b->hidden = we->shape[1];
    b->max_positions = pe->shape[0];
    b->type_vocab_size = te->shape[0];
    b->ffn = it->shape[0];
    b->layers = 0;
    for (;; b->layers++) {
        char k[96];
        snprintf(k, sizeof k, "encoder.layer.%d.attention.self.query.weight", b->layers);
        if (!getf(ws, P, k)) break;
    }
    if (b->hidden % 64) {
        hyp_set_error("%s: num_attention_heads cannot be inferred from the weights (hidden %d is not a multiple of 64); pass %s",
                      label, b->hidden, *P ? "--bert-config (the backbone's config.json)" : "--config");
        return -1;
    }
    b->heads = b->hidden / 64;
    note(notes, "note: no BERT config: sizes from the weights (hidden %d, %d layers, FFN %d, vocab %d); assuming %d heads "
         "(hidden/64), eps 1e-12, gelu: pass %s if that is wrong",
         b->hidden, b->layers, b->ffn, b->vocab_size, b->heads,
         *P ? "--bert-config" : "--config");
    return bert_config_validate(b, label);
}

static int infer_hyperhead(const WeightSet *ws, ModelConfig *c, const char *label) {
    int nw = 0;
    for (;; nw++) {
        char k[64];
        snprintf(k, sizeof k, "hyper_base_matrices.%d", nw);
        const NamedTensor *t = getf(ws, HEAD_PREFIX, k);
        if (!t) break;
        if (t->ndim != 3 || nw + 2 > HYP_MAX_QNET_DIMS) { hyp_set_error("%s: %s%s: unexpected shape", label, HEAD_PREFIX, k); return -1; }
        if (nw && t->shape[2] != c->vector_dimensions[nw]) { hyp_set_error("%s: %s%s: input size %d does not follow the previous layer's %d", label, HEAD_PREFIX, k, t->shape[2], c->vector_dimensions[nw]); return -1; }
        c->vector_dimensions[nw] = t->shape[2];
        c->vector_dimensions[nw + 1] = t->shape[1];
    }
    if (nw < 1) { hyp_set_error("%s: %shyper_base_matrices.0: missing (no config.json to give the q-net sizes)", label, HEAD_PREFIX); return -1; }
    c->n_dims = nw + 1;
    return 0;
}

// ------------------------------------------------------------------ normalisation
static int strip_prefix(WeightSet *ws, const char *pre, const char *label, FILE *notes) {
    int n = 0;
    for (int i = 0; i < ws->n; i++) {
        if (!starts(ws->v[i].name, pre)) continue;
        char *nn = hyp_strdup(ws->v[i].name + strlen(pre));
        if (weights_index(ws, nn) >= 0) {
            hyp_set_error("%s: %s: both %s and %s%s are present", label, ws->v[i].name, nn, pre, nn);
            free(nn);
            return -1;
        }
        weights_rename(ws, ws->v[i].name, nn);
        free(nn);
        n++;
    }
    if (n) note(notes, "note: stripped the \"%s\" prefix from %d tensors", pre, n);
    return 0;
}

static void drop_matching(WeightSet *ws, bool (*pred)(const char *), const char *why, FILE *notes) {
    NameList l = {{0}, 0};
    for (int i = 0; i < ws->n;) {
        if (pred(ws->v[i].name)) { nl_add(&l, ws->v[i].name); weights_remove(ws, ws->v[i].name); }
        else i++;
    }
    if (l.n) note(notes, "note: ignored %d %s: %s", l.n, why, nl_str(&l));
}
static bool is_buffer(const char *n) { return ends(n, "embeddings.position_ids") || ends(n, "embeddings.token_type_ids"); }
static bool is_cls_head(const char *n) { return starts(n, "cls."); }

static int rename_gamma_beta(WeightSet *ws, const char *label, FILE *notes) {
    int n = 0;
    for (int i = 0; i < ws->n; i++) {
        const char *s = ws->v[i].name;
        const char *suf = ends(s, "LayerNorm.gamma") ? "gamma" : ends(s, "LayerNorm.beta") ? "beta" : NULL;
        if (!suf) continue;
        size_t L = strlen(s) - strlen(suf);
        char nn[512];
        snprintf(nn, sizeof nn, "%.*s%s", (int)L, s, !strcmp(suf, "gamma") ? "weight" : "bias");
        if (!weights_rename(ws, s, nn)) { hyp_set_error("%s: %s: %s", label, s, hyp_last_error()); return -1; }
        n++;
    }
    if (n) note(notes, "note: renamed %d LayerNorm gamma/beta tensors to weight/bias", n);
    return 0;
}

// passage_encoder.transformer.* of a shared encoder: drop when they alias (or equal) the query
// encoder's tensors; keep when the encoders are separate.
static int reconcile_passage(WeightSet *ws, ModelConfig *c, bool have_config, const char *label, FILE *notes) {
    int n_pass = 0, n_same = 0;
    const char *differs = NULL;
    for (int i = 0; i < ws->n; i++) {
        const NamedTensor *t = &ws->v[i];
        if (!starts(t->name, PASSAGE_PREFIX)) continue;
        n_pass++;
        const NamedTensor *q = getf(ws, BERT_HYP_PREFIX, t->name + strlen(PASSAGE_PREFIX));
        if (q && weights_same_data(t, q)) n_same++;
        else if (!differs) differs = t->name;
    }
    if (!n_pass) {
        if (!c->shared_encoder) {
            hyp_set_error("%s: %s*: missing, and the config says shared_encoder = false", label, PASSAGE_PREFIX);
            return -1;
        }
        return 0;
    }
    if (differs) {
        if (c->shared_encoder && have_config) {
            hyp_set_error("%s: %s: differs from %s%s, but the config says shared_encoder = true", label, differs, BERT_HYP_PREFIX,
                          differs + strlen(PASSAGE_PREFIX));
            return -1;
        }
        c->shared_encoder = false;
        note(notes, "note: separate passage encoder (%d tensors under %s)", n_pass, PASSAGE_PREFIX);
        return 0;
    }
    if (!c->shared_encoder && have_config) {
        note(notes, "note: config says shared_encoder = false but the passage encoder equals the query encoder: keeping both");
        return 0;
    }
    c->shared_encoder = true;
    for (int i = 0; i < ws->n;) {
        if (starts(ws->v[i].name, PASSAGE_PREFIX)) weights_remove(ws, ws->v[i].name);
        else i++;
    }
    note(notes, "note: passage encoder shares the query encoder's BERT: dropped %d aliased %s* names", n_pass, PASSAGE_PREFIX);
    return 0;
}

int model_weights_normalize(WeightSet *ws, ModelConfig *c, bool have_config, bool allow_unknown, const char *label, FILE *notes) {
    if (!have_config) {
        memset(c, 0, sizeof *c);
        bool hyp = false;
        for (int i = 0; i < ws->n && !hyp; i++) hyp = starts(ws->v[i].name, HEAD_PREFIX);
        const NamedTensor *cw = weights_get(ws, "classifier.weight");
        c->kind = hyp ? MODEL_HYPENCODER : cw ? MODEL_CROSS_ENCODER : MODEL_BERT;
        if (c->kind == MODEL_CROSS_ENCODER) {
            if (cw->ndim != 2) { hyp_set_error("%s: classifier.weight: expected a matrix (labels, hidden)", label); return -1; }
            c->num_labels = cw->shape[0];
        }
        if (hyp) {
            snprintf(c->bert_prefix, sizeof c->bert_prefix, BERT_HYP_PREFIX);
            snprintf(c->activation_type, sizeof c->activation_type, "relu");
            snprintf(c->passage_pooling, sizeof c->passage_pooling, "cls");
            c->shared_encoder = true;
        }
        note(notes, "note: no config.json: a %s layout, judging by the tensor names",
             hyp ? "Hypencoder" : c->kind == MODEL_CROSS_ENCODER ? "cross-encoder (BertForSequenceClassification)" : "BERT");
    }
    drop_matching(ws, is_buffer, "buffers (position_ids/token_type_ids)", notes);
    if (rename_gamma_beta(ws, label, notes)) return -1;
    if (c->kind == MODEL_BERT || c->kind == MODEL_CROSS_ENCODER) {
        c->bert_prefix[0] = 0;
        drop_matching(ws, is_cls_head, "pre-training head tensors (cls.*)", notes);
        if (strip_prefix(ws, "bert.", label, notes)) return -1;
        if (!have_config && infer_bert(ws, "", &c->bert, label, notes)) return -1;
    } else {
        if (reconcile_passage(ws, c, have_config, label, notes)) return -1;
        if (c->bert.hidden == 0 && infer_bert(ws, BERT_HYP_PREFIX, &c->bert, label, notes)) return -1;
        if (c->n_dims == 0 && infer_hyperhead(ws, c, label)) return -1;
        if (c->vector_dimensions[0] != c->bert.hidden)
            note(notes, "note: vector_dimensions[0] = %d differs from the BERT hidden size %d", c->vector_dimensions[0], c->bert.hidden);
    }
    ExpectList ex = {0};
    expect_bert(&ex, c->bert_prefix, &c->bert);
    if (c->kind == MODEL_CROSS_ENCODER) {   // the classifier reads the pooled [CLS]: pooler required
        for (int i = ex.n - 2; i < ex.n; i++) ex.v[i].optional = false;
        expect(&ex, false, 2, S(c->num_labels, c->bert.hidden), "classifier.weight");
        expect(&ex, false, 1, S(c->num_labels), "classifier.bias");
    }
    if (c->kind == MODEL_HYPENCODER) {
        if (!c->shared_encoder) expect_bert(&ex, PASSAGE_PREFIX, &c->bert);
        expect_hyperhead(&ex, c);
    }
    bool *known = hyp_calloc((size_t)ws->n + 1, 1);
    NameList missing = {{0}, 0}, unknown = {{0}, 0};
    int rc = -1;
    for (int i = 0; i < ex.n; i++) {
        const Expect *e = &ex.v[i];
        int k = weights_index(ws, e->name);
        if (k < 0) { if (!e->optional) nl_add(&missing, e->name); continue; }
        known[k] = true;
        const NamedTensor *t = &ws->v[k];
        bool ok = t->ndim == e->ndim;
        for (int d = 0; ok && d < e->ndim; d++) ok = t->shape[d] == e->shape[d];
        if (!ok) {
            char a[96], b[96];
            fmt_shape(a, sizeof a, t->ndim, t->shape);
            fmt_shape(b, sizeof b, e->ndim, e->shape);
            hyp_set_error("%s: %s: shape %s, but the config needs %s", label, e->name, a, b);
            goto out;
        }
    }
    // pooler: both or neither
    {
        char pw[128], pb[128];
        snprintf(pw, sizeof pw, "%spooler.dense.weight", c->bert_prefix);
        snprintf(pb, sizeof pb, "%spooler.dense.bias", c->bert_prefix);
        if ((weights_index(ws, pw) >= 0) != (weights_index(ws, pb) >= 0)) nl_add(&missing, weights_index(ws, pw) >= 0 ? pb : pw);
    }
    if (missing.n) { hyp_set_error("%s: missing %d tensor%s: %s", label, missing.n, missing.n > 1 ? "s" : "", nl_str(&missing)); goto out; }
    for (int i = 0; i < ws->n; i++) if (!known[i]) nl_add(&unknown, ws->v[i].name);
    if (unknown.n && !allow_unknown) {
        hyp_set_error("%s: %d unknown tensor%s (not part of a %s with this config; --allow-unknown drops them): %s", label, unknown.n,
                      unknown.n > 1 ? "s" : "", c->kind == MODEL_HYPENCODER ? "Hypencoder" : c->kind == MODEL_CROSS_ENCODER ?
                      "BertForSequenceClassification" : "BertModel", nl_str(&unknown));
        goto out;
    }
    if (unknown.n) {
        note(notes, "note: dropped %d unknown tensors: %s", unknown.n, nl_str(&unknown));
        for (int i = ws->n - 1; i >= 0; i--) if (!known[i]) weights_remove(ws, ws->v[i].name);
    }
    rc = 0;
out:
    free(known);
    free(ex.v);
    return rc;
}

// ------------------------------------------------------------------ vocab, files
char **vocab_read(const char *path, int *n) {
    size_t len;
    char *s = hyp_read_text_file(path, 64u << 20, &len);
    if (!s) return NULL;
    if (memchr(s, 0, len)) { free(s); hyp_set_error("%s: NUL byte in the vocab", path); return NULL; }
    int cap = 1024, k = 0;
    char **v = hyp_malloc((size_t)cap * sizeof(char *));
    for (char *p = s; p < s + len;) {
        char *e = memchr(p, '\n', (size_t)(s + len - p));
        size_t L = e ? (size_t)(e - p) : (size_t)(s + len - p);
        if (L && p[L - 1] == '\r') L--;
        if (k == cap) { cap *= 2; v = hyp_realloc(v, (size_t)cap * sizeof(char *)); }
        v[k] = hyp_malloc(L + 1);
        memcpy(v[k], p, L);
        v[k++][L] = 0;
        p = e ? e + 1 : s + len;
    }
    free(s);
    if (!k) { free(v); hyp_set_error("%s: empty vocab", path); return NULL; }
    *n = k;
    return v;
}

#ifdef HYP_HAVE_JANSSON
// The WordPiece vocab of a HF fast tokenizer's tokenizer.json ({"model": {"type": "WordPiece",
// "vocab": {token: id}}} plus "added_tokens"), for model directories without vocab.txt.
// Ids must be exactly 0..n-1. *lowercase: the BertNormalizer's flag (or -1).
char **vocab_from_tokenizer_json(const char *path, int *n, int *lowercase) {
    json_error_t e;
    json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!r) { hyp_set_error("%s:%d: bad JSON: %s", path, e.line, e.text); return NULL; }
    char **v = NULL;
    int cap = 0;
    json_t *model = json_object_get(r, "model"), *voc = json_object_get(model, "vocab");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type || strcmp(type, "WordPiece") || !json_is_object(voc)) {
        hyp_set_error("%s: model: not a WordPiece tokenizer (type %s)", path, type ? type : "missing");
        goto fail;
    }
    json_t *lc = json_object_get(json_object_get(r, "normalizer"), "lowercase");
    *lowercase = json_is_boolean(lc) ? json_is_true(lc) : -1;
    cap = (int)json_object_size(voc);
    json_t *added = json_object_get(r, "added_tokens");
    cap += (int)json_array_size(added);
    if (cap <= 0 || cap > (1 << 24)) { hyp_set_error("%s: model.vocab: %d tokens", path, cap); goto fail; }
    v = hyp_calloc((size_t)cap, sizeof(char *));
    const char *tok;
    json_t *id;
    int maxid = -1;
    json_object_foreach(voc, tok, id) {
        json_int_t i = json_integer_value(id);
        if (!json_is_integer(id) || i < 0 || i >= cap || v[i]) { hyp_set_error("%s: model.vocab: %s: bad or repeated id", path, tok); goto fail; }
        v[i] = hyp_strdup(tok);
        if (i > maxid) maxid = (int)i;
    }
    size_t k;
    json_t *a;
    json_array_foreach(added, k, a) {
        json_int_t i = json_integer_value(json_object_get(a, "id"));
        const char *c = json_string_value(json_object_get(a, "content"));
        if (!c || i < 0 || i >= cap) continue;
        if (!v[i]) v[i] = hyp_strdup(c);
        if (i > maxid) maxid = (int)i;
    }
    for (int i = 0; i <= maxid; i++)
        if (!v[i]) { hyp_set_error("%s: model.vocab: no token has id %d", path, i); goto fail; }
    *n = maxid + 1;
    json_decref(r);
    for (int i = *n; i < cap; i++) free(v[i]);
    return v;
fail:
    for (int i = 0; v && i < cap; i++) free(v[i]);
    free(v);
    json_decref(r);
    return NULL;
}
#endif

static bool is_dir(const char *p) { struct stat st; return !stat(p, &st) && S_ISDIR(st.st_mode); }
static bool is_file(const char *p) { struct stat st; return !stat(p, &st) && S_ISREG(st.st_mode); }

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = hyp_malloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}
static char *dir_of(const char *path) {
    const char *sl = strrchr(path, '/');
    if (!sl) return hyp_strdup(".");
    size_t n = (size_t)(sl - path);
    char *d = hyp_malloc(n + 2);
    memcpy(d, path, n ? n : 1);
    d[n ? n : 1] = 0;
    return d;
}

// do_lower_case from tokenizer_config.json: 1/0, or -1 when unknown.
static int tokenizer_lowercase(const char *dir) {
#ifdef HYP_HAVE_JANSSON
    char *p = join(dir, "tokenizer_config.json");
    json_t *r = is_file(p) ? json_load_file(p, 0, NULL) : NULL;
    free(p);
    json_t *v = json_object_get(r, "do_lower_case");
    int rc = json_is_boolean(v) ? json_is_true(v) : -1;
    json_decref(r);
    return rc;
#else
    (void)dir;
    return -1;
#endif
}

#ifdef HYP_HAVE_JANSSON
// 1_Pooling/config.json: exactly one of the supported modes set.
static int st_pooling_read(const char *path, Pooling *out) {
    json_error_t e;
    json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!r) { hyp_set_error("%s:%d: bad JSON: %s", path, e.line, e.text); return -1; }
    static const struct { const char *key; int mode; } MODES[] = {
        {"pooling_mode_cls_token", POOL_CLS}, {"pooling_mode_mean_tokens", POOL_MEAN}, {"pooling_mode_max_tokens", POOL_MAX},
        {"pooling_mode_mean_sqrt_len_tokens", -1}, {"pooling_mode_weightedmean_tokens", -1}, {"pooling_mode_lasttoken", -1},
    };
    int n_on = 0, rc = 0;
    for (size_t i = 0; i < sizeof MODES / sizeof MODES[0]; i++) {
        if (!json_is_true(json_object_get(r, MODES[i].key))) continue;
        if (MODES[i].mode < 0) { hyp_set_error("%s: %s is not supported (cls, mean or max pooling)", path, MODES[i].key); rc = -1; break; }
        *out = (Pooling)MODES[i].mode;
        n_on++;
    }
    if (!rc && n_on != 1) {
        hyp_set_error("%s: %d pooling modes are set; expected exactly one (concatenated modes are not supported)", path, n_on);
        rc = -1;
    }
    json_decref(r);
    return rc;
}

int st_modules_read(const char *dir, STModules *out) {
    memset(out, 0, sizeof *out);
    char *mp = join(dir, "modules.json");
    if (!is_file(mp)) { free(mp); return 0; }
    json_error_t e;
    json_t *r = json_load_file(mp, JSON_REJECT_DUPLICATES, &e);
    int rc = -1;
    if (!r) { hyp_set_error("%s:%d: bad JSON: %s", mp, e.line, e.text); goto out; }
    if (!json_is_array(r)) { hyp_set_error("%s: expected a list of modules", mp); goto out; }
    out->found = true;
    size_t i;
    json_t *mod;
    bool transformer = false;
    json_array_foreach(r, i, mod) {
        const char *type = json_string_value(json_object_get(mod, "type"));
        const char *path = json_string_value(json_object_get(mod, "path"));
        if (!type || !path) { hyp_set_error("%s: module %zu: \"type\" and \"path\" strings expected", mp, i); goto out; }
        const char *dot = strrchr(type, '.');
        const char *name = dot ? dot + 1 : type;
        if (strstr(path, "..")) { hyp_set_error("%s: module %zu: path \"%s\" leaves the directory", mp, i, path); goto out; }
        if (!strcmp(name, "Transformer")) {
            if (transformer || i != 0) { hyp_set_error("%s: module %zu: the Transformer must be the one first module", mp, i); goto out; }
            transformer = true;
            if (strlen(path) >= sizeof out->transformer_path) { hyp_set_error("%s: module %zu: path too long", mp, i); goto out; }
            snprintf(out->transformer_path, sizeof out->transformer_path, "%s", path);
        } else if (!strcmp(name, "Pooling")) {
            char *sub = join(dir, path), *cp = join(sub, "config.json");
            int bad = st_pooling_read(cp, &out->pooling);
            free(sub);
            free(cp);
            if (bad) goto out;
        } else if (!strcmp(name, "Normalize")) {
            out->normalize = true;
        } else {
            hyp_set_error("%s: module %zu: %s is not supported (Transformer, Pooling, Normalize)", mp, i, type);
            goto out;
        }
    }
    if (!transformer) { hyp_set_error("%s: no sentence_transformers.models.Transformer module", mp); goto out; }
    char *tdir = join(dir, out->transformer_path), *sb = join(tdir, "sentence_bert_config.json");
    free(tdir);
    if (!is_file(sb)) { free(sb); sb = join(dir, "sentence_bert_config.json"); }
    if (is_file(sb)) {
        json_t *c = json_load_file(sb, JSON_REJECT_DUPLICATES, &e);
        json_t *ml = json_object_get(c, "max_seq_length");
        if (!c) hyp_set_error("%s:%d: bad JSON: %s", sb, e.line, e.text);
        else if (ml && !json_is_null(ml) && (!json_is_integer(ml) || json_integer_value(ml) < 2 || json_integer_value(ml) > 1 << 20))
            hyp_set_error("%s: max_seq_length: expected an integer >= 2", sb);
        else {
            out->max_seq_length = json_is_integer(ml) ? (int)json_integer_value(ml) : 0;
            json_decref(c);
            c = NULL;
            free(sb);
            sb = NULL;
        }
        if (sb) { json_decref(c); free(sb); goto out; }
    } else
        free(sb);
    rc = 0;
out:
    json_decref(r);
    free(mp);
    return rc;
}
#else
int st_modules_read(const char *dir, STModules *out) {
    memset(out, 0, sizeof *out);
    char *mp = join(dir, "modules.json");
    bool has = is_file(mp);
    free(mp);
    if (has) { hyp_set_error("%s/modules.json: reading JSON needs jansson (install libjansson-dev and rebuild)", dir); return -1; }
    return 0;
}
#endif

int import_default_query_len(ModelKind kind, int max_positions) {
    const int want = kind == MODEL_HYPENCODER ? 64 : 32;   // retrieve.py / approx_retrieve.py: 64
    return want < max_positions ? want : max_positions;
}

// Where the weights, config.json and vocab are: a checkpoint folder (a sentence-transformers
// one: its Transformer module's folder) or a weights file. *dir: the folder to look in.
// 0 or -1 + error; the paths are malloc'd (cfg_path may stay NULL).
static int locate_inputs(const ImportOptions *o, STModules *st, char **dir, char **weights, char **cfg_path) {
    if (!is_dir(o->from)) {
        if (!is_file(o->from)) { hyp_set_error("%s: no such file or directory", o->from); return -1; }
        *weights = hyp_strdup(o->from);
        *dir = dir_of(o->from);
        if (o->config) *cfg_path = hyp_strdup(o->config);
        return 0;
    }
    if (st_modules_read(o->from, st)) return -1;
    *dir = st->transformer_path[0] ? join(o->from, st->transformer_path) : hyp_strdup(o->from);
    if (st->found)
        note(o->notes, "note: sentence-transformers modules: %s pooling%s%s%d", pooling_name(st->pooling),
             st->normalize ? ", L2 normalisation" : "", st->max_seq_length ? ", max_seq_length " : "",
             st->max_seq_length);
    static const char *cands[] = {"model.safetensors", "pytorch_model.bin"};
    for (int i = 0; i < 2 && !*weights; i++) {
        char *p = join(*dir, cands[i]);
        if (is_file(p)) *weights = p;
        else free(p);
    }
    if (!*weights) {
        char *a = join(*dir, "model.safetensors.index.json"), *b = join(*dir, "pytorch_model.bin.index.json");
        bool sharded = is_file(a) || is_file(b);
        free(a);
        free(b);
        hyp_set_error("%s: %s", o->from, sharded ? "sharded checkpoints (*.index.json) are not supported: merge the shards first"
                                                  : "no model.safetensors or pytorch_model.bin in this directory");
        return -1;
    }
    char *c = join(*dir, "config.json");
    if (o->config) { *cfg_path = hyp_strdup(o->config); free(c); }
    else if (is_file(c)) *cfg_path = c;
    else { free(c); note(o->notes, "note: %s has no config.json", *dir); }
    return 0;
}

// A Hypencoder config names its backbone; unless the name is known, its sizes come from
// --bert-config, the backbone's own folder, or (left 0 here) the weights. 0 or -1.
static int backbone_config(const ImportOptions *o, ModelConfig *c) {
    if (c->kind != MODEL_HYPENCODER || c->bert.hidden != 0) return 0;
    char *local = NULL;
    if (o->bert_config) local = hyp_strdup(o->bert_config);
    else {
        char *d2 = join(c->model_name_or_path, "config.json");
        if (is_file(d2)) local = d2;
        else free(d2);
    }
    if (!local) {
        note(o->notes, "note: backbone \"%s\" is not a known name: BERT sizes come from the weights (or pass --bert-config)",
             c->model_name_or_path);
        return 0;
    }
    int rc = hf_bert_config_read(local, &c->bert);
    if (!rc) note(o->notes, "note: backbone BERT config from %s", local);
    free(local);
    return rc;
}

// The WordPiece vocab: --vocab, DIR/vocab.txt, or tokenizer.json's (whose lowercase setting
// goes to *tok_lc, else -1). None is a note, not an error. 0 or -1.
static int read_vocab_of(const ImportOptions *o, const char *dir, ModelFile *mf, int *tok_lc) {
    *tok_lc = -1;
    char *vocab_path = NULL;
    if (o->vocab) vocab_path = hyp_strdup(o->vocab);
    else {
        char *v = join(dir, "vocab.txt");
        if (is_file(v)) vocab_path = v;
        else free(v);
    }
    int rc = -1;
    char *tj = join(dir, "tokenizer.json");
    if (vocab_path) {
        if (!(mf->vocab = vocab_read(vocab_path, &mf->n_vocab))) goto out;
    }
#ifdef HYP_HAVE_JANSSON
    else if (is_file(tj)) {
        if (!(mf->vocab = vocab_from_tokenizer_json(tj, &mf->n_vocab, tok_lc))) goto out;
        note(o->notes, "note: no vocab.txt: vocab taken from %s", tj);
        vocab_path = hyp_strdup(tj);
    }
#endif
    const int V = mf->config.bert.vocab_size;
    if (!vocab_path) note(o->notes, "note: no vocab.txt: the model file carries no tokenizer vocab (pass --vocab)");
    else if (mf->n_vocab > V) { hyp_set_error("%s: %d tokens, but the embeddings have only %d rows", vocab_path, mf->n_vocab, V); goto out; }
    else if (mf->n_vocab < V) note(o->notes, "note: %s has %d tokens for %d embedding rows", vocab_path, mf->n_vocab, V);
    rc = 0;
out:
    free(tj);
    free(vocab_path);
    return rc;
}

// Casing, max lengths, pooling and normalisation: the flags, else the checkpoint's own
// files (sentence-transformers modules, tokenizer config), else the defaults. 0 or -1.
static int tokenizer_settings(const ImportOptions *o, const STModules *st, const char *dir, int tok_lc, ModelFile *mf) {
    int lc = o->lowercase >= 0 ? o->lowercase : tokenizer_lowercase(dir);
    if (lc < 0) lc = tok_lc;
    if (lc < 0) {
        const char *nm = mf->config.kind == MODEL_HYPENCODER ? mf->config.model_name_or_path : o->from;
        lc = !(strstr(nm, "cased") && !strstr(nm, "uncased"));
    }
    mf->lowercase = lc;
    const int P = mf->config.bert.max_positions;
    mf->query_max_len = o->query_max_len > 0 ? o->query_max_len
                      : st->max_seq_length ? st->max_seq_length   // sentence-transformers truncates queries and documents alike
                                           : import_default_query_len(mf->config.kind, P);
    if (o->query_max_len <= 0 && !st->max_seq_length && mf->config.kind == MODEL_HYPENCODER)
        note(o->notes, "note: queries are tokenized to %d word pieces, as the authors' retrieval scripts do (training "
             "configs use 32; --query-max-len changes it)", mf->query_max_len);
    mf->doc_max_len = o->doc_max_len > 0 ? o->doc_max_len : st->max_seq_length ? st->max_seq_length : (P < 512 ? P : 512);
    mf->pooling = st->pooling;
    if (o->pooling && pooling_parse(o->pooling, &mf->pooling)) {
        hyp_set_error("import: pooling \"%s\": expected cls, mean or max", o->pooling);
        return -1;
    }
    mf->normalize = o->normalize == IMPORT_AUTO ? st->normalize : o->normalize == IMPORT_ON;
    if (mf->config.kind == MODEL_HYPENCODER && (mf->pooling != POOL_CLS || mf->normalize)) {
        hyp_set_error("%s: a Hypencoder's documents are [CLS] vectors without normalisation (its q-net was trained on them)", o->from);
        return -1;
    }
    if (mf->query_max_len > P || mf->doc_max_len > P) {
        hyp_set_error("%s: max lengths (%d, %d) exceed max_position_embeddings %d", o->out, mf->query_max_len, mf->doc_max_len, P);
        return -1;
    }
    return 0;
}

int model_import(const ImportOptions *o) {
    if (!o->from || !o->out) { hyp_set_error("import: --from and --out are required"); return -1; }
    char *weights = NULL, *cfg_path = NULL, *dir = NULL, *hf_text = NULL;
    WeightSet *ws = NULL;
    ModelFile mf = {0};
    int rc = -1, tok_lc;
    STModules st = {0};
    if (locate_inputs(o, &st, &dir, &weights, &cfg_path)) goto out;
    const bool have_config = cfg_path != NULL;
    if (cfg_path) {
        size_t n;
        if (!(hf_text = hyp_read_text_file(cfg_path, 1 << 20, &n))) goto out;
        if (hf_config_parse(hf_text, n, cfg_path, &mf.config)) goto out;
    }
    if (backbone_config(o, &mf.config)) goto out;
    note(o->notes, "reading %s", weights);
    if (!(ws = weights_read(weights))) goto out;
    if (weights_check_finite(ws, weights)) goto out;   // NaN/inf weights are refused at import
    int conv[WDT_COUNT] = {0};
    for (int i = 0; i < ws->n; i++) if (!ws->v[i].alias_of) conv[ws->v[i].stored]++;
    for (int t = 1; t < WDT_COUNT; t++)
        if (conv[t]) note(o->notes, "note: %d %s tensors converted to F32", conv[t], wdtype_name((WDType)t));
    if (model_weights_normalize(ws, &mf.config, have_config, o->allow_unknown, weights, o->notes)) goto out;
    if (read_vocab_of(o, dir, &mf, &tok_lc) || tokenizer_settings(o, &st, dir, tok_lc, &mf)) goto out;
    mf.params = ws;
    mf.hf_config = hf_text;
    if (model_file_write(o->out, &mf)) goto out;
    note(o->notes, "wrote %s: %s, %d tensors, %zu parameters, vocab %d, lowercase %d, max len query %d doc %d, pooling %s%s",
         o->out,
         mf.config.kind == MODEL_HYPENCODER ? "Hypencoder" : mf.config.kind == MODEL_CROSS_ENCODER ? "cross-encoder" : "BERT", ws->n, weights_numel_unique(ws), mf.n_vocab, mf.lowercase,
         mf.query_max_len, mf.doc_max_len, pooling_name(mf.pooling), mf.normalize ? " + L2 normalisation" : "");
    rc = 0;
out:
    weights_free(ws);
    for (int i = 0; i < mf.n_vocab; i++) free(mf.vocab[i]);
    free(mf.vocab);
    free(hf_text);
    free(weights);
    free(cfg_path);
    free(dir);
    return rc;
}
