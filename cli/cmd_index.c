// hyp index --docs DOCS.h5 --neighbors 100 --out GRAPH.h5 [--approx] [--centroids N]
//           [--kmeans-iters N] [--recall-sample N] [--iters N] [--block-rows N] [--seed N]
//           [--device cpu|cuda]
// The document neighbour graph for `hyp search --graph`: exact squared-L2 k-NN by blocked
// GEMM, or NN-descent (--approx) with its recall@k against exact k-NN measured on a sample
// of rows; optionally k-means centroids for `hyp search --algo hyp+`. Written to
// GRAPH.h5.tmp and renamed.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include <limits.h>
#include "search/graph.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const C = "index";
static const char *const SYNOPSIS = "--docs DOCS.h5 --neighbors K --out GRAPH.h5 [options]";

int cmd_index(int argc, char **argv) {
    const char *docs = NULL, *out = NULL;
    GraphBuildOptions o = {.k = 100, .progress = true};
    bool approx = false;
    int centroids = 0, km_iters = 10, sample = 1000;
    const CliFlag flags[] = {
        {.name = "--docs", .kind = FLAG_STR, .dst = &docs, .meta = "FILE", .help = "document vectors (hyp encode)"},
        {.name = "--out", .kind = FLAG_STR, .dst = &out, .meta = "FILE", .help = "the graph file to write"},
        {.name = "--neighbors", .kind = FLAG_INT, .dst = &o.k, .lo = 1, .hi = 1 << 20, .meta = "K", .help = "neighbours per document (default 100)"},
        {.name = "--k", .kind = FLAG_INT, .dst = &o.k, .lo = 1, .hi = 1 << 20, .meta = "K"},
        {.name = "--approx", .kind = FLAG_SWITCH, .dst = &approx, .help = "NN-descent instead of exact k-NN (recall@k measured on a sample)"},
        {.name = "--recall-sample", .kind = FLAG_INT, .dst = &sample, .lo = 0, .hi = INT_MAX, .meta = "N", .help = "rows the NN-descent recall is measured on (default 1000)"},
        {.name = "--iters", .kind = FLAG_INT, .dst = &o.iters, .lo = 0, .hi = 1 << 20, .meta = "N", .help = "NN-descent iterations (default 12)"},
        {.name = "--centroids", .kind = FLAG_INT, .dst = &centroids, .lo = 0, .hi = INT_MAX, .meta = "N",
         .help = "k-means centroids for `hyp search --algo hyp+` (e.g. sqrt(N) to 4*sqrt(N))"},
        {.name = "--kmeans-iters", .kind = FLAG_INT, .dst = &km_iters, .lo = 1, .hi = 1 << 20, .meta = "N", .help = "k-means iterations (default 10)"},
        {.name = "--block-rows", .kind = FLAG_LONG, .dst = &o.block_rows, .lo = 0, .hi = (double)LONG_MAX, .meta = "N", .help = "rows per GEMM block (default 4096)"},
        {.name = "--seed", .kind = FLAG_U64, .dst = &o.seed, .meta = "N", .help = "seed of the samples and NN-descent"},
        {.name = "--device", .kind = FLAG_DEVICE, .dst = &o.device, .meta = "cpu|cuda",
         .help = "where the exact k-NN and the k-means assignments run (default cpu)"},
        {.name = "--cuda", .kind = FLAG_DEVICE, .dst = &o.device, .help = "--device cuda", .fixed = "cuda"},
    };
    const int parsed = cli_parse(C, SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (!docs || !out) {
        fprintf(stderr, "hyp index: --docs and --out are needed\n");
        cli_usage(stderr, C, SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    if (cli_check_paths(C, &(CliPath)CLI_FILE("--docs", docs), 1, &(CliPath)CLI_FILE("--out", out), 1)) return 1;
    DocStore *s = docstore_open(docs, &(DocStoreOptions){.progress = true});
    if (!s) { fprintf(stderr, "hyp index: %s\n", hyp_last_error()); return 1; }
    long N = docstore_n(s);
    if (N < 2) {
        fprintf(stderr, "hyp index: %s holds %ld document%s: a neighbour graph needs at least 2\n", docs, N, N == 1 ? "" : "s");
        docstore_free(s);
        return 1;
    }
    if (o.k > N - 1) {   // the builders clamp; say so, and report the k the graph has
        fprintf(stderr, "index: --neighbors %d but %s has only %ld other documents per document: k = %ld\n", o.k, docs,
                N - 1, N - 1);
        o.k = (int)(N - 1);
    }
    if (centroids > N) {
        fprintf(stderr, "hyp index: --centroids %d exceeds the %ld documents\n", centroids, N);
        docstore_free(s);
        return 1;
    }
    double t0 = hyp_now();
    Graph g;
    int rc = approx ? graph_build_nndescent(s, &o, &g) : graph_build_exact(s, &o, &g);
    double t_graph = hyp_now() - t0;
    if (!rc && approx && sample > 0) {
        fprintf(stderr, "index: measuring recall@%d against exact k-NN on %d sampled rows\n", o.k, sample);
        g.recall = graph_recall_sample(s, &g, sample, o.seed + 99);
        fprintf(stderr, "index: NN-descent recall@%d = %.4f\n", o.k, g.recall);
    }
    if (!rc && centroids > 0) {
        const KMeansOptions ko = {.centroids = centroids, .iters = km_iters, .seed = o.seed + 7, .progress = true,
                                  .device = o.device};
        rc = graph_kmeans(s, &ko, &g);
    }
    if (!rc) rc = graph_write(out, &g);
    if (rc) {
        fprintf(stderr, "hyp index: %s\n", hyp_last_error());
        graph_free(&g);
    } else {
        printf("{\"documents\": %ld, \"k\": %d, \"builder\": \"%s\", \"graph_seconds\": %.3f, \"seconds\": %.3f",
               N, o.k, g.builder, t_graph, hyp_now() - t0);
        if (g.recall >= 0) printf(", \"recall_sample\": %d, \"recall\": %.4f", sample, g.recall);
        if (centroids) printf(", \"centroids\": %d", centroids);
        printf(", \"out\": \"%s\"}\n", out);
        graph_free(&g);
    }
    docstore_free(s);
    return rc ? 1 : 0;
}
