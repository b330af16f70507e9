// hyp search --model M.h5 --docs DOCS.h5 --queries Q.{tsv,jsonl} --out RUN [--k 1000] [--device cpu|cuda]
//            [--graph G.h5 [--preset efficient1|efficient2] [--entry-points N] [--candidates N]
//             [--max-iter N] [--no-early-stop] [--algo paper|hyp+] [--seed N]]
//            [--batch-queries N] [--ignore-same-id] [--summary S.json] [--dtype fp32|fp16|bf16]
//            [--streaming] [--block-rows N] [--query-max-len N] [--tag T]
// Flags, then the search driver (search/driver.h): a Hypencoder scores every document with
// each query's q-net (or, with --graph, Algorithm 1 / hyp+); BE-Base and plain BERT models
// rank by inner product (cosine when the model normalises). Writes a TREC run and prints
// (and with --summary writes) a JSON summary: queries/s, mean, p50 and p99 latency per query
// (query encoding included; search-only also given), documents scored per query.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include <limits.h>
#include "search/driver.h"
#include "data/corpus.h"
#include "eval/trec.h"
#include "train/comm.h"
#include "kernels/kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr,
            "usage: hyp search --model M.h5 --docs DOCS.h5 --queries Q.{tsv,jsonl} --out RUN [--k 1000] [--device cpu|cuda]\n"
            "                  [--graph G.h5 [--preset efficient1|efficient2] [--entry-points N] [--candidates N]\n"
            "                   [--max-iter N] [--no-early-stop] [--algo paper|hyp+] [--seed N]]\n"
            "                  [--batch-queries N] [--ignore-same-id] [--summary S.json] [--dtype fp32|fp16|bf16]\n"
            "                  [--streaming] [--block-rows N] [--query-max-len N] [--tag T]\n"
            "  Hypencoder models: q-net search (exhaustive, or graph with --graph); BE-Base and plain BERT\n"
            "  models: exact inner-product (or cosine) top-k over the same document vectors.\n");
    return 1;
}

static const char *const C = "search";

static int comm_gather(void *user, const void *send, size_t bytes, void *recv) {
    return comm_allgather(user, send, bytes, recv, HYP_CPU);
}

static void print_summary(FILE *f, const SearchSummary *S, const SearchOptions *o, const Graph *g, const DocStore *s,
                          const char *kind, const char *out) {
    fprintf(f, "{\"queries\": %d, \"documents\": %ld, \"dim\": %d, \"model\": \"%s\", \"mode\": \"%s\", \"k\": %d, "
            "\"batch_queries\": %d, \"dtype\": \"%s\", \"device\": \"%s\"", S->queries, S->documents, S->dim, kind,
            S->graph ? "graph" : "exhaustive", o->k, o->batch, store_dtype_name(docstore_dtype(s)),
            o->device == HYP_CUDA ? "cuda" : "cpu");
    if (S->graph)
        fprintf(f, ", \"algo\": \"%s\", \"entry_points\": %d, \"candidates\": %d, \"max_iter\": %d, \"early_stop\": %s, "
                "\"graph_k\": %d, \"mean_iterations\": %.3f, \"entries_cover_corpus\": %s",
                o->graph_opts.algo == ALGO_PAPER ? "paper" : "hyp+", o->graph_opts.entry_points, o->graph_opts.candidates,
                o->graph_opts.max_iter, o->graph_opts.no_early_stop ? "false" : "true", g->k, S->mean_iterations,
                S->entries_cover ? "true" : "false");
    fprintf(f, ", \"seconds\": %.4f, \"queries_per_s\": %.4f, \"latency_ms\": {\"mean\": %.3f, \"p50\": %.3f, \"p99\": %.3f}"
            ", \"search_latency_ms\": {\"mean\": %.3f, \"p50\": %.3f, \"p99\": %.3f}, \"docs_scored_per_query\": %.1f"
            ", \"scored_fraction\": %.6f, \"out\": \"%s\"}\n",
            S->seconds, S->queries / (S->seconds > 0 ? S->seconds : 1e-9), S->latency_ms[0], S->latency_ms[1],
            S->latency_ms[2], S->search_latency_ms[0], S->search_latency_ms[1], S->search_latency_ms[2],
            S->docs_scored_per_query, S->scored_fraction, out);
}

