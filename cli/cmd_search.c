// hyp search --model M.h5 --docs DOCS.h5 --queries Q.{tsv,jsonl} --out RUN [--k 1000]
//            [--graph G.h5 [--preset efficient1|efficient2] [--entry-points N] [--candidates N]
//             [--max-iter N] [--no-early-stop] [--algo paper|hyp+] [--seed N]]
//            [--batch-queries N] [--ignore-same-id] [--summary S.json] [--dtype fp32|fp16|bf16]
//            [--streaming] [--block-rows N] [--query-max-len N] [--tag T]
// Without --graph: exact search (every document scored by each query's q-net, blocks read
// once per batch of queries). With --graph: Algorithm 1 (--algo paper, the default) or hyp+.
// Writes a TREC run and prints (and with --summary writes) a JSON summary: queries/s, mean,
// p50 and p99 latency per query (query encoding included; search-only also given), documents
// scored per query.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include <limits.h>
#include "search/encode.h"
#include "search/graph_search.h"
#include "data/corpus.h"
#include "eval/trec.h"
#include "train/comm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr,
            "usage: hyp search --model M.h5 --docs DOCS.h5 --queries Q.{tsv,jsonl} --out RUN [--k 1000]\n"
            "                  [--graph G.h5 [--preset efficient1|efficient2] [--entry-points N] [--candidates N]\n"
            "                   [--max-iter N] [--no-early-stop] [--algo paper|hyp+] [--seed N]]\n"
            "                  [--batch-queries N] [--ignore-same-id] [--summary S.json] [--dtype fp32|fp16|bf16]\n"
            "                  [--streaming] [--block-rows N] [--query-max-len N] [--tag T]\n");
    return 1;
}

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

static const char *const C = "search";

