// trainer.c: the training loop of `hyp train` (reference §5; DESIGN §1, §5).
//
// One global step: every rank takes its share of the global batch from the loader,
// runs forward + backward (grad_accum micro-batches, loss divided by k as HF Trainer),
// the gradients are averaged over ranks, AdamW updates with global-norm clipping and
// the lr schedule. Rank 0 logs, validates and writes checkpoints; everything a resume
// needs (parameters, AdamW moments and step, Philox counter, loader cursor, best metric)
// goes into each checkpoint, so N+M steps equal N steps, a stop, and M resumed steps.
// On a GPU a step has no host round trip: its ids are validated on the host before the one
// upload of the batch, position ids and in-batch targets are built on the device, and the
// losses, gradient norm and non-finite guard stay there until a log line (train.log_steps),
// validation, a checkpoint or the end of the run reads them (StepValues, settle()).
#include "train/trainer.h"
#include "autograd/fault.h"
#include "train/flops.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/losses.h"
#include "train/optim.h"
#include "search/driver.h"
#include "eval/metrics.h"
#include "data/corpus.h"
#include "model/load.h"
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------- the objective
// Every rank's positives (B, d) as one (B * world, d) tensor: ours keeps its gradient,
// the others are constants.
static Tensor *gather_positives(Ctx *c, Tensor *P, Comm *comm) {
    int B = P->shape[0], d = P->shape[1], W = comm->world;
    size_t n = (size_t)B * d;
    float *mine = hyp_malloc(n * sizeof(float)), *all = hyp_malloc(n * W * sizeof(float));
    tensor_to_host(P, mine);
    if (comm_allgather_f32(comm, mine, n, all, HYP_CPU)) HYP_FATAL("cross-device negatives: %s", hyp_last_error());
    Tensor *parts[HYP_MAX_IN];
    HYP_CHECK(W <= HYP_MAX_IN, "cross-device negatives: at most %d ranks", HYP_MAX_IN);
    for (int r = 0; r < W; r++) {
        if (r == comm->rank) { parts[r] = P; continue; }
        parts[r] = tensor_new(c, HYP_F32, HYP_SHAPE(B, d));
        tensor_from_host(parts[r], all + (size_t)r * n);
    }
    free(mine);
    free(all);
    return op_concat(c, parts, W, 0);
}

// The batch's ids, checked on the host before the upload, with op_embedding's message (the
// ops then skip their own device-side check: no copy back to the host).
static void check_ids(const int32_t *ids, long n, int V) {
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            HYP_FATAL("op embedding: id %d at position %ld is outside the table [0, %d)", (int)ids[i], i, V);
}

// A batch on the device in one host-to-device copy: the four id/mask arrays and the
// Margin-MSE constants, each 256-byte aligned (an upload from pageable memory waits for the
// device's queue to drain, so one at the start of a micro-batch costs the least).
typedef struct { Tensor *qi, *qm, *di, *dm; float *mmse_consts; } DeviceBatch;
static DeviceBatch upload_batch(Ctx *c, const TrainBatch *b) {
    int B = b->n_queries, n = b->n_items;
    size_t qn = (size_t)B * b->q_len, dn = (size_t)B * n * b->d_len, cn = loss_margin_mse_consts_floats(B, n);
    size_t qa = (qn + 63) & ~(size_t)63, da = (dn + 63) & ~(size_t)63, words = 2 * qa + 2 * da + cn;
    HYP_CHECK(words < INT_MAX, "a batch of %zu words is too large for one tensor", words);
    int32_t *h = hyp_calloc(words, sizeof(int32_t));
    memcpy(h, b->q_ids, qn * sizeof(int32_t));
    memcpy(h + qa, b->q_mask, qn * sizeof(int32_t));
    memcpy(h + 2 * qa, b->d_ids, dn * sizeof(int32_t));
    memcpy(h + 2 * qa + da, b->d_mask, dn * sizeof(int32_t));
    loss_margin_mse_consts((float *)(void *)(h + 2 * qa + 2 * da), b->scores, B, n);
    Tensor *all = tensor_new(c, HYP_I32, HYP_SHAPE((int)words));
    tensor_from_host(all, h);
    free(h);
    int32_t *d = tensor_i32(all);
    return (DeviceBatch){.qi = tensor_wrap(c, HYP_I32, d, HYP_SHAPE(B, b->q_len)),
                         .qm = tensor_wrap(c, HYP_I32, d + qa, HYP_SHAPE(B, b->q_len)),
                         .di = tensor_wrap(c, HYP_I32, d + 2 * qa, HYP_SHAPE(B * n, b->d_len)),
                         .dm = tensor_wrap(c, HYP_I32, d + 2 * qa + da, HYP_SHAPE(B * n, b->d_len)),
                         .mmse_consts = (float *)(void *)(d + 2 * qa + 2 * da)};
}

// ---------------------------------------------------------------- frozen-encoder document cache
// With model.freeze_encoder the document encoder is a constant function: each document's
// [CLS] vector is computed once (without dropout) and kept, keyed by its exact token ids (a
// document is the same tokens in every row and epoch that holds it). Batches then encode
// only documents never seen before and upload the rest as constants.
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

static DocCache *doc_cache_new(int d) {
    DocCache *dc = hyp_calloc(1, sizeof *dc);
    dc->d = d;
    cache_grow(dc);
    return dc;
}
static void doc_cache_free(DocCache *dc) {
    if (!dc) return;
    free(dc->vecs); free(dc->ids); free(dc->off); free(dc->slots);
    free(dc);
}

