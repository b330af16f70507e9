// hyp plot RUN_DIR [RUN_DIR ...] --out curves.svg [--metric loss|Rprec|nDCG@10|lr|gnorm|q/s|...]
//          [--label NAME ...] [--title T] [--logy]
// hyp plot --table T.tsv --out chart.svg [--xlabel X] [--ylabel Y] [--title T] [--logy]
// Training or validation curves of runs (their metrics.jsonl), overlaid with a legend, or
// series from a table (lines "series<TAB>x<TAB>y[<TAB>error]", e.g. a metric against q-net
// depth with error bars over seeds), as an SVG chart written in C (eval/plot.c).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "eval/plot.h"
#include "train/run_log.h"
#include "autograd/atomic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *SYNOPSIS =
    "RUN_DIR [RUN_DIR ...] --out curves.svg [--metric M] [--label NAME ...] [--title T] [--logy]\n"
    "       hyp plot --table T.tsv --out chart.svg [--xlabel X] [--ylabel Y] [--title T] [--logy]";

// Series of a table file: one a distinct first column, points in file order.
static int plot_table(const char *table, const char *out, const PlotOptions *po) {
    const CliPath in = CLI_FILE("--table", table);
    if (cli_check_paths("plot", &in, 1, &(CliPath)CLI_FILE("--out", out), 1)) return 1;
    HypLines *r = hyp_lines_open(table, 0);
    if (!r) { fprintf(stderr, "hyp plot: %s\n", hyp_last_error()); return 1; }
    enum { MAXS = 32 };
    PlotSeries s[MAXS];
    char *names[MAXS];
    double *x[MAXS], *y[MAXS], *e[MAXS];
    int ns = 0, cap[MAXS], rc = 1;
    bool any_err = false;
    char *line;
    size_t len;
    int st;
    while ((st = hyp_lines_next(r, &line, &len)) == 1) {
        if (len == 0 || line[0] == '#') continue;
        char *f[4] = {line, NULL, NULL, NULL};
        int nf = 1;
        for (char *p = line; *p && nf < 4; p++)
            if (*p == '\t') { *p = 0; f[nf++] = p + 1; }
        double vx, vy, ve = 0;
        char what[64];
        snprintf(what, sizeof what, "%s:%ld", table, hyp_lines_lineno(r));
        if (nf < 3 || hyp_parse_f64(what, f[1], -1e300, 1e300, &vx) || hyp_parse_f64(what, f[2], -1e300, 1e300, &vy) ||
            (nf == 4 && hyp_parse_f64(what, f[3], 0, 1e300, &ve))) {
            fprintf(stderr, "hyp plot: %s\n", nf < 3 ? "expected series<TAB>x<TAB>y[<TAB>error]" : hyp_last_error());
            goto done;
        }
        int k = 0;
        while (k < ns && strcmp(names[k], f[0])) k++;
        if (k == ns) {
            if (ns == MAXS) { fprintf(stderr, "hyp plot: %s: more than %d series\n", table, MAXS); goto done; }
            names[ns] = hyp_strdup(f[0]);
            x[ns] = y[ns] = e[ns] = NULL;
            cap[ns] = 0;
            s[ns] = (PlotSeries){names[ns], NULL, NULL, NULL, 0};
            ns++;
        }
        if (s[k].n == cap[k]) {
            cap[k] = cap[k] ? 2 * cap[k] : 16;
            x[k] = hyp_realloc(x[k], cap[k] * sizeof(double));
            y[k] = hyp_realloc(y[k], cap[k] * sizeof(double));
            e[k] = hyp_realloc(e[k], cap[k] * sizeof(double));
        }
        x[k][s[k].n] = vx; y[k][s[k].n] = vy; e[k][s[k].n] = ve;
        any_err |= ve > 0;
        s[k].n++;
    }
    if (st < 0) { fprintf(stderr, "hyp plot: %s\n", hyp_last_error()); goto done; }
    for (int k = 0; k < ns; k++) { s[k].x = x[k]; s[k].y = y[k]; s[k].err = any_err ? e[k] : NULL; }
    char *svg = ns ? plot_svg(s, ns, po) : NULL;
    if (!svg) fprintf(stderr, "hyp plot: %s\n", ns ? hyp_last_error() : "the table has no rows");
    else if (atomic_write_file(out, svg, strlen(svg))) fprintf(stderr, "hyp plot: %s\n", hyp_last_error());
    else {
        printf("{\"out\": \"%s\", \"table\": \"%s\", \"series\": %d}\n", out, table, ns);
        rc = 0;
    }
    free(svg);
done:
    hyp_lines_close(r);
    for (int k = 0; k < ns; k++) { free(names[k]); free(x[k]); free(y[k]); free(e[k]); }
    return rc;
}

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *metric = "loss", *title = NULL, *table = NULL, *xlabel = NULL, *ylabel = NULL;
    bool logy = false;
    const char **runs = calloc((size_t)argc, sizeof(char *)), **labels = calloc((size_t)argc, sizeof(char *));
    CliList run_list = {runs, 0}, label_list = {labels, 0};
    const CliFlag flags[] = {
        {"", FLAG_LIST, &run_list, .meta = "RUN_DIR", .help = "a training run folder (its metrics.jsonl) or a metrics.jsonl file"},
        {"--out", FLAG_STR, &out, .meta = "FILE", .help = "the SVG written"},
        {"--metric", FLAG_STR, &metric, .meta = "M", .help = "loss (default), mmse, ce, lr, gnorm, q/s, ms, or a validation metric (Rprec, nDCG@10, ...)"},
        {"--label", FLAG_LIST, &label_list, .meta = "NAME", .help = "legend text of each run in order (default: the run's path)"},
        {"--title", FLAG_STR, &title, .meta = "T", .help = "chart title (default: the metric)"},
        {"--logy", FLAG_SWITCH, &logy, .help = "log-scale y axis"},
        {"--table", FLAG_STR, &table, .meta = "T.tsv", .help = "lines series<TAB>x<TAB>y[<TAB>error] instead of runs (error bars: e.g. std over seeds)"},
        {"--xlabel", FLAG_STR, &xlabel, .meta = "X", .help = "x-axis label (--table)"},
        {"--ylabel", FLAG_STR, &ylabel, .meta = "Y", .help = "y-axis label (--table)"},
    };
    int rc = cli_parse("plot", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (rc) {
        free(runs);
        free(labels);
        return rc == CLI_HELP ? 0 : 1;
    }
    rc = 1;
    const int nr = run_list.n, nl = label_list.n;
    if (!out) { fprintf(stderr, "hyp plot: --out is required\n"); cli_usage(stderr, "plot", SYNOPSIS, CLI_FLAGS(flags)); goto done; }
    if (table) {
        if (nr) { fprintf(stderr, "hyp plot: --table draws a table, not runs (got %s)\n", runs[0]); goto done; }
        PlotOptions po = {.title = title, .xlabel = xlabel, .ylabel = ylabel, .logy = logy, .markers = true, .pad_x = true};
        rc = plot_table(table, out, &po);
        goto done;
    }
    if (nr == 0) { fprintf(stderr, "hyp plot: no RUN_DIR given (or --table T.tsv)\n"); cli_usage(stderr, "plot", SYNOPSIS, CLI_FLAGS(flags)); goto done; }
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
