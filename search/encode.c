#include "search/encode.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

Tokenizer *model_tokenizer(const Model *m) {
    if (!m->vocab) {
        hyp_set_error("%s: the model file has no /tokenizer/vocab (pass --vocab)", m->path);
        return NULL;
    }
    size_t len = 0;
    for (int i = 0; i < m->n_vocab; i++) len += strlen(m->vocab[i]) + 1;
    char *text = hyp_malloc(len + 1), *p = text;
    for (int i = 0; i < m->n_vocab; i++) {
        size_t k = strlen(m->vocab[i]);
        memcpy(p, m->vocab[i], k);
        p[k] = '\n';
        p += k + 1;
    }
    char label[1100];
    snprintf(label, sizeof label, "%s:/tokenizer/vocab", m->path);
    Tokenizer *t = tok_from_vocab_text(text, len, label, m->lowercase);
    free(text);
    return t;
}

// ---------------------------------------------------------------- the model view
// The model file's own pooling and normalisation (sentence-transformers' modules when imported
// from one; a Hypencoder's passage pooling).
Pooling search_model_pooling(const Model *m) { return m->pooling; }
bool search_model_normalize(const Model *m) { return m->normalize; }

SearchModel search_model_hypencoder(const Hypencoder *h, Device dev) {
    return (SearchModel){.kind = SEARCH_HYPENCODER, .hyp = h, .query_bert = &h->query_bert, .doc_bert = h->doc_bert,
                         .pooling = h->cfg.pooling, .device = dev, .label = "(model)"};
}
SearchModel search_model_biencoder(const BiEncoder *be, Device dev) {
    return (SearchModel){.kind = SEARCH_BIENCODER, .query_bert = &be->query_bert, .doc_bert = be->doc_bert,
                         .pooling = be->pooling, .device = dev, .label = "(model)"};
}

SearchModel search_model_of(const Model *m) {
    SearchModel sm;
    if (m->mc.kind == MODEL_HYPENCODER) sm = search_model_hypencoder(&m->hyp, m->device);
    else if (m->mc.kind == MODEL_BIENCODER) sm = search_model_biencoder(&m->be, m->device);
    else sm = (SearchModel){.kind = SEARCH_BERT, .query_bert = &m->bert, .doc_bert = &m->bert, .device = m->device};
    sm.pooling = search_model_pooling(m);
    sm.normalize = search_model_normalize(m);
    sm.query_max_len = m->query_max_len;
    sm.doc_max_len = m->doc_max_len;
    sm.label = m->path;
    return sm;
}

const char *search_kind_name(SearchKind k) {
    return k == SEARCH_HYPENCODER ? "Hypencoder" : k == SEARCH_BIENCODER ? "BE-Base bi-encoder" : "plain BERT";
}
const Bert *search_model_bert(const SearchModel *sm, EncodeSide side) {
    return side == SIDE_QUERY ? sm->query_bert : sm->doc_bert;
}
int search_model_dim(const SearchModel *sm) {
    return sm->kind == SEARCH_HYPENCODER ? sm->hyp->head.dim : sm->doc_bert->cfg.hidden;
}

// ---------------------------------------------------------------- encoding
typedef struct { size_t len; int idx; } LenIdx;
static int by_len_desc(const void *a, const void *b) {
    const LenIdx *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->idx - y->idx;
}

