// test_plot.c: the SVG line charts (eval/plot.c) and reading runs' metrics.jsonl (train/run_log.c).
#include "tests/testlib.h"
#include "eval/plot.h"
#include "train/run_log.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(plot, nice_ticks) {
    double t[32];
    int n = plot_ticks(0, 1, 6, t, 32);
    cr_assert_eq(n, 6);
    for (int i = 0; i < n; i++) cr_assert_float_eq(t[i], 0.2 * i, 1e-12, "tick %d = %g", i, t[i]);
    n = plot_ticks(3, 97, 7, t, 32);
    cr_assert(n == 4 && t[0] == 20 && t[n - 1] == 80, "ticks of [3, 97]: %d from %g to %g", n, t[0], t[n - 1]);
    n = plot_ticks(-0.013, 0.021, 5, t, 32);   // crossing zero: exactly 0 among them
    bool zero = false;
    for (int i = 0; i < n; i++) zero |= t[i] == 0.0;
    cr_assert(zero, "a tick at exactly zero");
    n = plot_ticks(0, 800000, 6, t, 32);
    cr_assert(t[1] - t[0] == 200000, "step of [0, 800k]: %g", t[1] - t[0]);
}

Test(plot, chart_maps_points_and_escapes_labels) {
    const double x[] = {0, 5, 10}, y1[] = {0, 0.5, 1}, y2[] = {1, NAN, 0}, e[] = {0.1, 0.1, 0.1};
    PlotSeries s[2] = {{"run <a> & b", x, y1, NULL, 3}, {"other", x, y2, e, 3}};
    PlotOptions o = {.title = "Validation R-Prec", .xlabel = "step", .ylabel = "Rprec"};
    char *svg = plot_svg(s, 2, &o);
    cr_assert(svg);
    cr_assert(strstr(svg, "<svg") && strstr(svg, "</svg>"), "an SVG document");
    cr_assert_eq(count(svg, "<polyline"), 2, "one line a series");
    cr_assert(strstr(svg, "run &lt;a&gt; &amp; b"), "labels are escaped");
    cr_assert(!strstr(svg, "run <a>"), "no raw < in text");
    cr_assert(strstr(svg, "Validation R-Prec") && strstr(svg, ">step<") && strstr(svg, ">Rprec<"));
    // x in [0, 10] spans the plot area [78, 736]; y spans [-0.1, 1.1] (the error bars), padded by
    // 5% each side, over [44, 404]: (0, 0) is at (78.0, 404 - 0.16/1.32 * 360) = (78.0, 360.4)
    cr_assert(strstr(svg, "78.0,360.4"), "the point (0, 0) is where it should be");
    cr_assert(strstr(svg, "736.0,87.6"), "the point (10, 1) is where it should be");
    cr_assert_eq(count(svg, "stroke-width=\"1.2\""), 2, "error bars on the 2 finite points of the second series");
    // the NaN point is skipped, not drawn at a bogus place
    cr_assert(!strstr(svg, "nan") && !strstr(svg, "inf"), "no non-finite coordinates");
    free(svg);
    PlotSeries none = {"x", x, y2, NULL, 0};
    cr_assert_null(plot_svg(&none, 1, &o));
    cr_assert(strstr(hyp_last_error(), "nothing to draw"), "%s", hyp_last_error());
}

Test(plot, renders_with_rsvg) {
    if (system("command -v rsvg-convert >/dev/null 2>&1") != 0)
        cr_skip_test("rsvg-convert not installed (apt-get install librsvg2-bin): rendering not checked");
    const double x[] = {100, 200, 300, 400}, y[] = {3.2, 2.1, 1.4, 1.1};
    PlotSeries s = {"loss", x, y, NULL, 4};
    PlotOptions o = {.title = "loss", .xlabel = "step", .ylabel = "loss", .logy = true};
    char *svg = plot_svg(&s, 1, &o);
    char dir[] = "/tmp/hyp_plot_XXXXXX";
    cr_assert(mkdtemp(dir));
    char p[128], cmd[512];
    snprintf(p, sizeof p, "%s/c.svg", dir);
    FILE *f = fopen(p, "w");
    fputs(svg, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "rsvg-convert -o %s/c.png %s 2>&1 && test -s %s/c.png", dir, p, dir);
    cr_assert(system(cmd) == 0, "rsvg-convert could not render the chart");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
    free(svg);
}

