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

static int usage(void) {
    fprintf(stderr,
            "usage: hyp index --docs DOCS.h5 --neighbors K --out GRAPH.h5 [--approx] [--centroids N]\n"
            "                 [--kmeans-iters N] [--recall-sample N] [--iters N] [--block-rows N] [--seed N]\n"
            "                 [--device cpu|cuda]\n"
            "  --approx          NN-descent instead of exact k-NN (recall@k measured on --recall-sample rows, default 1000)\n"
            "  --centroids N     k-means centroids for `hyp search --algo hyp+` (e.g. sqrt(N) to 4*sqrt(N))\n"
            "  --device D        where the exact k-NN and the k-means assignments run (cpu or cuda)\n");
    return 1;
}

static const char *const C = "index";

int cmd_index(int argc, char **argv) {
    const char *docs = NULL, *out = NULL;
    GraphBuildOptions o = {.k = 100, .progress = true};
    bool approx = false;
    int centroids = 0, km_iters = 10, sample = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--docs") && v) docs = argv[++i];
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if ((!strcmp(a, "--neighbors") || !strcmp(a, "--k")) && v) { if (cli_int(C, a, argv[++i], 1, 1 << 20, &o.k)) return 1; }
        else if (!strcmp(a, "--approx")) approx = true;
        else if (!strcmp(a, "--centroids") && v) { if (cli_int(C, a, argv[++i], 0, INT_MAX, &centroids)) return 1; }
        else if (!strcmp(a, "--kmeans-iters") && v) { if (cli_int(C, a, argv[++i], 1, 1 << 20, &km_iters)) return 1; }
        else if (!strcmp(a, "--recall-sample") && v) { if (cli_int(C, a, argv[++i], 0, INT_MAX, &sample)) return 1; }
        else if (!strcmp(a, "--iters") && v) { if (cli_int(C, a, argv[++i], 0, 1 << 20, &o.iters)) return 1; }
        else if (!strcmp(a, "--block-rows") && v) { if (cli_long(C, a, argv[++i], 0, LONG_MAX, &o.block_rows)) return 1; }
        else if (!strcmp(a, "--seed") && v) { if (cli_u64(C, a, argv[++i], &o.seed)) return 1; }
        else if (!strcmp(a, "--device") && v) { if (cli_device(C, a, argv[++i], &o.device)) return 1; }
        else if (!strcmp(a, "--cuda")) { if (cli_device(C, "--cuda", "cuda", &o.device)) return 1; }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else {
            cli_bad_option(C, a, "--docs --out --neighbors --k --centroids --kmeans-iters --recall-sample --iters "
                                 "--block-rows --seed --device");
            return usage();
        }
    }
    if (!docs || !out) return usage();
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
