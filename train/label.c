// label.c: teacher labelling of training data (see label.h).
#include "train/label.h"
#include "search/encode.h"
#include "search/store.h"
#include "kernels/elementwise.h"
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 32   // queries whose new documents are encoded together

typedef struct {
    const LabelOptions *o;
    DocStore *ids;          // corpus id -> row (an index over a dummy (N, 1) store)
    int d;                  // teacher vector width
    int32_t *slot;          // (N) row of a document's cached vector, -1 when not encoded yet
    float *vecs;            // (n_cached, d) document vectors of bi-encoder / Hypencoder teachers
    long n_cached, cap_cached;
    bool normalize_docs;
    Ctx *c;
} Labeler;

typedef struct { int32_t doc; long grade; bool judged; float score; } Cand;
typedef struct { Cand *v; int n, cap; } CandList;

static void cand_add(CandList *l, int32_t doc) {
    for (int i = 0; i < l->n; i++) if (l->v[i].doc == doc) return;   // a run may list a document twice
    if (l->n == l->cap) l->v = hyp_realloc(l->v, (size_t)(l->cap = l->cap ? 2 * l->cap : 128) * sizeof(Cand));
    l->v[l->n++] = (Cand){.doc = doc};
}

typedef struct { double score; int32_t doc; } RunPick;
static int by_score_desc(const void *a, const void *b) {
    const RunPick *x = a, *y = b;
    return x->score != y->score ? (x->score < y->score ? 1 : -1) : x->doc - y->doc;
}

// The query's candidates: the run's top `depth`, plus (with qrels) its judged relevant documents.
static int gather(Labeler *L, const char *qid, CandList *cl) {
    const LabelOptions *o = L->o;
    cl->n = 0;
    const Corpus *co = o->corpus;
    if (o->candidates) {
        const TrecRunQuery *rq = trec_run_find(o->candidates, qid);
        if (rq && rq->n) {
            RunPick *p = hyp_malloc(rq->n * sizeof *p);
            for (size_t i = 0; i < rq->n; i++) {
                long r = docstore_find(L->ids, rq->entries[i].docid);
                if (r < 0) {
                    hyp_set_error("%s:%u: query %s: document %s is not in the corpus", trec_run_path(o->candidates),
                                  rq->entries[i].line, qid, rq->entries[i].docid);
                    free(p);
                    return -1;
                }
                p[i] = (RunPick){rq->entries[i].score, (int32_t)r};
            }
            qsort(p, rq->n, sizeof *p, by_score_desc);
            size_t k = o->depth > 0 && (size_t)o->depth < rq->n ? (size_t)o->depth : rq->n;
            for (size_t i = 0; i < k; i++) cand_add(cl, p[i].doc);
            free(p);
        }
    }
    if (o->qrels) {
        // Judged documents: all of them without a run, the relevant ones (a positive the run missed) with one.
        bool any = !o->candidates || cl->n > 0;
        for (int i = 0; i < co->n && any; i++) {
            long rel;
            if (trec_qrels_lookup(o->qrels, qid, co->ids[i], &rel) && (!o->candidates || rel > 0)) cand_add(cl, i);
        }
        for (int i = 0; i < cl->n; i++) cl->v[i].judged = trec_qrels_lookup(o->qrels, qid, co->ids[cl->v[i].doc], &cl->v[i].grade);
    }
    return 0;
}

