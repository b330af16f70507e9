// objective.c: the training objective on one batch (objective.h): Margin-MSE against the
// teacher's scores plus in-batch cross-entropy over the positives (reference §5).
#include "train/objective.h"
#include "train/doc_cache.h"
#include "train/comm.h"
#include "train/losses.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

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