int cmd_search(int argc, char **argv) {
    const char *model = NULL, *docs = NULL, *queries = NULL, *out = NULL, *graph = NULL, *summary = NULL, *tag = NULL;
    GraphSearchOptions go = graph_search_defaults();
    ExhaustiveOptions eo = {.k = 1000, .progress = false};
    int batch = 8, qmax = 0;
    bool ignore_same = false, streaming = false;
    StoreDType dtype = STORE_F32;
    const char *preset = NULL;
    bool set_e = false, set_c = false, set_i = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--docs") && v) docs = argv[++i];
        else if (!strcmp(a, "--queries") && v) queries = argv[++i];
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--graph") && v) graph = argv[++i];
        else if (!strcmp(a, "--summary") && v) summary = argv[++i];
        else if (!strcmp(a, "--tag") && v) tag = argv[++i];
        else if (!strcmp(a, "--k") && v) { if (cli_int(C, a, argv[++i], 1, 1 << 24, &eo.k)) return 1; go.k = eo.k; }
        else if (!strcmp(a, "--entry-points") && v) { if (cli_int(C, a, argv[++i], 1, INT_MAX, &go.entry_points)) return 1; set_e = true; }
        else if (!strcmp(a, "--candidates") && v) { if (cli_int(C, a, argv[++i], 1, INT_MAX, &go.candidates)) return 1; set_c = true; }
        else if (!strcmp(a, "--max-iter") && v) { if (cli_int(C, a, argv[++i], 1, INT_MAX, &go.max_iter)) return 1; set_i = true; }
        else if (!strcmp(a, "--no-early-stop")) go.no_early_stop = true;
        else if (!strcmp(a, "--preset") && v) preset = argv[++i];
        else if (!strcmp(a, "--seed") && v) { if (cli_u64(C, a, argv[++i], &go.seed)) return 1; }
        else if (!strcmp(a, "--algo") && v) {
            const char *x = argv[++i];
            if (!strcmp(x, "paper")) go.algo = ALGO_PAPER;
            else if (!strcmp(x, "hyp+") || !strcmp(x, "hypplus")) go.algo = ALGO_HYPPLUS;
            else { fprintf(stderr, "hyp search: --algo: expected paper or hyp+, got \"%s\"\n", x); return 1; }
        } else if (!strcmp(a, "--batch-queries") && v) { if (cli_int(C, a, argv[++i], 1, 1 << 20, &batch)) return 1; }
        else if (!strcmp(a, "--ignore-same-id")) ignore_same = true;
        else if (!strcmp(a, "--streaming")) streaming = true;
        else if (!strcmp(a, "--block-rows") && v) { if (cli_long(C, a, argv[++i], 0, LONG_MAX, &eo.block_rows)) return 1; }
        else if (!strcmp(a, "--query-max-len") && v) { if (cli_int(C, a, argv[++i], 2, 1 << 20, &qmax)) return 1; }
        else if (!strcmp(a, "--dtype") && v) {
            if (store_dtype_parse(argv[++i], &dtype)) {
                fprintf(stderr, "hyp search: --dtype: expected fp32, fp16 or bf16, got \"%s\"\n", argv[i]);
                return 1;
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else {
            cli_bad_option(C, a, "--model --docs --queries --out --graph --summary --tag --k --entry-points --candidates "
                                 "--max-iter --preset --seed --algo --batch-queries --block-rows --query-max-len --dtype");
            return usage();
        }
    }
    if (!model || !docs || !queries || !out) return usage();
    const CliPath ins[] = {CLI_FILE("--model", model), CLI_FILE("--docs", docs), CLI_FILE("--queries", queries),
                           CLI_FILE("--graph", graph)};
    const CliPath outs[] = {CLI_FILE("--out", out), CLI_FILE("--summary", summary)};
    if (cli_check_paths(C, ins, 4, outs, 2)) return 1;
    if (preset) {
        GraphSearchOptions p = go;
        if (graph_search_preset(preset, &p)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); return 1; }
        if (!set_e) go.entry_points = p.entry_points;   // explicit flags override the preset
        if (!set_c) go.candidates = p.candidates;
        if (!set_i) go.max_iter = p.max_iter;
    }
    if (streaming && graph) {
        fprintf(stderr, "hyp search: --streaming is for exhaustive search (graph search gathers rows at random)\n");
        return 1;
    }
    Model *m = model_load(model, HYP_CPU);
    if (!m) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); return 1; }
    int rc = 1;
    Tokenizer *tok = NULL;
    Corpus *qs = NULL;
    DocStore *s = NULL;
    Graph g = {0};
    GraphSearcher *gs = NULL;
    TrecRun *run = NULL;
    double *lat = NULL, *slat = NULL;
    Comm *comm = NULL;
    if (m->mc.kind != MODEL_HYPENCODER) {
        fprintf(stderr, "hyp search: %s is a %s model: expected a Hypencoder (search scores documents with its q-nets)\n",
                model, m->mc.kind == MODEL_BIENCODER ? "BE-Base bi-encoder" : "plain BERT");
        goto done;
    }
    int dim = m->hyp.head.dim;
    int max_pos = m->hyp.query_bert.cfg.max_positions;
    if (qmax > max_pos) {   // before reading anything: BERT has no position past its table
        fprintf(stderr, "hyp search: --query-max-len %d exceeds the model's %d positions: expected 2 to %d\n", qmax,
                max_pos, max_pos);
        goto done;
    }
    if (!(tok = model_tokenizer(m)) || !(qs = corpus_read(queries))) {
        fprintf(stderr, "hyp search: %s\n", hyp_last_error());
        goto done;
    }
    s = docstore_open(docs, &(DocStoreOptions){.streaming = streaming, .dtype = dtype, .progress = true});
    if (!s) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    if (docstore_dim(s) != dim) {
        fprintf(stderr, "hyp search: %s has %d-dimensional documents but the model %s has a %d-wide q-net\n", docs,
                docstore_dim(s), model, dim);
        goto done;
    }
    long N = docstore_n(s);
    // Launched as several ranks (mpirun or torchrun-style env): each rank searches a
    // contiguous shard of the documents exhaustively and the global top-k is merged;
    // the result equals one process's (ties by document index). Rank 0 writes the run.
    if (strcmp(comm_auto_backend(HYP_CPU), "none")) {
        if (!(comm = comm_init("auto", NULL))) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
        if (comm->world > 1 && graph) {
            fprintf(stderr, "hyp search: graph search is not sharded; run it as one process\n");
            goto done;
        }
        eo.doc_begin = N * comm->rank / comm->world;
        eo.doc_end = N * (comm->rank + 1) / comm->world;
    }
    bool root = !comm || comm->rank == 0;
    int world = comm ? comm->world : 1;
    if (graph) {
        if (graph_read(graph, N, &g) || !(gs = graph_searcher_new(&g, N, dim, &go))) {
            fprintf(stderr, "hyp search: %s\n", hyp_last_error());
            goto done;
        }
    }
    if (qmax == 0) qmax = m->query_max_len > 0 ? m->query_max_len : 64;
    run = trec_run_new(tag ? tag : graph ? (go.algo == ALGO_PAPER ? "hyp-graph" : "hyp-graph-plus") : "hyp-exhaustive");
    int nq = qs->n;
    lat = hyp_calloc((size_t)(nq ? nq : 1), sizeof(double));
    slat = hyp_calloc((size_t)(nq ? nq : 1), sizeof(double));
    double scored_sum = 0, iter_sum = 0;
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    TokBatch tb = {0};
    double t0 = hyp_now(), last = t0;
    bool failed = false;
    for (int q0 = 0; q0 < nq && !failed; q0 += batch) {
        int B = nq - q0 < batch ? nq - q0 : batch;
        double te = hyp_now();
        tok_encode_batch(tok, (const char *const *)qs->texts + q0, NULL, B, qmax, &tb);
        Tensor *ids = tensor_new(c, HYP_I32, HYP_SHAPE(B, tb.len)), *mask = tensor_new(c, HYP_I32, HYP_SHAPE(B, tb.len));
        tensor_from_host(ids, tb.ids);
        tensor_from_host(mask, tb.mask);
        QNet qn = hypencoder_queries(c, &m->hyp, ids, mask);
        QNetHost qh = qnet_host_from(&qn);
        ctx_reset(c);
        double enc = (hyp_now() - te) / B;
        SearchResult *res = hyp_calloc((size_t)B, sizeof(SearchResult));
        if (!graph) {
            eo.ignore_same_id = ignore_same;
            if (exhaustive_search(s, &qh, (const char *const *)qs->ids + q0, &eo, res)) failed = true;
            if (!failed && world > 1) {
                // Every rank's k best per query (padded with idx -1), gathered and merged.
                int k = eo.k;
                size_t per = (size_t)B * k;
                Hit *send = hyp_malloc(per * sizeof(Hit)), *recv = hyp_malloc(per * world * sizeof(Hit));
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < k; j++)
                        send[(size_t)b * k + j] = j < res[b].n ? res[b].hits[j] : (Hit){-INFINITY, -1};
                if (comm_allgather(comm, send, per * sizeof(Hit), recv, HYP_CPU)) failed = true;
                for (int b = 0; b < B && !failed; b++) {
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
            }
        } else {
            QNetStoreScorer sctx;
            GraphScorer sc = qnet_store_scorer(&sctx, s, &qh);
            for (int b = 0; b < B; b++) {
                long skip = ignore_same ? docstore_find(s, qs->ids[q0 + b]) : -1;
                graph_search(gs, &sc, b, skip, &res[b]);
            }
            if (sctx.status) failed = true;
            qnet_store_scorer_free(&sctx);
        }
        for (int b = 0; b < B && !failed; b++) {
            for (int j = 0; j < res[b].n; j++)
                if (trec_run_add(run, qs->ids[q0 + b], docstore_id(s, res[b].hits[j].idx), res[b].hits[j].score)) failed = true;
            slat[q0 + b] = res[b].seconds;
            lat[q0 + b] = res[b].seconds + enc;
            scored_sum += (double)res[b].scored;
            iter_sum += res[b].iterations;
        }
        for (int b = 0; b < B; b++) search_result_free(&res[b]);
        free(res);
        qnet_host_free(&qh);
        double now = hyp_now();
        if (now - last > 2.0 || q0 + B == nq) {
            double rate = (q0 + B) / (now - t0 > 0 ? now - t0 : 1e-9);
            fprintf(stderr, "\rsearch: %d/%d queries | %.2f queries/s | eta %.0f s   ", q0 + B, nq, rate,
                    (nq - q0 - B) / (rate > 0 ? rate : 1));
            if (q0 + B == nq) fputc('\n', stderr);
            last = now;
        }
    }
    double total = hyp_now() - t0;
    tok_batch_free(&tb);
    no_grad_end(c);
    ctx_free(c);
    if (failed) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    if (!root) { rc = 0; goto done; }
    if (trec_run_write(run, out, NULL)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    {
        double *sl = hyp_malloc((size_t)(nq ? nq : 1) * sizeof(double)), *ss = hyp_malloc((size_t)(nq ? nq : 1) * sizeof(double));
        memcpy(sl, lat, (size_t)nq * sizeof(double));
        memcpy(ss, slat, (size_t)nq * sizeof(double));
        qsort(sl, (size_t)nq, sizeof(double), dbl_cmp);
        qsort(ss, (size_t)nq, sizeof(double), dbl_cmp);
        double mean = 0, smean = 0;
        for (int i = 0; i < nq; i++) { mean += lat[i]; smean += slat[i]; }
        mean /= nq ? nq : 1;
        smean /= nq ? nq : 1;
        char js[2048];
        int n = snprintf(js, sizeof js,
                         "{\"queries\": %d, \"documents\": %ld, \"dim\": %d, \"mode\": \"%s\", \"k\": %d, \"batch_queries\": %d, "
                         "\"dtype\": \"%s\"",
                         nq, N, dim, graph ? "graph" : "exhaustive", eo.k, batch, store_dtype_name(docstore_dtype(s)));
        if (graph)
            n += snprintf(js + n, sizeof js - n,
                          ", \"algo\": \"%s\", \"entry_points\": %d, \"candidates\": %d, \"max_iter\": %d, \"early_stop\": %s, "
                          "\"graph_k\": %d, \"mean_iterations\": %.3f",
                          go.algo == ALGO_PAPER ? "paper" : "hyp+", go.entry_points, go.candidates, go.max_iter,
                          go.no_early_stop ? "false" : "true", g.k, iter_sum / (nq ? nq : 1));
        n += snprintf(js + n, sizeof js - n,
                      ", \"seconds\": %.4f, \"queries_per_s\": %.4f, \"latency_ms\": {\"mean\": %.3f, \"p50\": %.3f, \"p99\": %.3f}"
                      ", \"search_latency_ms\": {\"mean\": %.3f, \"p50\": %.3f, \"p99\": %.3f}, \"docs_scored_per_query\": %.1f"
                      ", \"out\": \"%s\"}",
                      total, nq / (total > 0 ? total : 1e-9), 1e3 * mean, 1e3 * pct(sl, nq, 0.5), 1e3 * pct(sl, nq, 0.99),
                      1e3 * smean, 1e3 * pct(ss, nq, 0.5), 1e3 * pct(ss, nq, 0.99), scored_sum / (nq ? nq : 1), out);
        printf("%s\n", js);
        free(sl);
        free(ss);
        if (summary) {
            FILE *f = fopen(summary, "w");
            if (!f || fprintf(f, "%s\n", js) < 0 || fclose(f)) {
                fprintf(stderr, "hyp search: %s: cannot write the summary\n", summary);
                goto done;
            }
        }
    }
    rc = 0;
done:
    free(lat);
    free(slat);
    trec_run_free(run);
    graph_searcher_free(gs);
    graph_free(&g);
    docstore_free(s);
    corpus_free(qs);
    tok_free(tok);
    model_free(m);
    if (comm) comm_free(comm);
    return rc;
}