// Cache entries of `rows` documents given as token ids and masks (rows, L) on the host: cached
// ones found, new ones encoded (one no-grad, no-dropout forward over the new documents only)
// and added. entry: (rows) out.
static void doc_cache_fill(Ctx *c, DocCache *dc, const Bert *dbert, Pooling pool, const int32_t *d_ids,
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
static Tensor *doc_cache_vectors(Ctx *c, DocCache *dc, const Bert *dbert, Pooling pool, const TrainBatch *b) {
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
static float *doc_cache_texts(DocCache *dc, Device dev, const Bert *dbert, Pooling pool, const Tokenizer *tok,
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

StepLosses train_forward_dist(Ctx *c, const TrainModel *m, const TrainBatch *b, float w_mmse, float w_ce,
                              Comm *comm, bool cross_device_negatives) {
    int B = b->n_queries, n = b->n_items;
    bool xdev = cross_device_negatives && comm && comm->world > 1;
    const Bert *qbert = m->hypencoder ? &m->hyp.query_bert : &m->be.query_bert;
    const Bert *dbert = m->hypencoder ? m->hyp.doc_bert : m->be.doc_bert;
    check_ids(b->q_ids, (long)B * b->q_len, qbert->word_emb->shape[0]);   // queries first, as the model reads them
    check_ids(b->d_ids, (long)B * n * b->d_len, dbert->word_emb->shape[0]);
    bool checks = op_set_device_index_checks(false);
    DeviceBatch db = upload_batch(c, b);
    Tensor *qi = db.qi, *qm = db.qm, *di = db.di, *dm = db.dm;
    Tensor *scores, *S;
    if (m->hypencoder) {
        QNet q = hypencoder_queries(c, &m->hyp, qi, qm);
        Tensor *D = m->doc_cache ? doc_cache_vectors(c, m->doc_cache, dbert, m->hyp.cfg.pooling, b)
                                 : hypencoder_docs(c, &m->hyp, di, dm);   // (B*n, d)
        int d = D->shape[1];
        Tensor *Dn = op_reshape(c, D, HYP_SHAPE(B, n, d));
        Tensor *P = op_reshape(c, op_slice(c, Dn, 1, 0, 1), HYP_SHAPE(B, d));   // the positives
        scores = qnet_score(c, &q, Dn);                                   // (B, n)
        S = qnet_score_shared(c, &q, xdev ? gather_positives(c, P, comm) : P);   // (B, B [* world])
    } else {
        Tensor *qv = biencoder_queries(c, &m->be, qi, qm);
        Tensor *D = m->doc_cache ? doc_cache_vectors(c, m->doc_cache, dbert, m->be.pooling, b) : biencoder_docs(c, &m->be, di, dm);
        int d = D->shape[1];
        Tensor *Dn = op_reshape(c, D, HYP_SHAPE(B, n, d));
        Tensor *P = op_reshape(c, op_slice(c, Dn, 1, 0, 1), HYP_SHAPE(B, d));
        scores = biencoder_score(c, qv, Dn);
        S = biencoder_score_shared(c, qv, xdev ? gather_positives(c, P, comm) : P);
    }
    op_set_device_index_checks(checks);
    StepLosses l;
    l.mmse = loss_margin_mse_dev(c, scores, db.mmse_consts);
    l.ce = loss_inbatch_ce_offset(c, S, xdev ? comm->rank * B : 0);
    l.total = op_add(c, op_scale(c, l.mmse, w_mmse), op_scale(c, l.ce, w_ce));
    return l;
}

StepLosses train_forward(Ctx *c, const TrainModel *m, const TrainBatch *b, float w_mmse, float w_ce) {
    return train_forward_dist(c, m, b, w_mmse, w_ce, NULL, false);
}

// ---------------------------------------------------------------- gradient buckets
// Data-parallel gradient averaging in buckets of consecutive parameters that start as soon
// as backward has finished writing them (on NCCL the all-reduce overlaps the rest of the
// backward pass; host engines complete each bucket as it is started). A parameter's
// gradient is final once the backward of the first tape node that reads it has run.
typedef struct GradBuckets {
    Comm *comm;
    ParamSet *ps;
    Device dev;
    int n;                 // buckets
    int *first, *last;     // parameter index range [first, last] of each bucket
    int *ready;            // per bucket: the node index after whose backward it is final
    int *order;            // buckets by ready descending (the order backward reaches them)
    int next;              // next entry of order to launch
    int *min_use;          // per parameter: first tape node reading it (INT_MAX: none)
    size_t *off;           // per parameter: offset in ps->grad
    int failed;
    double seconds;        // time spent starting bucket all-reduces this step
} GradBuckets;

static void buckets_init(GradBuckets *g, ParamSet *ps, Comm *comm, Device dev, double bucket_mb) {
    memset(g, 0, sizeof *g);
    g->comm = comm;
    g->ps = ps;
    g->dev = dev;
    g->first = hyp_malloc(ps->n * sizeof(int));
    g->last = hyp_malloc(ps->n * sizeof(int));
    g->ready = hyp_malloc(ps->n * sizeof(int));
    g->order = hyp_malloc(ps->n * sizeof(int));
    g->min_use = hyp_malloc(ps->n * sizeof(int));
    g->off = hyp_malloc(ps->n * sizeof(size_t));
    size_t cap = (size_t)(bucket_mb * (1u << 20) / sizeof(float)), off = 0, in = 0;
    for (int i = 0; i < ps->n; i++) {
        g->off[i] = off;
        size_t m = tensor_numel(ps->params[i]);
        if (g->n == 0 || (in > 0 && in + m > cap)) {
            g->first[g->n] = i;
            g->n++;
            in = 0;
        }
        g->last[g->n - 1] = i;
        in += m;
        off += m;
    }
}

static void buckets_free(GradBuckets *g) {
    free(g->first); free(g->last); free(g->ready); free(g->order); free(g->min_use); free(g->off);
}

static int param_of(const GradBuckets *g, const Tensor *x) {
    if (!x || !x->name || x->dtype != HYP_F32) return -1;
    const float *p = x->data;
    if (p < g->ps->data || p >= g->ps->data + g->ps->numel) return -1;
    size_t off = (size_t)(p - g->ps->data);
    int lo = 0, hi = g->ps->n - 1;
    while (lo < hi) {   // last parameter whose offset <= off
        int mid = (lo + hi + 1) / 2;
        if (g->off[mid] <= off) lo = mid; else hi = mid - 1;
    }
    return g->off[lo] == off ? lo : -1;
}

static int by_ready_desc(const void *a, const void *b, void *u) {
    const int *r = u, x = *(const int *)a, y = *(const int *)b;
    return r[x] != r[y] ? (r[x] < r[y] ? 1 : -1) : x - y;
}

// Before the last micro-batch's backward: when each bucket becomes final.
static void buckets_plan(GradBuckets *g, const Tape *tape) {
    for (int i = 0; i < g->ps->n; i++) g->min_use[i] = INT_MAX;
    for (int k = 0; k < tape->n; k++)
        for (int j = 0; j < tape->nodes[k].n_in; j++) {
            int p = param_of(g, tape->nodes[k].in[j]);
            if (p >= 0 && g->min_use[p] == INT_MAX) g->min_use[p] = k;
        }
    for (int b = 0; b < g->n; b++) {
        g->ready[b] = INT_MAX;
        for (int p = g->first[b]; p <= g->last[b]; p++)
            if (g->min_use[p] < g->ready[b]) g->ready[b] = g->min_use[p];
        g->order[b] = b;
    }
    qsort_r(g->order, (size_t)g->n, sizeof(int), by_ready_desc, g->ready);
    g->next = 0;
    g->failed = 0;
    g->seconds = 0;
}

static void buckets_launch(Ctx *c, int done_from, void *u) {
    (void)c;
    GradBuckets *g = u;
    while (g->next < g->n && g->ready[g->order[g->next]] >= done_from) {
        int b = g->order[g->next++];
        size_t off = g->off[g->first[b]], end = g->last[b] + 1 < g->ps->n ? g->off[g->last[b] + 1] : g->ps->numel;
        double t0 = hyp_now();
        if (!g->failed && comm_allreduce_async(g->comm, g->ps->grad + off, end - off, COMM_MEAN, g->dev)) g->failed = 1;
        g->seconds += hyp_now() - t0;
    }
}

// ---------------------------------------------------------------- run state
typedef struct Trainer {
    Config cfg;
    char *cfg_text;
    const TrainOptions *opt;
    Comm *comm;
    bool root;
    Device dev;
    TrainModel m;
    ModelConfig mc;
    AdamW *adam;
    LRSchedule sched;
    Loader *loader;
    TrainBatch batch;
    Ctx *ctx;
    char **vocab;
    int n_vocab;
    bool lowercase;
    Tokenizer *tok;
    Corpus *val_corpus, *val_queries;
    DocStore *val_store;         // model.freeze_encoder: the validation corpus encoded once (the encoder never changes)
    TrecQrels *qrels;
    FILE *metrics;
    CkptState st;
    double last_eval[3];
} Trainer;

static int fail(const char *what) {
    fprintf(stderr, "hyp train: %s%s%s\n", what ? what : "", what ? ": " : "", hyp_last_error());
    return 1;
}

static bool is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

// ModelConfig for best.h5 from our encoder configs.
static void fill_model_config(Trainer *t, const BertConfig *bc) {
    ModelConfig *mc = &t->mc;
    memset(mc, 0, sizeof *mc);
    mc->kind = t->m.hypencoder ? MODEL_HYPENCODER : MODEL_BIENCODER;
    HFBertConfig *h = &mc->bert;
    h->hidden_size = bc->hidden;
    h->num_hidden_layers = bc->layers;
    h->num_attention_heads = bc->heads;
    h->intermediate_size = bc->ffn;
    h->vocab_size = bc->vocab_size;
    h->max_position_embeddings = bc->max_positions;
    h->type_vocab_size = bc->type_vocab_size;
    h->pad_token_id = bc->pad_token_id;
    h->layer_norm_eps = bc->ln_eps;
    snprintf(h->hidden_act, sizeof h->hidden_act, "%s", hf_activation_name(bc->act));
    snprintf(mc->bert_prefix, sizeof mc->bert_prefix, "query_encoder.transformer.");
    mc->shared_encoder = t->cfg.model.shared_encoder;
    if (t->m.hypencoder) {
        int L = t->cfg.model.qnet_layers;
        mc->n_dims = L + 2;
        for (int i = 0; i <= L; i++) mc->vector_dimensions[i] = bc->hidden;
        mc->vector_dimensions[L + 1] = 1;
        snprintf(mc->activation_type, sizeof mc->activation_type, "relu");
        snprintf(mc->passage_pooling, sizeof mc->passage_pooling, "%s", pooling_name(t->m.hyp.cfg.pooling));
    }
}

// Copy the BERT (and, when names and shapes match, the hyperhead) of a model file into
// our parameters: our "query_encoder.transformer.X" / "passage_encoder.transformer.X"
// take the source's own name, or its BERT prefix + X.
static int init_from_model(Trainer *t, const Model *src) {
    int copied = 0, bert_total = 0;
    for (int i = 0; i < t->m.ps->n; i++) {
        Tensor *p = t->m.ps->params[i];
        const char *rest = NULL;
        if (!strncmp(p->name, "query_encoder.transformer.", 26)) rest = p->name + 26;
        else if (!strncmp(p->name, "passage_encoder.transformer.", 28)) rest = p->name + 28;
        if (rest) bert_total++;
        Tensor *s = paramset_get(src->ps, p->name);
        char alt[512];
        if (!s && rest) {
            snprintf(alt, sizeof alt, "%s%s", src->mc.kind == MODEL_BERT ? src->mc.bert_prefix : "query_encoder.transformer.", rest);
            s = paramset_get(src->ps, alt);
        }
        if (!s) {
            if (rest && !strstr(rest, "pooler.")) {
                hyp_set_error("%s: no parameter for %s", src->path, p->name);
                return -1;
            }
            continue;
        }
        if (!same_shape(s, p)) {
            char a[64], b[64];
            hyp_set_error("%s: %s has shape %s, the model needs %s", src->path, s->name, shape_str(s, a, sizeof a),
                          shape_str(p, b, sizeof b));
            return -1;
        }
        float *h = hyp_malloc(tensor_bytes(s));
        tensor_to_host(s, h);
        tensor_from_host(p, h);
        free(h);
        copied++;
    }
    if (t->root)
        fprintf(stderr, "hyp train: initialised %d of %d tensors from %s (%d BERT tensors)\n", copied, t->m.ps->n,
                src->path, bert_total);
    return 0;
}

static int build_model(Trainer *t) {
    Config *cfg = &t->cfg;
    t->m.hypencoder = !strcmp(cfg->model.kind, "hypencoder");
    if (!t->m.hypencoder && strcmp(cfg->model.kind, "biencoder")) {
        hyp_set_error("model.kind = %s (hypencoder or biencoder)", cfg->model.kind);
        return -1;
    }
    if (cfg->model.freeze_encoder && !t->m.hypencoder) {
        hyp_set_error("model.freeze_encoder = true with model.kind = biencoder: a BE-Base is all BERT, nothing would train");
        return -1;
    }
    BertConfig bc = bert_base_config();
    Model *src = NULL;
    if (cfg->model.init_from[0]) {
        if (!(src = model_load(cfg->model.init_from, HYP_CPU))) return -1;
        if (model_bert_config(&src->mc, &bc, cfg->model.init_from)) { model_free(src); return -1; }
        // The init file decides the sizes: the resolved config states them, not the bert_* keys given.
        cfg->model.bert_layers = bc.layers;
        cfg->model.bert_hidden = bc.hidden;
        cfg->model.bert_heads = bc.heads;
        cfg->model.bert_ffn = bc.ffn;
        cfg->model.bert_vocab = bc.vocab_size;
        cfg->model.bert_max_positions = bc.max_positions;
        if (!strcmp(cfg->model.pooling, "auto"))
            snprintf(cfg->model.pooling, sizeof cfg->model.pooling, "%s", src->pooling == POOL_MEAN ? "mean" : "cls");
        if (src->vocab && !t->vocab) {
            t->vocab = hyp_malloc(src->n_vocab * sizeof(char *));
            for (int i = 0; i < src->n_vocab; i++) t->vocab[i] = hyp_strdup(src->vocab[i]);
            t->n_vocab = src->n_vocab;
            t->lowercase = src->lowercase;
        }
    } else {
        bc.layers = cfg->model.bert_layers;
        bc.hidden = cfg->model.bert_hidden;
        bc.heads = cfg->model.bert_heads;
        bc.ffn = cfg->model.bert_ffn;
        bc.vocab_size = cfg->model.bert_vocab;
        bc.max_positions = cfg->model.bert_max_positions;
    }
    bc.dropout = cfg->model.freeze_encoder ? 0.0f : (float)cfg->model.dropout;   // a frozen BERT is a fixed function
    bc.init_std = (float)cfg->model.init_std;
    bc.pooler = false;
    if (t->vocab && bc.vocab_size != t->n_vocab) {
        hyp_set_error("the vocab has %d tokens but the BERT has %d word embeddings (model.bert_vocab)", t->n_vocab, bc.vocab_size);
        model_free(src);
        return -1;
    }
    if (!strcmp(cfg->model.pooling, "auto")) snprintf(cfg->model.pooling, sizeof cfg->model.pooling, "cls");
    Pooling pool = POOL_CLS;
    pooling_parse(cfg->model.pooling, &pool);   // the config checked it is cls or mean
    t->m.ps = paramset_new(t->dev);
    if (t->m.hypencoder) {
        HypencoderConfig hc = hypencoder_config_default(cfg->model.qnet_layers);
        hc.bert = bc;
        hc.shared_encoder = cfg->model.shared_encoder;
        hc.pooling = pool;
        hypencoder_register(&t->m.hyp, t->m.ps, &hc);
    } else {
        biencoder_register(&t->m.be, t->m.ps, &bc, cfg->model.shared_encoder);
        t->m.be.pooling = pool;
    }
    paramset_finalize(t->m.ps);
    if (t->m.hypencoder) hypencoder_init(&t->m.hyp, (uint64_t)cfg->train.seed);
    else biencoder_init(&t->m.be, (uint64_t)cfg->train.seed);
    int rc = src ? init_from_model(t, src) : 0;
    model_free(src);
    fill_model_config(t, &bc);
    if (cfg->model.freeze_encoder) {
        // BERT fixed: its parameters require no grad, so no BERT op is taped (no BERT backward),
        // AdamW skips them, and document vectors come from the cache.
        for (int i = 0; i < t->m.ps->n; i++)
            if (adamw_param_is_encoder(t->m.ps->params[i]->name)) t->m.ps->params[i]->requires_grad = false;
        t->m.doc_cache = doc_cache_new(bc.hidden);
    }
    return rc;
}

static int read_vocab(Trainer *t) {
    if (!t->cfg.data.vocab[0]) return 0;
    Tokenizer *tok = tok_load(t->cfg.data.vocab, true);
    if (!tok) return -1;
    t->n_vocab = tok_vocab_size(tok);
    t->vocab = hyp_malloc(t->n_vocab * sizeof(char *));
    for (int i = 0; i < t->n_vocab; i++) t->vocab[i] = hyp_strdup(tok_token_str(tok, i));
    t->lowercase = true;
    tok_free(tok);
    return 0;
}

// The training data: a shard directory, or a JSONL file pretokenized once into OUT/shards.
static int open_loader(Trainer *t) {
    const char *train = t->cfg.data.train;
    char shards[4096];
    if (!train[0]) { hyp_set_error("data.train is not set"); return -1; }
    if (is_dir(train)) {
        snprintf(shards, sizeof shards, "%s", train);
    } else {
        snprintf(shards, sizeof shards, "%s/shards", t->opt->out_dir);
        if (t->root && !is_dir(shards)) {
            if (!t->tok) { hyp_set_error("data.train is JSONL: pretokenizing needs a vocab (data.vocab or model.init_from)"); return -1; }
            PretokOptions po = pretok_options_default();
            po.tok = t->tok;
            po.vocab_name = t->cfg.data.vocab[0] ? t->cfg.data.vocab : t->cfg.model.init_from;
            po.in_path = train;
            po.out_dir = shards;
            po.query_max_len = t->cfg.data.query_max_len;
            po.doc_max_len = t->cfg.data.doc_max_len;
            po.progress = !t->opt->quiet;
            if (pretokenize(&po)) return -1;
        }
        if (t->comm && comm_barrier(t->comm)) return -1;
    }
    LoaderOptions lo = loader_options_default();
    lo.seed = (uint64_t)t->cfg.train.seed;
    lo.batch_size = t->cfg.train.batch_size;
    lo.num_negatives = t->cfg.data.num_negatives;
    lo.rank = t->comm ? t->comm->rank : 0;
    lo.world_size = t->comm ? t->comm->world : 1;
    lo.query_max_len = t->cfg.data.query_max_len;
    lo.doc_max_len = t->cfg.data.doc_max_len;
    lo.check_tok = t->tok;
    t->loader = loader_open(shards, &lo);
    return t->loader ? 0 : -1;
}

// Where validation scores documents: eval.device, "auto" = the training device.
static Device validation_device(const Trainer *t) {
    const char *d = t->cfg.eval.device;
    return !strcmp(d, "cpu") ? HYP_CPU : !strcmp(d, "cuda") ? HYP_CUDA : t->dev;
}

static int open_validation(Trainer *t) {
    const Config *c = &t->cfg;
    if (c->eval.every <= 0 || !c->eval.corpus[0]) return 0;
    if (!c->eval.queries[0] || !c->eval.qrels[0]) { hyp_set_error("eval.corpus is set: eval.queries and eval.qrels are needed too"); return -1; }
    if (!t->tok) { hyp_set_error("validation needs a vocab (data.vocab or model.init_from)"); return -1; }
    if (validation_device(t) == HYP_CUDA && !hyp_cuda_available()) {
        hyp_set_error("eval.device = %s: validation on cuda, but no GPU is usable: %s", c->eval.device,
                      hyp_cuda_why_unavailable());
        return -1;
    }
    if (!(t->val_corpus = corpus_read(c->eval.corpus))) return -1;
    if (!(t->val_queries = corpus_read(c->eval.queries))) return -1;
    if (!(t->qrels = trec_qrels_read(c->eval.qrels))) return -1;
    return 0;
}

// ---------------------------------------------------------------- validation
// The selection metric eval.metric, then the metrics every validation reports.
#define VAL_METRICS 3
static void validation_metrics(const Trainer *t, const char *names[VAL_METRICS]) {
    names[0] = t->cfg.eval.metric;
    names[1] = "nDCG@10";
    names[2] = "RR@10";
}

// Encode the validation corpus with the current model (where its weights are), search it
// exhaustively for every validation query with the search driver on eval.device (the store
// goes to that device once per sweep), evaluate with eval/: out = the validation_metrics.
static int validate(Trainer *t, double out[VAL_METRICS]) {
    double t0 = hyp_now();
    SearchModel sm = t->m.hypencoder ? search_model_hypencoder(&t->m.hyp, t->dev) : search_model_biencoder(&t->m.be, t->dev);
    sm.query_max_len = t->cfg.data.query_max_len;
    sm.doc_max_len = t->cfg.data.doc_max_len;
    sm.label = "(training)";
    Corpus *cc = t->val_corpus, *qq = t->val_queries;
    DocStore *store = t->val_store;
    if (!store) {
        EncodeOptions eo = {.batch = 64, .max_len = t->cfg.data.doc_max_len, .nonfinite_null = true, .what = "documents"};
        float *D = t->m.doc_cache   // (N, d)
                       ? doc_cache_texts(t->m.doc_cache, t->dev, sm.doc_bert, sm.pooling, t->tok, (const char *const *)cc->texts,
                                         cc->n, t->cfg.data.doc_max_len)
                       : encode_side(&sm, SIDE_DOCUMENT, t->tok, (const char *const *)cc->texts, cc->n, &eo);
        if (!D) return -1;
        store = docstore_from_memory(D, cc->n, sm.doc_bert->cfg.hidden, (const char *const *)cc->ids, STORE_F32);
        free(D);
        if (!store) return -1;
        if (t->m.doc_cache) t->val_store = store;   // frozen: the same vectors at every sweep
    }
    TrecRun *run = trec_run_new("hyp-val");
    SearchOptions so = search_options_default();
    so.k = t->cfg.eval.k;
    so.batch = 32;
    so.query_max_len = t->cfg.data.query_max_len;
    so.device = validation_device(t);
    SearchRunSink sink = {run, (const char *const *)qq->ids, store};
    int rc = search_run(&sm, t->tok, store, (const char *const *)qq->ids, (const char *const *)qq->texts, qq->n, &so,
                        search_emit_run, &sink, NULL);
    if (store != t->val_store) docstore_free(store);
    if (rc) { trec_run_free(run); return -1; }
    TrecMeasureSet *ms = trec_measures_new();
    const char *names[VAL_METRICS];
    validation_metrics(t, names);
    for (int i = 0; i < VAL_METRICS; i++)
        if (trec_measures_add(ms, names[i])) { trec_measures_free(ms); trec_run_free(run); return -1; }
    TrecEvalOptions eopt = trec_eval_default_options();
    eopt.complete = true;   // a query the run misses counts 0
    TrecEvalResult *r = trec_evaluate(t->qrels, run, ms, &eopt);
    trec_measures_free(ms);
    trec_run_free(run);
    if (!r) return -1;
    for (int i = 0; i < VAL_METRICS; i++) out[i] = trec_result_summary(r, names[i]);
    trec_result_free(r);
    if (!t->opt->quiet)
        fprintf(stderr, "eval step %ld | %s %.4f | %s %.4f | %s %.4f | %d queries x %d docs | %.1f s\n",
                (long)t->st.step, names[0], out[0], names[1], out[1], names[2], out[2], qq->n, cc->n, hyp_now() - t0);
    return 0;
}

// ---------------------------------------------------------------- checkpoints
static CkptModelInfo model_info(const Trainer *t) {
    return (CkptModelInfo){.model = &t->mc, .vocab = (const char *const *)t->vocab, .n_vocab = t->n_vocab,
                           .lowercase = t->lowercase, .query_max_len = t->cfg.data.query_max_len,
                           .doc_max_len = t->cfg.data.doc_max_len,
                           .pooling = t->m.hypencoder ? t->m.hyp.cfg.pooling : t->m.be.pooling};
}

static int save_checkpoint(Trainer *t, char **written) {
    LoaderState ls = loader_state(t->loader);
    int64_t cur[LOADER_STATE_NFIELDS];
    memcpy(cur, &ls, sizeof cur);
    t->st.optim_step = t->adam->step;
    t->st.sched_step = t->adam->step;
    t->st.seed = t->ctx->seed;
    t->st.rng_offset = t->ctx->rng_offset;
    t->st.cursor = cur;
    t->st.n_cursor = LOADER_STATE_NFIELDS;
    CkptModelInfo mi = model_info(t);
    int rc = checkpoint_save_run(t->opt->out_dir, t->m.ps, t->adam, &t->st, t->cfg_text, &mi, t->cfg.train.keep_last, written);
    t->st.cursor = NULL;
    t->st.n_cursor = 0;
    return rc;
}

// A failed write of a checkpoint or best.h5 (nothing of the run folder changed). Returns
// true when the run goes on (train.on_save_error=continue and more steps to come).
static bool save_failed(const Trainer *t, const char *what, bool last) {
    bool cont = !strcmp(t->cfg.train.on_save_error, "continue"), go_on = cont && !last;
    fprintf(stderr, "hyp train: step %ld: cannot write %s: %s\n"
            "hyp train: the run folder %s is as it was before this save (existing checkpoints, best.h5 and `latest` "
            "untouched); %s\n", (long)t->st.step, what, hyp_last_error(), t->opt->out_dir,
            go_on ? "continuing (train.on_save_error=continue): the next save tries again"
            : cont ? "no later save to retry: stopping (resume with --resume auto)"
                   : "stopping (resume with --resume auto; train.on_save_error=continue retries at the next save instead)");
    return go_on;
}

// Every rank learns whether any rank raised `flag` (one all-reduce; world 1: flag itself).
static int any_rank(Trainer *t, bool flag, bool *any) {
    *any = flag;
    if (t->comm->world <= 1) return 0;
    double s;
    if (comm_sum_f64(t->comm, flag ? 1.0 : 0.0, &s)) return -1;
    *any = s > 0;
    return 0;
}

// ---------------------------------------------------------------- SIGINT / SIGTERM
// The first signal asks the loop to stop after the current step and write a checkpoint
// (train_run returns TRAIN_STOPPED); a second one ends the process at once, as the signal's
// default action does.
static volatile sig_atomic_t g_stop_signal;
static void on_stop_signal(int sig) {
    if (g_stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_signal = sig;
    static const char msg[] = "\nhyp train: signal received: stopping after this step with a checkpoint "
                              "(a second signal stops at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}
typedef struct { struct sigaction intr, term; } SavedSignals;
static void signals_catch(SavedSignals *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old->intr);
    sigaction(SIGTERM, &sa, &old->term);
}
static void signals_restore(const SavedSignals *old) {
    sigaction(SIGINT, &old->intr, NULL);
    sigaction(SIGTERM, &old->term, NULL);
}

static void log_metrics(Trainer *t, const char *json) {
    if (!t->metrics) return;
    fprintf(t->metrics, "%s\n", json);
    fflush(t->metrics);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e9) { snprintf(buf, n, "?"); return; }
    long x = (long)s;
    if (x >= 86400) snprintf(buf, n, "%ldd %ldh", x / 86400, x % 86400 / 3600);
    else if (x >= 3600) snprintf(buf, n, "%ldh %ldm", x / 3600, x % 3600 / 60);
    else snprintf(buf, n, "%ldm %lds", x / 60, x % 60);
}

// ---------------------------------------------------------------- the run
static int setup(Trainer *t, const TrainOptions *o) {
    t->opt = o;
    t->dev = o->device;
    t->st = ckpt_state_empty();
    for (int i = 0; i < 3; i++) t->last_eval[i] = NAN;
    config_init(&t->cfg);
    struct stat sb;
    if (stat(o->out_dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        hyp_set_error("--out %s: exists and is not a directory (--out names the run folder: a new or existing directory)",
                      o->out_dir);
        return fail(NULL);
    }
    char *resume_path = NULL;
    if (o->resume) {
        if (!strcmp(o->resume, "auto")) {
            resume_path = checkpoint_find_latest(o->out_dir, NULL);
            if (!resume_path && o->config_path)   // nothing to resume: a fresh start
                fprintf(stderr, "hyp train: no checkpoint in %s (%s): starting fresh\n", o->out_dir, hyp_last_error());
            else if (!resume_path) return fail("--resume auto");
        } else {
            resume_path = hyp_strdup(o->resume);
        }
    }
    if (resume_path) {
        char *text = checkpoint_read_config(resume_path);
        if (!text || config_parse_text(&t->cfg, text, resume_path)) { free(text); free(resume_path); return fail(NULL); }
        free(text);
    } else if (!o->config_path) {
        hyp_set_error("--config is required (or --resume)");
        return fail(NULL);
    } else if (config_parse_file(&t->cfg, o->config_path)) {
        return fail(NULL);
    }
    for (int i = 0; i < o->n_sets; i++)
        if (config_set(&t->cfg, o->sets[i])) { free(resume_path); return fail(NULL); }
    if (config_check(&t->cfg)) { free(resume_path); return fail(NULL); }
    t->cfg_text = config_resolved_text(&t->cfg);

    CommOptions co = {.device = t->dev};
    if (!(t->comm = comm_init(t->cfg.dist.backend, &co))) { free(resume_path); return fail("dist.backend"); }
    t->root = t->comm->rank == 0;
    if (t->root) {
        if (mkdir(o->out_dir, 0755) && errno != EEXIST) {
            hyp_set_error("%s: cannot create: %s", o->out_dir, strerror(errno));
            free(resume_path);
            return fail(NULL);
        }
        // Leftovers of a killed run (ckpt-*.h5.tmp, best.h5.tmp, latest.tmp): ours to remove.
        if (checkpoint_clean_tmp(o->out_dir) < 0) { free(resume_path); return fail(NULL); }
        char p[4096];
        snprintf(p, sizeof p, "%s/metrics.jsonl", o->out_dir);
        t->metrics = fopen(p, "a");
    }
    if (read_vocab(t) || build_model(t)) { free(resume_path); return fail("model"); }
    if (t->cfg.model.init_from[0]) {   // now with the init file's BERT sizes
        free(t->cfg_text);
        t->cfg_text = config_resolved_text(&t->cfg);
    }
    if (t->root) {
        if (!o->quiet) fprintf(stderr, "hyp train: resolved config\n%s", t->cfg_text);
        if (!o->quiet) fprintf(stderr, "hyp train: model: %s, %zu parameters\n", t->cfg.model.kind, t->m.ps->numel);
        char p[4096];
        snprintf(p, sizeof p, "%s/config.ini", o->out_dir);
        FILE *f = fopen(p, "w");
        if (f) { fputs(t->cfg_text, f); fclose(f); }
    }
    if (t->vocab) {
        size_t len = 0;
        for (int i = 0; i < t->n_vocab; i++) len += strlen(t->vocab[i]) + 1;
        char *text = hyp_malloc(len + 1), *p = text;
        for (int i = 0; i < t->n_vocab; i++) p += sprintf(p, "%s\n", t->vocab[i]);
        t->tok = tok_from_vocab_text(text, len, "vocab", t->lowercase);
        free(text);
        if (!t->tok) { free(resume_path); return fail(NULL); }
    }
    AdamWConfig ac = adamw_config_default();
    ac.beta1 = t->cfg.train.adam_beta1;
    ac.beta2 = t->cfg.train.adam_beta2;
    ac.eps = t->cfg.train.adam_eps;
    ac.weight_decay = t->cfg.train.weight_decay;
    ac.max_grad_norm = t->cfg.train.max_grad_norm;
    ac.head_lr_mult = t->cfg.train.head_lr > 0 && t->cfg.train.lr > 0 ? t->cfg.train.head_lr / t->cfg.train.lr : 1.0;
    t->adam = adamw_new(t->m.ps, &ac);
    SchedKind sk;
    if (sched_parse(t->cfg.train.schedule, &sk)) { hyp_set_error("train.schedule = %s", t->cfg.train.schedule); free(resume_path); return fail(NULL); }
    t->sched = (LRSchedule){.kind = sk, .lr = t->cfg.train.lr, .warmup_steps = t->cfg.train.warmup_steps,
                            .max_steps = t->cfg.train.max_steps};
    t->ctx = ctx_new(t->dev);
    t->ctx->training = true;
    t->ctx->matmul_precision = config_precision(&t->cfg, t->dev);   // train.precision
    t->ctx->params = t->m.ps;   // bf16 GEMMs read its per-step bf16 copy
    t->ctx->seed = (uint64_t)t->cfg.train.seed;
    if (open_loader(t) || open_validation(t)) { free(resume_path); return fail("data"); }
    if (resume_path) {
        CkptState st;
        if (checkpoint_load(resume_path, t->m.ps, t->adam, &st, NULL)) { free(resume_path); return fail("resume"); }
        if (st.n_cursor != LOADER_STATE_NFIELDS) {
            hyp_set_error("%s: /state/cursor has %d fields, the loader needs %d", resume_path, st.n_cursor, LOADER_STATE_NFIELDS);
            ckpt_state_free(&st);
            free(resume_path);
            return fail("resume");
        }
        LoaderState ls;
        memcpy(&ls, st.cursor, sizeof ls);
        if (loader_restore(t->loader, &ls)) { ckpt_state_free(&st); free(resume_path); return fail("resume"); }
        t->ctx->seed = st.seed;
        t->ctx->rng_offset = st.rng_offset;
        t->st.step = st.step;
        t->st.best_metric = st.best_metric;
        t->st.best_step = st.best_step;
        t->st.lr = st.lr;
        ckpt_state_free(&st);
        if (t->root) fprintf(stderr, "hyp train: resumed from %s at step %ld\n", resume_path, (long)t->st.step);
    }
    free(resume_path);
    return 0;
}

static void teardown(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    ctx_free(t->ctx);
    train_batch_free(&t->batch);
    loader_close(t->loader);
    adamw_free(t->adam);
    if (t->m.doc_cache && t->root && (t->m.doc_cache->hits || t->m.doc_cache->misses))
        fprintf(stderr, "hyp train: frozen encoder: %ld documents encoded, %ld cached vectors reused\n", t->m.doc_cache->misses,
                t->m.doc_cache->hits);
    doc_cache_free(t->m.doc_cache);
    t->m.doc_cache = NULL;
    if (t->m.ps) {
        if (t->m.hypencoder) hypencoder_free(&t->m.hyp);
        else biencoder_free(&t->m.be);
        paramset_free(t->m.ps);
    }
    tok_free(t->tok);
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i]);
    free(t->vocab);
    docstore_free(t->val_store);
    corpus_free(t->val_corpus);
    corpus_free(t->val_queries);
    trec_qrels_free(t->qrels);
    free(t->cfg_text);
    if (t->comm) comm_free(t->comm);
}

// Validate, log, and keep best.h5 (best selection metric among steps <= select_within).
static int eval_and_select(Trainer *t) {
    double v[VAL_METRICS] = {NAN, NAN, NAN};
    int rc = 0;
    if (t->root) {
        rc = validate(t, v);
        if (!rc) {
            memcpy(t->last_eval, v, sizeof v);
            long sw = t->cfg.eval.select_within;
            bool eligible = sw <= 0 || t->st.step <= sw;
            double prev_best = t->st.best_metric;
            int64_t prev_step = t->st.best_step;
            if (eligible && (isnan(t->st.best_metric) || v[0] > t->st.best_metric)) {
                t->st.best_metric = v[0];
                t->st.best_step = t->st.step;
                char p[4096];
                snprintf(p, sizeof p, "%s/best.h5", t->opt->out_dir);
                CkptModelInfo mi = model_info(t);
                if (checkpoint_save_model(p, t->m.ps, &mi, t->cfg_text, &t->st)) {
                    t->st.best_metric = prev_best;   // the next validation tries again
                    t->st.best_step = prev_step;
                    if (!save_failed(t, "best.h5", t->st.step == t->cfg.train.max_steps)) rc = -2;
                }
            }
            const char *names[VAL_METRICS];
            validation_metrics(t, names);
            char js[512];
            snprintf(js, sizeof js, "{\"step\": %ld, \"eval\": {\"%s\": %.6f, \"%s\": %.6f, \"%s\": %.6f}, "
                     "\"best_step\": %ld, \"best\": %.6f}", (long)t->st.step, names[0], v[0], names[1], v[1], names[2],
                     v[2], (long)t->st.best_step, t->st.best_metric);
            log_metrics(t, js);
        }
    }
    if (t->comm->world > 1) {
        double ok = rc ? 1.0 : 0.0, any;
        if (comm_sum_f64(t->comm, ok, &any)) return -1;
        if (any > 0 && !rc) { hyp_set_error("rank 0 stopped (validation failed or best.h5 could not be written)"); rc = -1; }
    }
    return rc;
}

// ---------------------------------------------------------------- what a step leaves on the device
// A step's losses stay on the device (each micro-batch's three loss scalars are copied into
// one device buffer), and so do the gradient norm and the non-finite guard (optim_step_async,
// train.on_nonfinite=stop). The host reads them only when it needs them: for a log line
// (train.log_steps), before validation and checkpoints, at the end; on the CPU, where a read
// is a memcpy, after every step. train.on_nonfinite=skip decides on the host before each
// update, so it reads the losses and the norm every step (optim_step).
typedef struct StepValues {
    float *dev;          // (k, 3) device: total, mmse, ce of each micro-batch
    int k;
    double sums[3];      // their means over the micro-batches (and the ranks) once read
    bool read;           // sums hold this step's values (and the guard has been checked)
} StepValues;

// The losses: one device-to-host copy; under several ranks their mean over the ranks.
static int read_losses(Trainer *t, StepValues *v) {
    const Backend *be = backend_get(t->dev);
    float *h = hyp_malloc((size_t)v->k * 3 * sizeof(float));
    be->synchronize();
    be->copy(h, v->dev, (size_t)v->k * 3 * sizeof(float), COPY_D2H);
    for (int i = 0; i < 3; i++) v->sums[i] = 0;
    for (int micro = 0; micro < v->k; micro++)
        for (int i = 0; i < 3; i++) v->sums[i] += h[micro * 3 + i] / v->k;
    free(h);
    v->read = true;
    if (t->comm->world > 1)
        for (int i = 0; i < 3; i++) {
            double s;
            if (comm_sum_f64(t->comm, v->sums[i], &s)) return -1;
            v->sums[i] = s / t->comm->world;
        }
    return 0;
}

static void nonfinite_message(const Trainer *t, long bad_step, long seen_step, double loss) {
    if (!t->root) return;
    if (bad_step <= 0)
        fprintf(stderr, "hyp train: step %ld: non-finite loss or gradient norm on another rank; stopping. ", seen_step);
    else if (bad_step == seen_step)
        fprintf(stderr, "hyp train: step %ld: non-finite loss (%g) or gradient norm; stopping. ", bad_step, loss);
    else   // the guard is read when a log line, validation or a checkpoint needs the values
        fprintf(stderr, "hyp train: step %ld: non-finite loss or gradient norm (seen after step %ld, when the values "
                "were next read; no update from step %ld on was applied); stopping. ", bad_step, seen_step, bad_step);
    fprintf(stderr, "The last checkpoint in %s is intact (resume with --resume auto; train.on_nonfinite=skip skips "
            "such steps)\n", t->opt->out_dir);
}

// After an optim_step_async step: read the losses and the guard. 0: all finite; 2: a step since
// the last read was not (message printed, t->st.step set back to the step before it: the model
// in memory is that step's); -1: an all-reduce failed.
static int settle(Trainer *t, StepValues *v, OptimStats *os) {
    if (read_losses(t, v)) return -1;
    int64_t offset = t->st.step - t->adam->step, bad_adam = 0;   // trainer step - optimizer step
    bool bad = optim_guard_read(t->adam, os, &bad_adam) == OPTIM_NONFINITE, any_bad;
    if (any_rank(t, bad, &any_bad)) return -1;
    if (!any_bad) return 0;
    long bad_step = bad ? (long)(bad_adam + offset) : 0;
    nonfinite_message(t, bad_step, (long)t->st.step, v->sums[0]);
    if (bad_step > 0) t->st.step = bad_step - 1;
    return 2;
}

int train_run(const TrainOptions *o, TrainSummary *summary) {
    Trainer T = {0}, *t = &T;
    int status = 0;
    if (setup(t, o)) { teardown(t); return 1; }
    const Config *cfg = &t->cfg;
    bool flushed = hyp_cpu_flush_denormals(cfg->train.flush_denormals);
    int k = cfg->train.grad_accum > 0 ? cfg->train.grad_accum : 1;
    long max_steps = cfg->train.max_steps, start = (long)t->st.step;
    long log_every = cfg->train.log_steps > 0 ? cfg->train.log_steps : 1;
    int world = t->comm->world;
    const Backend *be = backend_get(t->dev);
    const bool skip_nonfinite = !strcmp(cfg->train.on_nonfinite, "skip");
    StepValues sv = {.dev = be->alloc((size_t)k * 3 * sizeof(float)), .k = k};
    GradBuckets buckets;
    buckets_init(&buckets, t->m.ps, t->comm, t->dev, cfg->dist.bucket_mb);
    double t_start = hyp_now(), step_time = 0, interval_time = 0;
    long interval_steps = 0;
    // Throughput: padded tokens and model FLOPs (train/flops.h) since the last log line; MFU
    // against the device's peak (CPU: its measured sgemm rate; GPUs: a table), per rank.
    double interval_tokens = 0, interval_flops = 0;
    char peak_what[320];
    const double peak = device_peak_flops(t->dev, peak_what, sizeof peak_what);
    if (t->root && !o->quiet) fprintf(stderr, "hyp train: MFU against %s\n", peak_what);
    bool first_log = true;
    double last_loss = NAN;
    long skipped = 0;
    bool bad_stop = false;   // a failed save that stops the run (set on rank 0)
    SavedSignals saved_signals;
    signals_catch(&saved_signals);
    for (long step = start; step < max_steps; step++) {
        const bool poison = fault_train_step(t->comm->rank, step + 1);   // tests only (fault.h)
        double t0 = hyp_now();
        paramset_zero_grad(t->m.ps);
        sv.read = false;
        for (int micro = 0; micro < k; micro++) {
            if (loader_next(t->loader, &t->batch)) { status = fail("data"); goto done; }
            const StepShape shape = {t->mc.bert.num_hidden_layers, t->mc.bert.hidden_size, t->mc.bert.intermediate_size,
                                     t->m.hypencoder ? cfg->model.qnet_layers : 0, t->batch.n_queries, t->batch.n_items,
                                     t->batch.q_len, t->batch.d_len, cfg->train.ce_weight > 0, cfg->model.freeze_encoder};
            interval_tokens += step_tokens(&shape);
            interval_flops += step_flops(&shape);
            StepLosses l = train_forward_dist(t->ctx, &t->m, &t->batch, (float)cfg->train.margin_mse_weight,
                                              (float)cfg->train.ce_weight, t->comm, cfg->dist.cross_device_negatives);
            if (poison) l.total = op_scale(t->ctx, l.total, NAN);
            be->copy(sv.dev + micro * 3 + 0, l.total->data, sizeof(float), COPY_D2D);
            be->copy(sv.dev + micro * 3 + 1, l.mmse->data, sizeof(float), COPY_D2D);
            be->copy(sv.dev + micro * 3 + 2, l.ce->data, sizeof(float), COPY_D2D);
            Tensor *scaled = k > 1 ? op_scale(t->ctx, l.total, 1.0f / k) : l.total;
            if (world > 1 && micro == k - 1) {   // average buckets as backward finishes them
                buckets_plan(&buckets, t->ctx->tape);
                t->ctx->after_backward_node = buckets_launch;
                t->ctx->after_backward_user = &buckets;
            }
            backward(t->ctx, scaled);
            t->ctx->after_backward_node = NULL;
            ctx_reset(t->ctx);
        }
        double tc = hyp_now();
        if (world > 1) {
            if (!buckets.failed && buckets.next != buckets.n)
                hyp_set_error("internal: only %d of %d gradient buckets were started", buckets.next, buckets.n);
            if (buckets.failed || buckets.next != buckets.n || comm_wait(t->comm)) { status = fail("all-reduce"); goto done; }
        }
        // Gradient all-reduce: bucket launches during backward (host engines reduce there) + the wait.
        double comm_ms = (hyp_now() - tc + (world > 1 ? buckets.seconds : 0)) * 1e3;
        double lr = lr_at(&t->sched, t->adam->step);
        OptimStats os = {0};
        if (skip_nonfinite) {   // decided on the host, before the update
            if (read_losses(t, &sv)) { status = fail("all-reduce"); goto done; }
            if (!isfinite(sv.sums[0]) || optim_step(t->adam, t->m.ps, lr, &os) == OPTIM_NONFINITE) {
                skipped++;
                if (t->root) fprintf(stderr, "hyp train: step %ld: non-finite loss or gradient, step skipped\n", step + 1);
                t->st.step = step + 1;
                continue;
            }
        } else if (optim_step_async(t->adam, t->m.ps, lr, sv.dev, 3L * k) == OPTIM_NONFINITE) {   // lr itself
            int e = settle(t, &sv, &os);   // an earlier non-finite step not yet read is reported first
            if (e < 0) { status = fail("all-reduce"); goto done; }
            if (e == 0) nonfinite_message(t, step + 1, step + 1, sv.sums[0]);
            status = 2;
            goto done;
        }
        t->st.step = step + 1;
        t->st.lr = lr;
        bool last = t->st.step == max_steps;
        bool log_due = t->st.step % log_every == 0 || last;
        bool eval_due = cfg->eval.every > 0 && t->val_corpus && (t->st.step % cfg->eval.every == 0 || last);
        if (!sv.read && (t->dev == HYP_CPU || log_due || eval_due)) {
            int e = settle(t, &sv, &os);
            if (e) { status = e > 0 ? 2 : fail("all-reduce"); goto done; }
        }
        if (sv.read) last_loss = sv.sums[0];
        // Step times add up between log lines; the reads above wait for the device's work.
        interval_time += hyp_now() - t0;
        interval_steps++;
        if (log_due) {
            double dt = interval_time / interval_steps;
            const double tps = interval_tokens * world / interval_time;   // all ranks
            const double mfu = peak > 0 ? interval_flops / interval_time / peak : NAN;
            interval_tokens = interval_flops = 0;
            step_time = first_log ? dt : 0.9 * step_time + 0.1 * dt;
            first_log = false;
            interval_time = 0;
            interval_steps = 0;
            if (t->root) {
                char eta[32];
                fmt_eta(eta, sizeof eta, step_time * (max_steps - t->st.step));
                double qps = (double)cfg->train.batch_size * world * k / dt;
                const double *sums = sv.sums;
                char mfu_txt[32] = "";
                if (isfinite(mfu)) snprintf(mfu_txt, sizeof mfu_txt, " | MFU %.1f%%", mfu * 100);
                if (!o->quiet)
                    fprintf(stderr, "step %ld/%ld | loss %.4f (mmse %.4f, ce %.4f) | lr %.2e | gnorm %.3g | %.0f ms | %.1f q/s | "
                            "%.0f tok/s%s | eta %s\n", (long)t->st.step, max_steps, sums[0], sums[1], sums[2], lr, os.grad_norm,
                            dt * 1e3, qps, tps, mfu_txt, eta);
                char js[640], mfu_js[32];
                if (isfinite(mfu)) snprintf(mfu_js, sizeof mfu_js, "%.4f", mfu);
                else snprintf(mfu_js, sizeof mfu_js, "null");
                snprintf(js, sizeof js, "{\"step\": %ld, \"loss\": %.6g, \"mmse\": %.6g, \"ce\": %.6g, \"lr\": %.6g, "
                         "\"grad_norm\": %.6g, \"ms\": %.2f, \"comm_ms\": %.2f, \"qps\": %.2f, \"tokens_per_s\": %.1f, "
                         "\"mfu\": %s}", (long)t->st.step, sums[0], sums[1], sums[2], lr, os.grad_norm, dt * 1e3, comm_ms, qps,
                         tps, mfu_js);
                log_metrics(t, js);
            }
        }
        if (eval_due) {
            int e = eval_and_select(t);
            if (e) { status = e == -2 ? 1 : fail("validation"); goto done; }
        }
        // Stop on SIGINT / SIGTERM: every rank agrees on this step (one all-reduce).
        bool stop;
        if (any_rank(t, g_stop_signal != 0, &stop)) { status = fail("all-reduce"); goto done; }
        stop = stop && !last;
        bool save_due = (cfg->train.save_steps > 0 && t->st.step % cfg->train.save_steps == 0) || last || stop;
        if (save_due && !sv.read) {   // never checkpoint a model a non-finite step has touched
            int e = settle(t, &sv, &os);
            if (e) { status = e > 0 ? 2 : fail("all-reduce"); goto done; }
            last_loss = sv.sums[0];
        }
        if (save_due) {
            char *written = NULL;
            bool bad = t->root && save_checkpoint(t, &written) != 0, any_bad;
            if (bad && !save_failed(t, "the checkpoint", last || stop)) bad_stop = true;
            // the all-reduce is also the barrier after the save
            if (any_rank(t, bad_stop, &any_bad)) { free(written); status = fail("all-reduce"); goto done; }
            if (any_bad) {
                if (!t->root) fprintf(stderr, "hyp train: rank %d: stopping: rank 0 could not write the checkpoint\n", t->comm->rank);
                free(written);
                status = 1;
                goto done;
            }
            const char *by = g_stop_signal == SIGINT ? "SIGINT" : g_stop_signal == SIGTERM ? "SIGTERM" : "a signal on another rank";
            if (stop && t->root)
                fprintf(stderr, "hyp train: stopped by %s after step %ld; checkpoint %s (continue with --resume auto)\n", by,
                        (long)t->st.step, written ? written : "(none: see above)");
            else if (stop)
                fprintf(stderr, "hyp train: rank %d: stopped by %s after step %ld (rank 0 wrote the checkpoint)\n",
                        t->comm->rank, by, (long)t->st.step);
            free(written);
        }
        if (stop) { status = TRAIN_STOPPED; goto done; }
    }
    if (t->root && !o->quiet)
        fprintf(stderr, "hyp train: done: %ld steps in %.1f s%s; best %s %.4f at step %ld\n", (long)t->st.step - start,
                hyp_now() - t_start, skipped ? " (some skipped)" : "", cfg->eval.metric, t->st.best_metric,
                (long)t->st.best_step);
done:
    signals_restore(&saved_signals);
    hyp_cpu_flush_denormals(flushed);
    buckets_free(&buckets);
    be->free(sv.dev);
    if (summary) {
        summary->steps = (long)t->st.step;
        summary->last_loss = last_loss;
        summary->best_metric = t->st.best_metric;
        summary->best_step = (long)t->st.best_step;
        memcpy(summary->final_metric, t->last_eval, sizeof t->last_eval);
    }
    teardown(t);
    return status;
}