// Encode the chunk's documents that are not cached yet (bi-encoder / Hypencoder teachers).
static int encode_new(Labeler *L, CandList *cls, int nq, LabelStats *st) {
    const LabelOptions *o = L->o;
    int n_new = 0;
    int32_t *rows = NULL;
    for (int q = 0; q < nq; q++)
        for (int i = 0; i < cls[q].n; i++) {
            int32_t r = cls[q].v[i].doc;
            if (L->slot[r] != -1) continue;   // cached, or already pending in this chunk
            L->slot[r] = -2;
            rows = hyp_realloc(rows, (size_t)(n_new + 1) * sizeof *rows);
            rows[n_new++] = r;
        }
    if (!n_new) return 0;
    float *v = NULL;
    if (o->docs) {   // the teacher's vectors, already encoded
        int32_t *at = hyp_malloc((size_t)n_new * sizeof *at);
        for (int i = 0; i < n_new && at; i++) {
            long r = docstore_find(o->docs, o->corpus->ids[rows[i]]);
            if (r < 0) {
                hyp_set_error("%s: document %s (a candidate) is not in it", docstore_path(o->docs), o->corpus->ids[rows[i]]);
                free(at);
                at = NULL;
            } else at[i] = (int32_t)r;
        }
        if (at) {
            v = hyp_malloc((size_t)n_new * L->d * sizeof(float));
            if (docstore_gather(o->docs, at, n_new, v)) { free(v); v = NULL; }
            free(at);
        }
    } else {
        const char **texts = hyp_malloc((size_t)n_new * sizeof *texts), **names = hyp_malloc((size_t)n_new * sizeof *names);
        for (int i = 0; i < n_new; i++) texts[i] = o->corpus->texts[rows[i]], names[i] = o->corpus->ids[rows[i]];
        const Model *m = o->teacher;
        EncodeOptions eo = {.batch = o->batch, .pooling = m->pooling, .ids = names, .nonfinite_null = true, .what = "documents"};
        v = encode_texts(m, o->tok, texts, n_new, &eo);
        free(texts);
        free(names);
    }
    if (!v) { free(rows); return -1; }
    if (L->normalize_docs) l2_normalize_host(v, (size_t)n_new, L->d);
    if (L->n_cached + n_new > L->cap_cached) {
        while (L->n_cached + n_new > L->cap_cached) L->cap_cached = L->cap_cached ? 2 * L->cap_cached : 1024;
        L->vecs = hyp_realloc(L->vecs, (size_t)L->cap_cached * L->d * sizeof(float));
    }
    memcpy(L->vecs + (size_t)L->n_cached * L->d, v, (size_t)n_new * L->d * sizeof(float));
    for (int i = 0; i < n_new; i++) L->slot[rows[i]] = (int32_t)(L->n_cached + i);
    L->n_cached += n_new;
    st->docs_encoded += n_new;
    free(v);
    free(rows);
    return 0;
}

static Tensor *upload_i32(Ctx *c, const int32_t *x, int b, int t) {
    Tensor *y = tensor_new(c, HYP_I32, HYP_SHAPE(b, t));
    tensor_from_host(y, x);
    return y;
}