Test(run_log, series_of_training_and_validation_metrics) {
    char dir[] = "/tmp/hyp_runlog_XXXXXX";
    cr_assert(mkdtemp(dir));
    char p[128];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"step\": 10, \"loss\": 3.5, \"grad_norm\": 2.0, \"qps\": 100}\n"
          "{\"step\": 20, \"loss\": 2.5, \"grad_norm\": 1.5, \"qps\": 110}\n"
          "{\"step\": 20, \"eval\": {\"Rprec\": 0.31, \"nDCG@10\": 0.4}, \"best_step\": 20, \"best\": 0.31}\n"
          "\n"
          "{\"step\": 30, \"loss\": 2.0, \"grad_norm\": 1.0, \"qps\": 120}\n", f);
    fclose(f);
    double *s, *v;
    int n = runlog_series(dir, "loss", &s, &v);
    cr_assert_eq(n, 3);
    cr_assert(s[2] == 30 && v[2] == 2.0);
    free(s); free(v);
    n = runlog_series(p, "Rprec", &s, &v);   // the file itself works too
    cr_assert(n == 1 && s[0] == 20 && v[0] == 0.31, "Rprec: %d", n);
    free(s); free(v);
    n = runlog_series(dir, "gnorm", &s, &v);
    cr_assert(n == 3 && v[0] == 2.0, "gnorm is grad_norm");
    free(s); free(v);
    n = runlog_series(dir, "q/s", &s, &v);
    cr_assert(n == 3 && v[2] == 120, "q/s is qps");
    free(s); free(v);
    n = runlog_series(dir, "MAP", &s, &v);
    cr_assert_eq(n, 0);
    cr_assert(strstr(hyp_last_error(), "no 'MAP'") && strstr(hyp_last_error(), "nDCG@10"), "%s", hyp_last_error());
    f = fopen(p, "a");
    fputs("{\"step\": 40, \"loss\": \n", f);
    fclose(f);
    cr_assert_eq(runlog_series(dir, "loss", &s, &v), -1);
    cr_assert(strstr(hyp_last_error(), "metrics.jsonl:6"), "names the line: %s", hyp_last_error());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
}

Test(plot, hyp_plot_command) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    char dir[] = "/tmp/hyp_plotcli_XXXXXX";
    cr_assert(mkdtemp(dir));
    char cmd[1024], p[160];
    for (int r = 0; r < 2; r++) {
        snprintf(p, sizeof p, "%s/run%d", dir, r);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/run%d/metrics.jsonl", dir, r);
        FILE *f = fopen(p, "w");
        for (int s = 1; s <= 5; s++) fprintf(f, "{\"step\": %d, \"loss\": %g}\n", s * 100, 3.0 / s + r);
        fprintf(f, "{\"step\": 500, \"eval\": {\"Rprec\": %g}}\n", 0.3 + 0.1 * r);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, HYP_BIN " plot %s/run0 %s/run1 --label first --label second --out %s/c.svg >/dev/null 2>&1",
             dir, dir, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(p, sizeof p, "%s/c.svg", dir);
    FILE *f = fopen(p, "r");
    cr_assert(f);
    static char svg[1 << 16];
    size_t n = fread(svg, 1, sizeof svg - 1, f);
    svg[n] = 0;
    fclose(f);
    cr_assert_eq(count(svg, "<polyline"), 2);
    cr_assert(strstr(svg, ">first<") && strstr(svg, ">second<"), "the legend names the runs");
    // the output may not be a run's own log; an unknown metric names the ones the run has
    snprintf(cmd, sizeof cmd, HYP_BIN " plot %s/run0 --out %s/run0/metrics.jsonl 2>/dev/null", dir, dir);
    cr_assert_neq(system(cmd), 0, "out == input was accepted");
    snprintf(cmd, sizeof cmd, HYP_BIN " plot %s/run0 --metric MAP --out %s/m.svg 2>&1 | grep -q 'it has: loss, Rprec'", dir, dir);
    cr_assert_eq(system(cmd), 0, "the error lists the run's metrics");
    // a table of series (a metric against depth, error bars over seeds)
    snprintf(p, sizeof p, "%s/t.tsv", dir);
    f = fopen(p, "w");
    fputs("nDCG@10\t1\t0.5\t0.02\nnDCG@10\t2\t0.6\t0.03\nRR@10\t1\t0.4\t0.05\nRR@10\t2\t0.55\t0.02\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, HYP_BIN " plot --table %s/t.tsv --xlabel depth --out %s/d.svg >/dev/null 2>&1", dir, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(p, sizeof p, "%s/d.svg", dir);
    f = fopen(p, "r");
    n = fread(svg, 1, sizeof svg - 1, f);
    svg[n] = 0;
    fclose(f);
    cr_assert(count(svg, "<polyline") == 2 && count(svg, "stroke-width=\"1.2\"") == 4 && strstr(svg, ">depth<"),
              "two series with error bars");
    snprintf(p, sizeof p, "%s/t.tsv", dir);
    f = fopen(p, "a");
    fputs("bad\t1\tx\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, HYP_BIN " plot --table %s/t.tsv --out %s/e.svg 2>&1 | grep -q 't.tsv:5'", dir, dir);
    cr_assert_eq(system(cmd), 0, "a bad number names the file and line");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
}
