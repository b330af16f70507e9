// validation.c: the trainer's validation sweep (validation.h).
#include "train/validation.h"
#include "train/doc_cache.h"
#include "search/driver.h"
#include "search/encode.h"
#include "kernels/kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int validation_open(Validation *v, const Config *c, Device train_dev, const Tokenizer *tok) {
    memset(v, 0, sizeof *v);
    v->device = !strcmp(c->eval.device, "cpu") ? HYP_CPU : !strcmp(c->eval.device, "cuda") ? HYP_CUDA : train_dev;
    v->k = c->eval.k;
    v->query_max_len = c->data.query_max_len;
    v->doc_max_len = c->data.doc_max_len;
    v->metric[0] = c->eval.metric;
    v->metric[1] = "nDCG@10";
    v->metric[2] = "RR@10";
    if (c->eval.every <= 0 || !c->eval.corpus[0]) return 0;
    if (!c->eval.queries[0] || !c->eval.qrels[0]) { hyp_set_error("eval.corpus is set: eval.queries and eval.qrels are needed too"); return -1; }
    if (!tok) { hyp_set_error("validation needs a vocab (data.vocab or model.init_from)"); return -1; }
    if (v->device == HYP_CUDA && !hyp_cuda_available()) {
        hyp_set_error("eval.device = %s: validation on cuda, but no GPU is usable: %s", c->eval.device,
                      hyp_cuda_why_unavailable());
        return -1;
    }
    if (!(v->corpus = corpus_read(c->eval.corpus)) || !(v->queries = corpus_read(c->eval.queries)) ||
        !(v->qrels = trec_qrels_read(c->eval.qrels))) {
        validation_close(v);
        return -1;
    }
    return 0;
}

void validation_close(Validation *v) {
    docstore_free(v->store);
    corpus_free(v->corpus);
    corpus_free(v->queries);
    trec_qrels_free(v->qrels);
    v->store = NULL;
    v->corpus = v->queries = NULL;
    v->qrels = NULL;
}

// The corpus as a store of the model's current document vectors (through the frozen
// encoder's cache when there is one).
static DocStore *encode_corpus(const Validation *v, const SearchModel *sm, const TrainModel *m, Device model_dev,
                               const Tokenizer *tok) {
    const Corpus *cc = v->corpus;
    EncodeOptions eo = {.batch = 64, .max_len = v->doc_max_len, .nonfinite_null = true, .what = "documents"};
    float *D = m->doc_cache   // (N, d)
                   ? doc_cache_texts(m->doc_cache, model_dev, sm->doc_bert, sm->pooling, tok,
                                     (const char *const *)cc->texts, cc->n, v->doc_max_len)
                   : encode_side(sm, SIDE_DOCUMENT, tok, (const char *const *)cc->texts, cc->n, &eo);
    if (!D) return NULL;
    DocStore *store = docstore_from_memory(D, cc->n, sm->doc_bert->cfg.hidden, (const char *const *)cc->ids, STORE_F32);
    free(D);
    return store;
}

int validation_run(Validation *v, const TrainModel *m, Device model_dev, const Tokenizer *tok, long step, bool quiet,
                   double out[VAL_METRICS]) {
    double t0 = hyp_now();
    SearchModel sm = m->hypencoder ? search_model_hypencoder(&m->hyp, model_dev) : search_model_biencoder(&m->be, model_dev);
    sm.query_max_len = v->query_max_len;
    sm.doc_max_len = v->doc_max_len;
    sm.label = "(training)";
    const Corpus *qq = v->queries;
    DocStore *store = v->store ? v->store : encode_corpus(v, &sm, m, model_dev, tok);
    if (!store) return -1;
    if (m->doc_cache) v->store = store;   // frozen: the same vectors at every sweep
    TrecRun *run = trec_run_new("hyp-val");
    SearchOptions so = search_options_default();
    so.k = v->k;
    so.batch = 32;
    so.query_max_len = v->query_max_len;
    so.device = v->device;
    SearchRunSink sink = {run, (const char *const *)qq->ids, store};
    int rc = search_run(&sm, tok, store, (const char *const *)qq->ids, (const char *const *)qq->texts, qq->n, &so,
                        search_emit_run, &sink, NULL);
    if (store != v->store) docstore_free(store);
    if (rc) { trec_run_free(run); return -1; }
    TrecMeasureSet *ms = trec_measures_new();
    for (int i = 0; i < VAL_METRICS; i++)
        if (trec_measures_add(ms, v->metric[i])) { trec_measures_free(ms); trec_run_free(run); return -1; }
    TrecEvalOptions eopt = trec_eval_default_options();
    eopt.complete = true;   // a query the run misses counts 0
    TrecEvalResult *r = trec_evaluate(v->qrels, run, ms, &eopt);
    trec_measures_free(ms);
    trec_run_free(run);
    if (!r) return -1;
    for (int i = 0; i < VAL_METRICS; i++) out[i] = trec_result_summary(r, v->metric[i]);
    trec_result_free(r);
    if (!quiet)
        fprintf(stderr, "eval step %ld | %s %.4f | %s %.4f | %s %.4f | %d queries x %d docs | %.1f s\n", step, v->metric[0],
                out[0], v->metric[1], out[1], v->metric[2], out[2], qq->n, v->corpus->n, hyp_now() - t0);
    return 0;
}
