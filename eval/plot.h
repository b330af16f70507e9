// plot.h: line charts as SVG, written in C (no plotting dependency at run time): training
// curves of runs (hyp plot) and metric-vs-setting charts with error bars (the ablations).
// A plain chart: axes with "nice" ticks (1, 2, 5 x 10^k), a light grid, axis labels, a title,
// one colour and marker a series, a legend.
#ifndef HYP_PLOT_H
#define HYP_PLOT_H
#include <stdbool.h>

typedef struct PlotSeries {
    const char *label;          // legend text
    const double *x, *y;        // n points (non-finite y values are skipped)
    const double *err;          // NULL, or n half-widths drawn as error bars
    int n;
} PlotSeries;

typedef struct PlotOptions {
    const char *title, *xlabel, *ylabel;
    int width, height;          // pixels; 0: 760 x 460
    bool logy;                  // log-scale y (positive values only)
    bool markers;               // a marker at every point (always on when a series has <= 40 points)
    bool pad_x;                 // 5% margin left and right (points and error bars clear of the axis)
} PlotOptions;

// The SVG document (malloc'd, NUL-terminated), or NULL with hyp_last_error() when there is
// nothing to draw (no series with a finite point; logy with no positive value).
char *plot_svg(const PlotSeries *s, int ns, const PlotOptions *o);

// Tick positions for [lo, hi]: a step of 1, 2 or 5 x 10^k giving about `want` ticks.
// Writes at most max ticks to t and returns how many.
int plot_ticks(double lo, double hi, int want, double *t, int max);

#endif
