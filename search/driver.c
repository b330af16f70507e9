// driver.c: queries -> hits for every model kind (driver.h).
#include "search/driver.h"
#include "kernels/kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

SearchOptions search_options_default(void) {
    return (SearchOptions){.k = 1000, .batch = 8, .device = HYP_CPU, .graph_opts = graph_search_defaults()};
}

int search_check(const SearchModel *sm, const DocStore *s, const SearchOptions *o) {
    int dim = search_model_dim(sm);
    if (s && docstore_dim(s) != dim) {
        if (sm->kind == SEARCH_HYPENCODER)
            hyp_set_error("%s has %d-dimensional documents but the Hypencoder %s has a %d-wide q-net", docstore_path(s),
                          docstore_dim(s), sm->label, dim);
        else
            hyp_set_error("%s has %d-dimensional documents but the %s model %s encodes %d-dimensional vectors",
                          docstore_path(s), docstore_dim(s), search_kind_name(sm->kind), sm->label, dim);
        return -1;
    }
    if (o->graph && sm->kind != SEARCH_HYPENCODER) {
        hyp_set_error("%s is a %s model: graph search is for Hypencoders (it scores documents with q-nets); a %s "
                      "model is searched exhaustively by inner product (leave out --graph)", sm->label,
                      search_kind_name(sm->kind), search_kind_name(sm->kind));
        return -1;
    }
    if (o->graph && o->shard.world > 1) {
        hyp_set_error("graph search is not sharded; run it as one process");
        return -1;
    }
    int qpos = sm->query_bert->cfg.max_positions;
    if (o->query_max_len > qpos) {
        hyp_set_error("--query-max-len %d exceeds the model's %d positions: expected 2 to %d", o->query_max_len, qpos,
                      qpos);
        return -1;
    }
    if (o->device == HYP_CUDA && !hyp_cuda_available()) {
        hyp_set_error("search on cuda, but no GPU is usable: %s", hyp_cuda_why_unavailable());
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- the sharded merge
// Every rank's k best per query (padded with idx -1) gathered; each query keeps the k best
// of all ranks. res[b].scored becomes the whole corpus.
static int shard_merge(const SearchShard *sh, int k, long N, SearchResult *res, int B) {
    int world = sh->world;
    size_t per = (size_t)B * k;
    Hit *send = hyp_malloc((per ? per : 1) * sizeof(Hit)), *recv = hyp_malloc((per ? per : 1) * world * sizeof(Hit));
    for (int b = 0; b < B; b++)
        for (int j = 0; j < k; j++) send[(size_t)b * k + j] = j < res[b].n ? res[b].hits[j] : (Hit){-INFINITY, -1};
    int rc = sh->allgather(sh->user, send, per * sizeof(Hit), recv);
    for (int b = 0; b < B && !rc; b++) {
        Hit *all = hyp_malloc((size_t)k * world * sizeof(Hit));
        long n = 0;
        for (int r = 0; r < world; r++)
            for (int j = 0; j < k; j++) {
                Hit h = recv[(size_t)r * per + (size_t)b * k + j];
                if (h.idx >= 0) all[n++] = h;
            }
        hits_sort(all, n);
        free(res[b].hits);
        res[b].hits = all;
        res[b].n = n < k ? (int)n : k;
        res[b].scored = N;
    }
    free(send);
    free(recv);
    return rc;
}

// ---------------------------------------------------------------- the driver
static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double pct(const double *sorted, int n, double p) {
    if (n == 0) return 0;
    double r = p * (n - 1);
    int lo = (int)floor(r), hi = (int)ceil(r);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (r - lo);
}
// mean, p50, p99 in ms of v (n), v left sorted.
static void latency_stats(double *v, int n, double out[3]) {
    double mean = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    qsort(v, (size_t)n, sizeof(double), dbl_cmp);
    out[0] = 1e3 * mean / (n ? n : 1);
    out[1] = 1e3 * pct(v, n, 0.5);
    out[2] = 1e3 * pct(v, n, 0.99);
}

// One batch of B Hypencoder queries: encoded into q-nets (*enc: seconds per query), then
// each searched exhaustively or over the graph. 0 or -1.
static int hypencoder_batch(const SearchModel *sm, Ctx *c, const Tokenizer *tok, TokBatch *tb, DocStore *s,
                            GraphSearcher *gs, const ExhaustiveOptions *eo, const SearchOptions *opt,
                            const char *const *qids, const char *const *qtexts, int B, SearchResult *res, double *enc) {
    const double te = hyp_now();
    tok_encode_batch(tok, qtexts, NULL, B, opt->query_max_len, tb);
    Tensor *ids = tensor_new(c, HYP_I32, HYP_SHAPE(B, tb->len)), *mask = tensor_new(c, HYP_I32, HYP_SHAPE(B, tb->len));
    tensor_from_host(ids, tb->ids);
    tensor_from_host(mask, tb->mask);
    // The q-nets stay where the encoder made them; the search moves them if it runs elsewhere.
    QNet qn = hypencoder_queries(c, sm->hyp, ids, mask);
    backend_get(sm->device)->synchronize();   // the encoding time is the encoding's
    *enc = (hyp_now() - te) / B;
    int rc = 0;
    if (!gs) {
        rc = exhaustive_search_qnet(s, &qn, qids, eo, res);
    } else {
        QNetDevScorer sctx;
        GraphScorer sc = qnet_store_scorer_dev(&sctx, s, &qn, opt->device, opt->resident);
        for (int b = 0; b < B && !rc; b++) {
            long skip = opt->ignore_same_id ? docstore_find(s, qids[b]) : -1;
            rc = graph_search(gs, &sc, b, skip, &res[b]);
        }
        if (sctx.status) rc = -1;
        qnet_dev_scorer_free(&sctx);
    }
    ctx_reset(c);
    return rc;
}

int search_run(const SearchModel *sm, const Tokenizer *tok, DocStore *s, const char *const *qids,
               const char *const *qtexts, int nq, const SearchOptions *o, SearchEmit emit, void *user,
               SearchSummary *sum) {
    SearchOptions opt = o ? *o : search_options_default();
    if (opt.k <= 0) opt.k = 1000;
    if (opt.batch <= 0) opt.batch = 8;
    if (opt.query_max_len <= 0) opt.query_max_len = sm->query_max_len > 0 ? sm->query_max_len : 64;
    if (opt.shard.world <= 1) opt.shard.world = 1, opt.shard.rank = 0;
    if (search_check(sm, s, &opt)) return -1;
    long N = docstore_n(s);
    int d = docstore_dim(s);
    ExhaustiveOptions eo = {.k = opt.k, .block_rows = opt.block_rows, .ignore_same_id = opt.ignore_same_id,
                            .device = opt.device, .resident = opt.resident};
    if (opt.shard.world > 1) {
        eo.doc_begin = N * opt.shard.rank / opt.shard.world;
        eo.doc_end = N * (opt.shard.rank + 1) / opt.shard.world;
    }
    GraphSearcher *gs = NULL;
    GraphSearchOptions go = opt.graph_opts;
    go.k = opt.k;
    if (opt.graph && !(gs = graph_searcher_new(opt.graph, N, d, &go))) return -1;
    SearchSummary S = {.queries = nq, .documents = N, .dim = d, .graph = gs != NULL};
    if (gs) {
        S.entry_points = go.entry_points < N ? go.entry_points : N;
        S.entries_cover = go.entry_points >= N;
    }
    double *lat = hyp_calloc((size_t)(nq ? nq : 1), sizeof(double));
    double *slat = hyp_calloc((size_t)(nq ? nq : 1), sizeof(double));
    double scored_sum = 0, iter_sum = 0, t0 = hyp_now(), last = t0;
    int rc = 0;
    // Dense models: every query vector first (one pass of the query encoder, longest first).
    float *Qv = NULL;   // (nq, d)
    double enc_dense = 0;
    if (sm->kind != SEARCH_HYPENCODER && nq > 0) {
        EncodeOptions qo = {.max_len = opt.query_max_len, .batch = 64, .ids = qids, .nonfinite_null = true};
        if (!(Qv = encode_side(sm, SIDE_QUERY, tok, qtexts, nq, &qo))) rc = -1;
        enc_dense = (hyp_now() - t0) / nq;
    }
    Ctx *c = sm->kind == SEARCH_HYPENCODER ? ctx_new(sm->device) : NULL;
    if (c) no_grad_begin(c);
    TokBatch tb = {0};
    for (int q0 = 0; q0 < nq && !rc; q0 += opt.batch) {
        int B = nq - q0 < opt.batch ? nq - q0 : opt.batch;
        double enc = enc_dense;
        SearchResult *res = hyp_calloc((size_t)B, sizeof(SearchResult));
        if (sm->kind == SEARCH_HYPENCODER) {
            rc = hypencoder_batch(sm, c, tok, &tb, s, gs, &eo, &opt, qids + q0, qtexts + q0, B, res, &enc);
        } else {
            rc = exhaustive_search_dense(s, Qv + (size_t)q0 * d, B, sm->normalize ? DENSE_COSINE : DENSE_DOT, qids + q0,
                                         &eo, res);
        }
        if (!rc && !gs && opt.shard.world > 1) rc = shard_merge(&opt.shard, opt.k, N, res, B);
        for (int b = 0; b < B && !rc; b++) {
            if (emit && emit(user, q0 + b, res[b].hits, res[b].n)) rc = -1;
            slat[q0 + b] = res[b].seconds;
            lat[q0 + b] = res[b].seconds + enc;
            scored_sum += (double)res[b].scored;
            iter_sum += res[b].iterations;
        }
        for (int b = 0; b < B; b++) search_result_free(&res[b]);
        free(res);
        double now = hyp_now();
        if (opt.progress && (now - last > 2.0 || q0 + B == nq)) {
            double rate = (q0 + B) / (now - t0 > 0 ? now - t0 : 1e-9);
            fprintf(stderr, "\rsearch: %d/%d queries | %.2f queries/s | eta %.0f s   ", q0 + B, nq, rate,
                    (nq - q0 - B) / (rate > 0 ? rate : 1));
            if (q0 + B == nq) fputc('\n', stderr);
            last = now;
        }
    }
    S.seconds = hyp_now() - t0;
    tok_batch_free(&tb);
    if (c) {
        no_grad_end(c);
        ctx_free(c);
    }
    free(Qv);
    graph_searcher_free(gs);
    S.docs_scored_per_query = scored_sum / (nq ? nq : 1);
    S.scored_fraction = N ? S.docs_scored_per_query / N : 0;
    S.mean_iterations = iter_sum / (nq ? nq : 1);
    latency_stats(lat, nq, S.latency_ms);
    latency_stats(slat, nq, S.search_latency_ms);
    free(lat);
    free(slat);
    if (sum) *sum = S;
    return rc;
}

int search_emit_run(void *sink, int q, const Hit *hits, int n) {
    SearchRunSink *k = sink;
    for (int j = 0; j < n; j++)
        if (trec_run_add(k->run, k->qids[q], docstore_id(k->s, hits[j].idx), hits[j].score)) return -1;
    return 0;
}
