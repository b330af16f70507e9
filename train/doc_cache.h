// doc_cache.h: the frozen-encoder document cache (model.freeze_encoder; used by the objective
// and by validation).
// With model.freeze_encoder the document encoder is a constant function: each document's
// pooled vector is computed once (without dropout) and kept, keyed by its exact token ids (a
// document is the same tokens in every row and epoch that holds it). Batches then encode
// only documents never seen before and upload the rest as constants.
#ifndef HYP_DOC_CACHE_H
#define HYP_DOC_CACHE_H
#include "model/bert.h"
#include "data/train_data.h"
#include "data/tokenizer.h"

typedef struct DocCache {
    int d;                 // vector width
    long n, cap;
    float *vecs;           // (cap, d)
    int32_t *ids;          // token ids of every entry, concatenated
    size_t *off;           // (cap + 1) entry i's ids = ids[off[i] .. off[i + 1])
    size_t ids_cap;
    long *slots, nslots;   // open addressing on the ids' hash: entry index or -1
    long hits, misses;
} DocCache;

DocCache *doc_cache_new(int d);
void doc_cache_free(DocCache *dc);
// Cache entries of `rows` documents given as token ids and masks (rows, L) on the host: cached
// ones found, new ones encoded (one no-grad, no-dropout forward over the new documents only)
// and added. entry: (rows) out.
void doc_cache_fill(Ctx *c, DocCache *dc, const Bert *dbert, Pooling pool, const int32_t *d_ids, const int32_t *d_mask,
                    int rows, int L, long *entry);
// A training batch's document vectors (rows, d) as a constant tensor, through the cache.
Tensor *doc_cache_vectors(Ctx *c, DocCache *dc, const Bert *dbert, Pooling pool, const TrainBatch *b);
// Texts (n) as document vectors (n, d) on the host through the cache (validation with a frozen
// encoder: the validation passages the training batches already encoded are not encoded again).
float *doc_cache_texts(DocCache *dc, Device dev, const Bert *dbert, Pooling pool, const Tokenizer *tok,
                       const char *const *texts, int n, int max_len);

#endif