// Teacher scores of one query's candidates into cl->v[i].score.
static int score_query(Labeler *L, const char *qtext, CandList *cl) {
    const LabelOptions *o = L->o;
    const Model *m = o->teacher;
    Ctx *c = L->c;
    TokBatch tb = {0};
    int B = o->batch > 0 ? o->batch : 64, d = L->d;
    if (!m) {
        for (int i = 0; i < cl->n; i++) cl->v[i].score = (float)cl->v[i].grade;
        return 0;
    }
    if (m->mc.kind == MODEL_CROSS_ENCODER) {
        const char **qs = hyp_malloc((size_t)B * sizeof *qs), **ds = hyp_malloc((size_t)B * sizeof *ds);
        for (int s = 0; s < cl->n; s += B) {
            int b = cl->n - s < B ? cl->n - s : B;
            for (int k = 0; k < b; k++) qs[k] = qtext, ds[k] = o->corpus->texts[cl->v[s + k].doc];
            tok_encode_pair_batch(o->tok, qs, ds, b, m->doc_max_len, &tb);
            Tensor *lg = cross_encoder_logits(c, &m->ce, upload_i32(c, tb.ids, b, tb.len), upload_i32(c, tb.types, b, tb.len),
                                              upload_i32(c, tb.mask, b, tb.len));   // (b, 1)
            float *h = hyp_malloc((size_t)b * sizeof(float));
            tensor_to_host(lg, h);
            for (int k = 0; k < b; k++) cl->v[s + k].score = h[k];
            free(h);
            ctx_reset(c);
        }
        free(qs);
        free(ds);
        tok_batch_free(&tb);
        return 0;
    }
    tok_encode_batch(o->tok, &qtext, NULL, 1, m->query_max_len, &tb);
    Tensor *ids = upload_i32(c, tb.ids, 1, tb.len), *mask = upload_i32(c, tb.mask, 1, tb.len);
    float *X = hyp_malloc((size_t)cl->n * d * sizeof(float));   // (n, d) the candidates' vectors
    for (int i = 0; i < cl->n; i++) memcpy(X + (size_t)i * d, L->vecs + (size_t)L->slot[cl->v[i].doc] * d, (size_t)d * sizeof(float));
    float *s = hyp_malloc((size_t)cl->n * sizeof(float));
    if (m->mc.kind == MODEL_HYPENCODER) {
        QNet qn = hypencoder_queries(c, &m->hyp, ids, mask);
        Tensor *Xt = tensor_new(c, HYP_F32, HYP_SHAPE(cl->n, d));
        tensor_from_host(Xt, X);
        tensor_to_host(qnet_score_shared(c, &qn, Xt), s);   // (1, n)
    } else {
        float *q = hyp_malloc((size_t)d * sizeof(float));
        tensor_to_host(model_embed(c, m, true, ids, mask), q);
        if (o->cosine && !m->normalize) l2_normalize_host(q, 1, d);
        for (int i = 0; i < cl->n; i++) {
            double acc = 0;
            for (int j = 0; j < d; j++) acc += (double)q[j] * X[(size_t)i * d + j];
            s[i] = (float)acc;
        }
        free(q);
    }
    for (int i = 0; i < cl->n; i++) cl->v[i].score = s[i];
    free(X);
    free(s);
    ctx_reset(c);
    tok_batch_free(&tb);
    return 0;
}

static json_t *item(const Corpus *co, const Cand *c, double scale) {
    return json_pack("{s:s, s:s, s:f}", "id", co->ids[c->doc], "content", co->texts[c->doc], "score", scale * (double)c->score);
}

// Pick the positive, sample the negatives, write the row. 1 written, 0 skipped, -1 error.
static int write_row(Labeler *L, long qi, CandList *cl, FILE *out, const char *out_name, LabelStats *st) {
    const LabelOptions *o = L->o;
    for (int i = 0; i < cl->n; i++)
        if (!isfinite(cl->v[i].score)) {
            hyp_set_error("%s: query %s, document %s: the teacher's score is %g (expected finite scores)", o->teacher ? o->teacher->path : "qrels",
                          o->queries->ids[qi], o->corpus->ids[cl->v[i].doc], cl->v[i].score);
            return -1;
        }
    int pos = -1;
    for (int i = 0; i < cl->n; i++) {
        const Cand *c = &cl->v[i];
        if (o->qrels && !(c->judged && c->grade > 0)) continue;
        if (pos < 0) { pos = i; continue; }
        const Cand *p = &cl->v[pos];
        if (o->qrels && c->grade != p->grade ? c->grade > p->grade : c->score > p->score) pos = i;
    }
    if (pos < 0) { st->no_positive++; return 0; }
    // Negatives: the other candidates, never a relevant one; K of them without replacement.
    int *neg = hyp_malloc((size_t)(cl->n ? cl->n : 1) * sizeof *neg), nn = 0;
    for (int i = 0; i < cl->n; i++)
        if (i != pos && !(o->qrels && cl->v[i].judged && cl->v[i].grade > 0)) neg[nn++] = i;
    int k = nn < o->negatives ? nn : o->negatives;
    for (int j = 0; j < k; j++) {   // partial Fisher-Yates, Philox(seed, query row, j)
        int r = j + (int)(hyp_philox_uniform(o->seed, (uint64_t)qi << 8, (uint64_t)j) * (float)(nn - j));
        if (r >= nn) r = nn - 1;
        int t = neg[j]; neg[j] = neg[r]; neg[r] = t;
    }
    if (k < o->negatives) st->few_negatives++;
    json_t *items = json_array();
    double scale = o->scale != 0 ? o->scale : 1.0;
    json_array_append_new(items, item(o->corpus, &cl->v[pos], scale));
    for (int j = 0; j < k; j++) json_array_append_new(items, item(o->corpus, &cl->v[neg[j]], scale));
    json_t *row = json_pack("{s:{s:s, s:s}, s:o}", "query", "id", o->queries->ids[qi], "content", o->queries->texts[qi], "items", items);
    free(neg);
    int rc = row && json_dumpf(row, out, JSON_COMPACT | JSON_REAL_PRECISION(9)) == 0 && fputc('\n', out) != EOF ? 1 : -1;
    json_decref(row);
    if (rc < 0) { hyp_set_error("%s: write error", out_name); return -1; }
    st->queries++;
    return 1;
}