int cmd_search(int argc, char **argv) {
    const char *model = NULL, *docs = NULL, *queries = NULL, *out = NULL, *graph = NULL, *summary = NULL, *tag = NULL;
    SearchOptions so = search_options_default();
    GraphSearchOptions *go = &so.graph_opts;
    bool streaming = false;
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
        else if (!strcmp(a, "--device") && v) { if (cli_device(C, a, argv[++i], &so.device)) return 1; }
        else if (!strcmp(a, "--k") && v) { if (cli_int(C, a, argv[++i], 1, 1 << 24, &so.k)) return 1; }
        else if (!strcmp(a, "--entry-points") && v) { if (cli_int(C, a, argv[++i], 1, INT_MAX, &go->entry_points)) return 1; set_e = true; }
        else if (!strcmp(a, "--candidates") && v) { if (cli_int(C, a, argv[++i], 1, INT_MAX, &go->candidates)) return 1; set_c = true; }
        else if (!strcmp(a, "--max-iter") && v) { if (cli_int(C, a, argv[++i], 1, INT_MAX, &go->max_iter)) return 1; set_i = true; }
        else if (!strcmp(a, "--no-early-stop")) go->no_early_stop = true;
        else if (!strcmp(a, "--preset") && v) preset = argv[++i];
        else if (!strcmp(a, "--seed") && v) { if (cli_u64(C, a, argv[++i], &go->seed)) return 1; }
        else if (!strcmp(a, "--algo") && v) {
            const char *x = argv[++i];
            if (!strcmp(x, "paper")) go->algo = ALGO_PAPER;
            else if (!strcmp(x, "hyp+") || !strcmp(x, "hypplus")) go->algo = ALGO_HYPPLUS;
            else { fprintf(stderr, "hyp search: --algo: expected paper or hyp+, got \"%s\"\n", x); return 1; }
        } else if (!strcmp(a, "--batch-queries") && v) { if (cli_int(C, a, argv[++i], 1, 1 << 20, &so.batch)) return 1; }
        else if (!strcmp(a, "--ignore-same-id")) so.ignore_same_id = true;
        else if (!strcmp(a, "--streaming")) streaming = true;
        else if (!strcmp(a, "--block-rows") && v) { if (cli_long(C, a, argv[++i], 0, LONG_MAX, &so.block_rows)) return 1; }
        else if (!strcmp(a, "--query-max-len") && v) { if (cli_int(C, a, argv[++i], 2, 1 << 20, &so.query_max_len)) return 1; }
        else if (!strcmp(a, "--dtype") && v) {
            if (store_dtype_parse(argv[++i], &dtype)) {
                fprintf(stderr, "hyp search: --dtype: expected fp32, fp16 or bf16, got \"%s\"\n", argv[i]);
                return 1;
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else {
            cli_bad_option(C, a, "--model --docs --queries --out --graph --summary --tag --device --k --entry-points "
                                 "--candidates --max-iter --preset --seed --algo --batch-queries --block-rows "
                                 "--query-max-len --dtype");
            return usage();
        }
    }
    if (!model || !docs || !queries || !out) return usage();
    const CliPath ins[] = {CLI_FILE("--model", model), CLI_FILE("--docs", docs), CLI_FILE("--queries", queries),
                           CLI_FILE("--graph", graph)};
    const CliPath outs[] = {CLI_FILE("--out", out), CLI_FILE("--summary", summary)};
    if (cli_check_paths(C, ins, 4, outs, 2)) return 1;
    if (preset) {
        GraphSearchOptions p = *go;
        if (graph_search_preset(preset, &p)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); return 1; }
        if (!set_e) go->entry_points = p.entry_points;   // explicit flags override the preset
        if (!set_c) go->candidates = p.candidates;
        if (!set_i) go->max_iter = p.max_iter;
    }
    if (streaming && graph) {
        fprintf(stderr, "hyp search: --streaming is for exhaustive search (graph search gathers rows at random)\n");
        return 1;
    }
    // Launched as several ranks (mpirun or torchrun-style env): each rank searches a
    // contiguous shard of the documents and the global top-k is merged; the result equals
    // one process's (ties by document index). Rank 0 writes the run. Before any CUDA context.
    Comm *comm = NULL;
    if (strcmp(comm_auto_backend(HYP_CPU), "none")) {
        if (!(comm = comm_init("auto", NULL))) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); return 1; }
        so.shard = (SearchShard){.rank = comm->rank, .world = comm->world, .allgather = comm_gather, .user = comm};
    }
    int rc = 1;
    Tokenizer *tok = NULL;
    Corpus *qs = NULL;
    DocStore *s = NULL;
    Graph g = {0};
    TrecRun *run = NULL;
    Model *m = model_load(model, so.device);
    if (!m) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    SearchModel sm = search_model_of(m);
    so.graph = graph ? &g : NULL;   // read below; the checks only ask whether there is one
    if (search_check(&sm, NULL, &so)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    if (!(tok = model_tokenizer(m)) || !(qs = corpus_read(queries))) {
        fprintf(stderr, "hyp search: %s\n", hyp_last_error());
        goto done;
    }
    s = docstore_open(docs, &(DocStoreOptions){.streaming = streaming, .dtype = dtype, .progress = true});
    if (!s || search_check(&sm, s, &so)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    long N = docstore_n(s);
    if (graph) {
        if (graph_read(graph, N, &g)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
        if (go->entry_points >= N)
            fprintf(stderr, "hyp search: the %d entry points cover all %ld documents (%.1fx the corpus): this graph "
                    "search scores every document, i.e. it is an exhaustive search; use fewer than %ld entry points "
                    "for an approximate one\n", go->entry_points, N, (double)go->entry_points / (N ? N : 1), N);
    }
    run = trec_run_new(tag ? tag : graph ? (go->algo == ALGO_PAPER ? "hyp-graph" : "hyp-graph-plus")
                                 : sm.kind == SEARCH_HYPENCODER ? "hyp-exhaustive" : "hyp-dense");
    so.progress = true;
    SearchRunSink sink = {run, (const char *const *)qs->ids, s};
    SearchSummary S;
    if (search_run(&sm, tok, s, (const char *const *)qs->ids, (const char *const *)qs->texts, qs->n, &so,
                   search_emit_run, &sink, &S)) {
        fprintf(stderr, "hyp search: %s\n", hyp_last_error());
        goto done;
    }
    if (comm && comm->rank != 0) { rc = 0; goto done; }
    if (trec_run_write(run, out, NULL)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); goto done; }
    print_summary(stdout, &S, &so, &g, s, search_kind_name(sm.kind), out);
    if (summary) {
        FILE *f = fopen(summary, "w");
        if (f) print_summary(f, &S, &so, &g, s, search_kind_name(sm.kind), out);
        if (!f || ferror(f) || fclose(f)) {
            fprintf(stderr, "hyp search: %s: cannot write the summary\n", summary);
            goto done;
        }
    }
    rc = 0;
done:
    trec_run_free(run);
    graph_free(&g);
    docstore_free(s);
    corpus_free(qs);
    tok_free(tok);
    model_free(m);
    if (comm) comm_free(comm);
    return rc;
}
