// doc_cache.c: document vectors by exact token ids for a frozen encoder (doc_cache.h).
#include "train/doc_cache.h"
#include <stdlib.h>
#include <string.h>

static uint64_t ids_hash(const int32_t *x, int n) {
    uint64_t h = 1469598103934665603ull;   // FNV-1a over the ids' bytes
    for (int i = 0; i < n; i++) for (int k = 0; k < 4; k++) h = (h ^ (uint8_t)((uint32_t)x[i] >> (8 * k))) * 1099511628211ull;
    return h;
}
static long *cache_slot(DocCache *dc, const int32_t *x, int n) {
    for (uint64_t h = ids_hash(x, n) & (uint64_t)(dc->nslots - 1);; h = (h + 1) & (uint64_t)(dc->nslots - 1)) {
        long e = dc->slots[h];
        if (e < 0 || ((long)(dc->off[e + 1] - dc->off[e]) == n && !memcmp(dc->ids + dc->off[e], x, (size_t)n * sizeof *x)))
            return &dc->slots[h];
    }
}
static void cache_grow(DocCache *dc) {
    long ns = dc->nslots ? 2 * dc->nslots : 1024;
    free(dc->slots);
    dc->slots = hyp_malloc((size_t)ns * sizeof *dc->slots);
    dc->nslots = ns;
    for (long i = 0; i < ns; i++) dc->slots[i] = -1;
    for (long e = 0; e < dc->n; e++) *cache_slot(dc, dc->ids + dc->off[e], (int)(dc->off[e + 1] - dc->off[e])) = e;
}
static long cache_add(DocCache *dc, const int32_t *x, int n) {
    if (dc->n == dc->cap) {
        dc->cap = dc->cap ? 2 * dc->cap : 1024;
        dc->vecs = hyp_realloc(dc->vecs, (size_t)dc->cap * dc->d * sizeof(float));
        dc->off = hyp_realloc(dc->off, (size_t)(dc->cap + 1) * sizeof *dc->off);
    }
    if (!dc->n) dc->off[0] = 0;
    size_t at = dc->off[dc->n];
    if (at + (size_t)n > dc->ids_cap) {
        while (at + (size_t)n > dc->ids_cap) dc->ids_cap = dc->ids_cap ? 2 * dc->ids_cap : 65536;
        dc->ids = hyp_realloc(dc->ids, dc->ids_cap * sizeof *dc->ids);
    }
    memcpy(dc->ids + at, x, (size_t)n * sizeof *x);
    dc->off[dc->n + 1] = at + (size_t)n;
    return dc->n++;
}

DocCache *doc_cache_new(int d) {
    DocCache *dc = hyp_calloc(1, sizeof *dc);
    dc->d = d;
    cache_grow(dc);
    return dc;
}
void doc_cache_free(DocCache *dc) {
    if (!dc) return;
    free(dc->vecs); free(dc->ids); free(dc->off); free(dc->slots);
    free(dc);
}

// Cache entries of `rows` documents given as token ids and masks (rows, L) on the host: cached
// ones found, new ones encoded (one no-grad, no-dropout forward over the new documents only)
// and added. entry: (rows) out.
void doc_cache_fill(Ctx *c, DocCache *dc, const Bert *dbert, Pooling pool, const int32_t *d_ids,
                           const int32_t *d_mask, int rows, int L, long *entry) {
    int d = dc->d;
    int *miss = hyp_malloc((size_t)(rows ? rows : 1) * sizeof *miss), n_miss = 0;
    for (int r = 0; r < rows; r++) {
        const int32_t *x = d_ids + (size_t)r * L, *mk = d_mask + (size_t)r * L;
        int n = 0;
        while (n < L && mk[n]) n++;
        if (2 * (dc->n + 1) > dc->nslots) cache_grow(dc);
        long *slot = cache_slot(dc, x, n);
        if (*slot < 0) {   // new: reserve the entry now (a document twice in a batch is encoded once)
            *slot = cache_add(dc, x, n);
            miss[n_miss++] = r;
            dc->misses++;
        } else dc->hits++;
        entry[r] = *slot;
    }
    if (n_miss) {
        int32_t *ids = hyp_malloc((size_t)n_miss * L * sizeof *ids), *mk = hyp_malloc((size_t)n_miss * L * sizeof *mk);
        for (int i = 0; i < n_miss; i++) {
            memcpy(ids + (size_t)i * L, d_ids + (size_t)miss[i] * L, (size_t)L * sizeof *ids);
            memcpy(mk + (size_t)i * L, d_mask + (size_t)miss[i] * L, (size_t)L * sizeof *mk);
        }
        bool training = c->training;
        c->training = false;
        no_grad_begin(c);
        Tensor *ti = tensor_new(c, HYP_I32, HYP_SHAPE(n_miss, L)), *tm = tensor_new(c, HYP_I32, HYP_SHAPE(n_miss, L));
        tensor_from_host(ti, ids);
        tensor_from_host(tm, mk);
        float *v = hyp_malloc((size_t)n_miss * d * sizeof(float));   // (n_miss, d)
        tensor_to_host(bert_forward_pooled(c, dbert, ti, tm, pool), v);
        no_grad_end(c);
        c->training = training;
        for (int i = 0; i < n_miss; i++) memcpy(dc->vecs + (size_t)entry[miss[i]] * d, v + (size_t)i * d, (size_t)d * sizeof(float));
        free(v); free(ids); free(mk);
    }
    free(miss);
}

// The batch's document vectors (rows, d) as a constant, through the cache.
Tensor *doc_cache_vectors(Ctx *c, DocCache *dc, const Bert *dbert, Pooling pool, const TrainBatch *b) {
    int rows = b->n_queries * b->n_items, d = dc->d;
    long *entry = hyp_malloc((size_t)rows * sizeof *entry);   // (rows) cache entry of each row
    doc_cache_fill(c, dc, dbert, pool, b->d_ids, b->d_mask, rows, b->d_len, entry);
    float *h = hyp_malloc((size_t)rows * d * sizeof(float));   // (rows, d)
    for (int r = 0; r < rows; r++) memcpy(h + (size_t)r * d, dc->vecs + (size_t)entry[r] * d, (size_t)d * sizeof(float));
    Tensor *D = tensor_new(c, HYP_F32, HYP_SHAPE(rows, d));
    tensor_from_host(D, h);
    free(h); free(entry);
    return D;
}

// Texts (n) as document vectors (n, d) on the host through the cache (validation with a frozen
// encoder: the validation passages the training batches already encoded are not encoded again).
float *doc_cache_texts(DocCache *dc, Device dev, const Bert *dbert, Pooling pool, const Tokenizer *tok,
                              const char *const *texts, int n, int max_len) {
    enum { CH = 64 };
    int d = dc->d;
    float *out = hyp_malloc((size_t)(n ? n : 1) * d * sizeof(float));
    long entry[CH];
    TokBatch tb = {0};
    Ctx *c = ctx_new(dev);
    for (int s = 0; s < n; s += CH) {
        int b = n - s < CH ? n - s : CH;
        tok_encode_batch(tok, texts + s, NULL, b, max_len, &tb);
        doc_cache_fill(c, dc, dbert, pool, tb.ids, tb.mask, b, tb.len, entry);
        for (int r = 0; r < b; r++) memcpy(out + (size_t)(s + r) * d, dc->vecs + (size_t)entry[r] * d, (size_t)d * sizeof(float));
        ctx_reset(c);
    }
    ctx_free(c);
    tok_batch_free(&tb);
    return out;
}