int label_write(const LabelOptions *o, FILE *out, const char *out_name, LabelStats *st) {
    *st = (LabelStats){0};
    if (o->negatives < 1) { hyp_set_error("label: negatives must be >= 1"); return -1; }
    if (!o->candidates && !o->qrels) { hyp_set_error("label: needs candidates (a run) or qrels"); return -1; }
    if (!o->teacher && !o->qrels) { hyp_set_error("label: without a teacher the qrels grades are the scores: qrels needed"); return -1; }
    const Model *m = o->teacher;
    Labeler L = {.o = o};
    const Corpus *co = o->corpus;
    float *dummy = hyp_calloc((size_t)(co->n ? co->n : 1), sizeof(float));
    L.ids = docstore_from_memory(dummy, co->n, 1, (const char *const *)co->ids, STORE_F32);
    free(dummy);
    if (!L.ids) return -1;
    bool vectors = m && m->mc.kind != MODEL_CROSS_ENCODER;
    if (m) L.d = model_doc_bert(m)->cfg.hidden;
    if (o->docs && vectors && docstore_dim(o->docs) != L.d) {
        hyp_set_error("%s: %d-dimensional vectors, but the teacher %s makes %d", docstore_path(o->docs),
                      docstore_dim(o->docs), m->path, L.d);
        docstore_free(L.ids);
        return -1;
    }
    L.normalize_docs = vectors && m->mc.kind != MODEL_HYPENCODER && (m->normalize || o->cosine);
    L.slot = hyp_malloc((size_t)(co->n ? co->n : 1) * sizeof *L.slot);
    for (int i = 0; i < co->n; i++) L.slot[i] = -1;
    if (m) { L.c = ctx_new(m->device); no_grad_begin(L.c); }
    CandList cls[CHUNK] = {{0}};
    int rc = 0;
    double t0 = hyp_now(), last = t0;
    long nq = o->queries->n;
    for (long s = 0; s < nq && !rc; s += CHUNK) {
        int b = nq - s < CHUNK ? (int)(nq - s) : CHUNK;
        for (int q = 0; q < b && !rc; q++) rc = gather(&L, o->queries->ids[s + q], &cls[q]);
        if (!rc && vectors) rc = encode_new(&L, cls, b, st);
        for (int q = 0; q < b && !rc; q++) {
            if (!cls[q].n) { st->no_candidates++; continue; }
            rc = score_query(&L, o->queries->texts[s + q], &cls[q]);
            if (m) st->pairs_scored += cls[q].n;
            if (!rc) rc = write_row(&L, s + q, &cls[q], out, out_name, st) < 0 ? -1 : 0;
        }
        double now = hyp_now();
        if (o->progress && (now - last > 2.0 || s + b == nq)) {
            double rate = (s + b) / (now - t0 > 1e-9 ? now - t0 : 1e-9);
            fprintf(stderr, "\rlabel: %ld/%ld queries | %.1f q/s | %ld docs encoded | eta %.0f s   ", s + b, nq, rate,
                    st->docs_encoded, (nq - s - b) / (rate > 0 ? rate : 1));
            if (s + b == nq) fputc('\n', stderr);
            last = now;
        }
    }
    for (int q = 0; q < CHUNK; q++) free(cls[q].v);
    if (L.c) { no_grad_end(L.c); ctx_free(L.c); }
    docstore_free(L.ids);
    free(L.slot);
    free(L.vecs);
    return rc;
}