// One BERT's pooled vectors (the body of encode_side and encode_texts).
static float *encode_bert(const Bert *bert, Device dev, Pooling pooling, bool normalize, const char *label,
                          const Tokenizer *tok, const char *const *texts, int n, EncodeOptions opt) {
    int d = bert->cfg.hidden;
    if (opt.batch <= 0) opt.batch = 64;
    if (!opt.what) opt.what = "documents";
    const char *one = !strcmp(opt.what, "documents") ? "document" : !strcmp(opt.what, "queries") ? "query" : opt.what;
    float *out = hyp_malloc((size_t)(n ? n : 1) * d * sizeof(float));
    // Longest first by byte length, a good proxy for token count: batches pad little.
    LenIdx *order = hyp_malloc((size_t)(n ? n : 1) * sizeof(LenIdx));
    for (int i = 0; i < n; i++) order[i] = (LenIdx){strlen(texts[i]), i};
    qsort(order, (size_t)n, sizeof *order, by_len_desc);
    const char **bt = hyp_malloc((size_t)opt.batch * sizeof(char *));
    TokBatch tb = {0};
    Ctx *c = ctx_new(dev);
    no_grad_begin(c);
    float *host = hyp_malloc((size_t)opt.batch * d * sizeof(float));
    double t0 = hyp_now(), last = t0;
    for (int s = 0; s < n; s += opt.batch) {
        int b = n - s < opt.batch ? n - s : opt.batch;
        for (int k = 0; k < b; k++) bt[k] = texts[order[s + k].idx];
        tok_encode_batch(tok, bt, NULL, b, opt.max_len, &tb);
        Tensor *ids = tensor_new(c, HYP_I32, HYP_SHAPE(b, tb.len)), *mask = tensor_new(c, HYP_I32, HYP_SHAPE(b, tb.len));
        tensor_from_host(ids, tb.ids);
        tensor_from_host(mask, tb.mask);
        Tensor *v = bert_forward_pooled(c, bert, ids, mask, pooling);
        tensor_to_host(v, host);
        if (normalize) l2_normalize_host(host, (size_t)b, d);   // on the copy the host needs anyway
        size_t bad = hyp_find_nonfinite(host, (size_t)b * d, NULL);
        if (bad < (size_t)b * d) {
            int row = order[s + (int)(bad / (size_t)d)].idx;
            char name[160];
            if (opt.ids) snprintf(name, sizeof name, "'%.120s' (row %d)", opt.ids[row], row);
            else snprintf(name, sizeof name, "%d", row);
            hyp_set_error("%s: the model produced a non-finite vector for %s %s (%g at dimension %zu); expected "
                          "finite vectors (the model's weights or a too-long input overflow?)", label, one, name,
                          host[bad], bad % (size_t)d);
            ctx_reset(c);
            free(out);
            out = NULL;
            break;
        }
        for (int k = 0; k < b; k++) memcpy(out + (size_t)order[s + k].idx * d, host + (size_t)k * d, d * sizeof(float));
        ctx_reset(c);
        double now = hyp_now();
        if (opt.progress && (now - last > 2.0 || s + b == n)) {
            double rate = (s + b) / (now - t0);
            fprintf(stderr, "\rencode: %d/%d %s | %.1f/s | eta %.0f s   ", s + b, n, opt.what, rate,
                    (n - s - b) / (rate > 0 ? rate : 1));
            if (s + b == n) fputc('\n', stderr);
            last = now;
        }
    }
    no_grad_end(c);
    ctx_free(c);
    tok_batch_free(&tb);
    free(host);
    free(bt);
    free(order);
    if (!out && !opt.nonfinite_null) HYP_FATAL("%s", hyp_last_error());
    return out;
}

float *encode_side(const SearchModel *sm, EncodeSide side, const Tokenizer *tok, const char *const *texts, int n,
                   const EncodeOptions *o) {
    if (side == SIDE_QUERY && sm->kind == SEARCH_HYPENCODER) {
        hyp_set_error("%s: a Hypencoder encodes queries as q-nets, not vectors (encode its documents)", sm->label);
        return NULL;
    }
    EncodeOptions opt = o ? *o : (EncodeOptions){0};
    const Bert *bert = search_model_bert(sm, side);
    if (opt.max_len <= 0) opt.max_len = side == SIDE_QUERY ? sm->query_max_len : sm->doc_max_len;
    if (opt.max_len <= 0) opt.max_len = side == SIDE_QUERY ? 64 : bert->cfg.max_positions;
    if (!opt.what) opt.what = side == SIDE_QUERY ? "queries" : "documents";
    return encode_bert(bert, sm->device, sm->pooling, sm->normalize, sm->label, tok, texts, n, opt);
}

float *encode_texts(const Model *m, const Tokenizer *tok, const char *const *texts, int n, const EncodeOptions *o) {
    EncodeOptions opt = o ? *o : (EncodeOptions){0};
    if (opt.max_len <= 0) opt.max_len = m->doc_max_len;
    return encode_bert(model_doc_bert(m), m->device, opt.pooling, false, m->path, tok, texts, n, opt);
}
