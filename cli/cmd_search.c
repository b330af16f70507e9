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
#include "autograd/atomic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS =
    "--model M.h5 --docs DOCS.h5 --queries Q.{tsv,jsonl} --out RUN [options]\n"
    "  Hypencoder models: q-net search (exhaustive, or graph with --graph); BE-Base and plain BERT\n"
    "  models: exact inner-product (or cosine) top-k over the same document vectors.";

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

// The graph-search settings: the preset's, then the flags given (0 / -1: not given). 0 or 1.
static int graph_flags(GraphSearchOptions *go, const char *preset, int algo, int entry_points, int candidates,
                       int max_iter) {
    if (preset) {
        GraphSearchOptions p = *go;
        if (graph_search_preset(preset, &p)) { fprintf(stderr, "hyp search: %s\n", hyp_last_error()); return 1; }
        go->entry_points = p.entry_points, go->candidates = p.candidates, go->max_iter = p.max_iter;
    }
    if (algo >= 0) go->algo = algo == 0 ? ALGO_PAPER : ALGO_HYPPLUS;
    if (entry_points > 0) go->entry_points = entry_points;   // explicit flags override the preset
    if (candidates > 0) go->candidates = candidates;
    if (max_iter > 0) go->max_iter = max_iter;
    return 0;
}

int cmd_search(int argc, char **argv) {
    const char *model = NULL, *docs = NULL, *queries = NULL, *out = NULL, *graph = NULL, *summary = NULL, *tag = NULL;
    SearchOptions so = search_options_default();
    GraphSearchOptions *go = &so.graph_opts;
    bool streaming = false;
    StoreDType dtype = STORE_F32;
    const char *preset = NULL, *dtype_name = NULL;
    int entry_points = 0, candidates = 0, max_iter = 0, algo = -1;   // 0 / -1: not given
    const CliFlag flags[] = {
        {.name = "--model", .kind = FLAG_STR, .dst = &model, .meta = "FILE", .help = "the model file"},
        {.name = "--docs", .kind = FLAG_STR, .dst = &docs, .meta = "FILE", .help = "document vectors (hyp encode)"},
        {.name = "--queries", .kind = FLAG_STR, .dst = &queries, .meta = "FILE", .help = "queries: id<TAB>text lines or JSONL"},
        {.name = "--out", .kind = FLAG_STR, .dst = &out, .meta = "RUN", .help = "the TREC run to write"},
        {.name = "--k", .kind = FLAG_INT, .dst = &so.k, .lo = 1, .hi = 1 << 24, .meta = "N", .help = "hits per query (default 1000)"},
        {.name = "--device", .kind = FLAG_DEVICE, .dst = &so.device, .meta = "cpu|cuda", .help = "where queries are encoded and scored (default cpu)"},
        {.name = "--graph", .kind = FLAG_STR, .dst = &graph, .meta = "G.h5", .help = "graph search over this neighbour graph (hyp index)"},
        {.name = "--preset", .kind = FLAG_STR, .dst = &preset, .meta = "NAME", .help = "graph search setting: efficient1 or efficient2 (the paper's)"},
        {.name = "--entry-points", .kind = FLAG_INT, .dst = &entry_points, .lo = 1, .hi = INT_MAX, .meta = "N", .help = "graph search: initial candidates (overrides the preset)"},
        {.name = "--candidates", .kind = FLAG_INT, .dst = &candidates, .lo = 1, .hi = INT_MAX, .meta = "N", .help = "graph search: nodes expanded per iteration"},
        {.name = "--max-iter", .kind = FLAG_INT, .dst = &max_iter, .lo = 1, .hi = INT_MAX, .meta = "N", .help = "graph search: iterations"},
        {.name = "--no-early-stop", .kind = FLAG_SWITCH, .dst = &go->no_early_stop, .help = "graph search: run every iteration"},
        {.name = "--algo", .kind = FLAG_CHOICE, .dst = &algo, .meta = "paper|hyp+|hypplus", .help = "graph search: Algorithm 1 (default) or hyp+"},
        {.name = "--seed", .kind = FLAG_U64, .dst = &go->seed, .meta = "N", .help = "graph search: seed of the entry points"},
        {.name = "--batch-queries", .kind = FLAG_INT, .dst = &so.batch, .lo = 1, .hi = 1 << 20, .meta = "N", .help = "queries per batch"},
        {.name = "--ignore-same-id", .kind = FLAG_SWITCH, .dst = &so.ignore_same_id, .help = "drop a hit whose id is the query's"},
        {.name = "--summary", .kind = FLAG_STR, .dst = &summary, .meta = "FILE", .help = "also write the JSON summary there"},
        {.name = "--dtype", .kind = FLAG_STR, .dst = &dtype_name, .meta = "fp32|fp16|bf16", .help = "document vectors held as (default fp32)"},
        {.name = "--streaming", .kind = FLAG_SWITCH, .dst = &streaming, .help = "exhaustive search reading the vectors in blocks (bounded memory)"},
        {.name = "--block-rows", .kind = FLAG_LONG, .dst = &so.block_rows, .lo = 0, .hi = (double)LONG_MAX, .meta = "N", .help = "documents per scoring block"},
        {.name = "--query-max-len", .kind = FLAG_INT, .dst = &so.query_max_len, .lo = 2, .hi = 1 << 20, .meta = "N", .help = "word pieces per query (default: the model's)"},
        {.name = "--tag", .kind = FLAG_STR, .dst = &tag, .meta = "T", .help = "the run tag (column 6)"},
    };
    const int parsed = cli_parse(C, SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (dtype_name && store_dtype_parse(dtype_name, &dtype)) {
        fprintf(stderr, "hyp search: --dtype: expected fp32, fp16 or bf16, got \"%s\"\n", dtype_name);
        return 1;
    }
    if (!model || !docs || !queries || !out) {
        fprintf(stderr, "hyp search: --model, --docs, --queries and --out are needed\n");
        cli_usage(stderr, C, SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    const CliPath ins[] = {CLI_FILE("--model", model), CLI_FILE("--docs", docs), CLI_FILE("--queries", queries),
                           CLI_FILE("--graph", graph)};
    const CliPath outs[] = {CLI_FILE("--out", out), CLI_FILE("--summary", summary)};
    if (cli_check_paths(C, ins, 4, outs, 2)) return 1;
    if (graph_flags(go, preset, algo, entry_points, candidates, max_iter)) return 1;
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
    if (summary) {   // the same JSON, through the atomic writer
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (f) print_summary(f, &S, &so, &g, s, search_kind_name(sm.kind), out);
        const bool bad = !f || fclose(f) || atomic_write_file(summary, text, len);
        free(text);
        if (bad) { fprintf(stderr, "hyp search: %s: cannot write the summary: %s\n", summary, hyp_last_error()); goto done; }
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
