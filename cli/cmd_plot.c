// hyp plot RUN_DIR [RUN_DIR ...] --out curves.svg [--metric loss|Rprec|nDCG@10|lr|gnorm|q/s|...]
//          [--label NAME ...] [--title T] [--logy]
// Training or validation curves of runs (their metrics.jsonl), overlaid with a legend, as
// an SVG chart written in C (eval/plot.c).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "eval/plot.h"
#include "train/run_log.h"
#include "autograd/atomic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(FILE *f) {
    fprintf(f, "usage: hyp plot RUN_DIR [RUN_DIR ...] --out curves.svg [--metric M] [--label NAME ...]\n"
               "                [--title T] [--logy]\n"
               "  RUN_DIR     a training run folder (its metrics.jsonl) or a metrics.jsonl file\n"
               "  --metric M  loss (default), mmse, ce, lr, gnorm, q/s, ms, or a validation metric\n"
               "              of the run (Rprec, nDCG@10, RR@10, ...)\n"
               "  --label     legend text of each run in order (default: the run folder's path)\n"
               "  --logy      log-scale y axis\n");
    return f == stdout ? 0 : 1;
}

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *metric = "loss", *title = NULL;
    bool logy = false;
    const char **runs = calloc((size_t)argc, sizeof(char *)), **labels = calloc((size_t)argc, sizeof(char *));
    int nr = 0, nl = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool v = i + 1 < argc;
        if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--metric") && v) metric = argv[++i];
        else if (!strcmp(a, "--label") && v) labels[nl++] = argv[++i];
        else if (!strcmp(a, "--title") && v) title = argv[++i];
        else if (!strcmp(a, "--logy")) logy = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { free(runs); free(labels); return usage(stdout); }
        else if (a[0] == '-') { cli_bad_option("plot", a, "--out --metric --label --title"); goto done; }
        else runs[nr++] = a;
    }
    if (!out || nr == 0) { usage(stderr); goto done; }
    if (nl && nl != nr) { fprintf(stderr, "hyp plot: %d --label for %d runs: give one a run or none\n", nl, nr); goto done; }
    // The inputs are the metrics.jsonl files (a run folder stands for its own).
    CliPath *ins = calloc((size_t)nr, sizeof(CliPath));
    char **files = calloc((size_t)nr, sizeof(char *));
    for (int r = 0; r < nr; r++) {
        struct stat st;
        const bool dir = stat(runs[r], &st) == 0 && S_ISDIR(st.st_mode);
        files[r] = hyp_malloc(strlen(runs[r]) + 16);
        sprintf(files[r], dir ? "%s/metrics.jsonl" : "%s", runs[r]);
        ins[r] = (CliPath)CLI_FILE("run", files[r]);
    }
    const int bad = cli_check_paths("plot", ins, nr, &(CliPath)CLI_FILE("--out", out), 1);
    for (int r = 0; r < nr; r++) free(files[r]);
    free(files);
    free(ins);
    if (bad) goto done;
    PlotSeries *s = calloc((size_t)nr, sizeof(PlotSeries));
    int ok = 1;
    for (int r = 0; r < nr && ok; r++) {
        double *x, *y;
        const int n = runlog_series(runs[r], metric, &x, &y);
        if (n <= 0) { fprintf(stderr, "hyp plot: %s\n", hyp_last_error()); ok = 0; break; }
        s[r] = (PlotSeries){nl ? labels[r] : runs[r], x, y, NULL, n};
    }
    if (ok) {
        char ttl[512];
        snprintf(ttl, sizeof ttl, "%s", title ? title : metric);
        PlotOptions po = {.title = ttl, .xlabel = "training step", .ylabel = metric, .logy = logy};
        char *svg = plot_svg(s, nr, &po);
        if (!svg) fprintf(stderr, "hyp plot: %s\n", hyp_last_error());
        else if (atomic_write_file(out, svg, strlen(svg))) fprintf(stderr, "hyp plot: %s\n", hyp_last_error());
        else {
            long pts = 0;
            for (int r = 0; r < nr; r++) pts += s[r].n;
            printf("{\"out\": \"%s\", \"metric\": \"%s\", \"runs\": %d, \"points\": %ld}\n", out, metric, nr, pts);
            rc = 0;
        }
        free(svg);
    }
    for (int r = 0; r < nr; r++) { free((void *)s[r].x); free((void *)s[r].y); }
    free(s);
done:
    free(runs);
    free(labels);
    return rc;
}
