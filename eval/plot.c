#include "eval/plot.h"
#include "autograd/util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- a growing text buffer
typedef struct { char *s; size_t len, cap; } Svg;
static void svg_add(Svg *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void svg_add(Svg *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int k = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->len) { b->len += (size_t)k; return; }
        b->cap = b->cap * 2 + (k > 0 ? (size_t)k : 256);
        b->s = hyp_realloc(b->s, b->cap);
    }
}
// Text with the five XML specials escaped.
static void svg_text(Svg *b, const char *t) {
    for (; t && *t; t++) {
        switch (*t) {
        case '<': svg_add(b, "&lt;"); break;
        case '>': svg_add(b, "&gt;"); break;
        case '&': svg_add(b, "&amp;"); break;
        case '"': svg_add(b, "&quot;"); break;
        case '\'': svg_add(b, "&#39;"); break;
        default: svg_add(b, "%c", *t);
        }
    }
}

int plot_ticks(double lo, double hi, int want, double *t, int max) {
    if (!(hi > lo)) { if (max > 0) t[0] = lo; return max > 0; }
    const double raw = (hi - lo) / (want > 1 ? want - 1 : 1);
    const double mag = pow(10.0, floor(log10(raw)));
    const double f = raw / mag;
    const double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    int n = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && n < max; v += step)
        t[n++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    return n;
}

// A tick label: at most 4 significant digits, no trailing zeros; one suffix for the whole
// axis (k or M, chosen from its largest tick) so that 8000 and 10k never sit side by side.
static double tick_unit(const double *t, int n) {
    double mx = 0;
    bool whole_k = true, whole_m = true;
    for (int i = 0; i < n; i++) {
        mx = fmax(mx, fabs(t[i]));
        whole_k &= fmod(fabs(t[i]), 100) == 0;
        whole_m &= fmod(fabs(t[i]), 1e5) == 0;
    }
    return mx >= 1e6 && whole_m ? 1e6 : mx >= 1e4 && whole_k ? 1e3 : 1;
}
static void tick_label(char *buf, size_t n, double v, double unit) {
    if (unit == 1e6) snprintf(buf, n, "%gM", v / 1e6);
    else if (unit == 1e3) snprintf(buf, n, "%gk", v / 1e3);
    else snprintf(buf, n, "%.4g", v);
}

static const char *COLOURS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
#define NCOL (int)(sizeof COLOURS / sizeof COLOURS[0])

// Markers cycle with the colours' second round, so 20 series stay distinguishable.
static void marker(Svg *b, int kind, double x, double y, const char *col) {
    switch (kind % 3) {
    case 0: svg_add(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, y, col); break;
    case 1: svg_add(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"6\" height=\"6\" fill=\"%s\"/>\n", x - 3, y - 3, col); break;
    default:
        svg_add(b, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\"/>\n", x, y - 4, x + 3.5, y + 3, x - 3.5,
                y + 3, col);
    }
}

// The chart's frame: the data range (y in log10 with logy) and the plot area in pixels.
typedef struct Frame {
    double x0, x1, y0, y1;
    double L, R, T, B;
    bool logy;
} Frame;
static double fx(const Frame *f, double v) { return f->L + (v - f->x0) / (f->x1 - f->x0) * (f->R - f->L); }
static double fy(const Frame *f, double v) {
    return f->B - ((f->logy ? log10(v) : v) - f->y0) / (f->y1 - f->y0) * (f->B - f->T);
}
static bool drawable(const Frame *f, double x, double y) { return isfinite(x) && isfinite(y) && !(f->logy && y <= 0); }

// The range over the finite points (y +- err included), padded. 0, or -1 when nothing is drawable.
static int data_range(const PlotSeries *s, int ns, const PlotOptions *opt, Frame *f) {
    f->x0 = INFINITY, f->x1 = -INFINITY, f->y0 = INFINITY, f->y1 = -INFINITY;
    f->logy = opt->logy;
    int points = 0;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            const double x = s[i].x[k], y = s[i].y[k], e = s[i].err ? fabs(s[i].err[k]) : 0.0;
            if (!drawable(f, x, y)) continue;
            points++;
            f->x0 = fmin(f->x0, x); f->x1 = fmax(f->x1, x);
            const double lo = opt->logy && y - e <= 0 ? y : y - e;
            f->y0 = fmin(f->y0, opt->logy ? log10(lo) : lo);
            f->y1 = fmax(f->y1, opt->logy ? log10(y + e) : y + e);
        }
    if (!points) return -1;
    if (f->x1 == f->x0) { f->x0 -= 0.5; f->x1 += 0.5; }
    if (opt->pad_x) { const double px = (f->x1 - f->x0) * 0.05; f->x0 -= px; f->x1 += px; }
    if (f->y1 == f->y0) { const double d = fabs(f->y0) > 0 ? fabs(f->y0) * 0.05 : 0.5; f->y0 -= d; f->y1 += d; }
    const double pad = (f->y1 - f->y0) * 0.05;
    f->y0 -= pad; f->y1 += pad;
    return 0;
}

// Grid lines, tick labels, the axes and their labels.
static void draw_axes(Svg *b, const Frame *f, const PlotOptions *opt, int H) {
    double t[32];
    char lab[32];
    int nt = plot_ticks(f->x0, f->x1, 7, t, 32);
    svg_add(b, "<g class=\"xticks\" stroke=\"#e5e5e5\">\n");
    for (int i = 0; i < nt; i++) svg_add(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fx(f, t[i]), f->T, fx(f, t[i]), f->B);
    svg_add(b, "</g>\n<g text-anchor=\"middle\">\n");
    const double xunit = tick_unit(t, nt);
    for (int i = 0; i < nt; i++) {
        tick_label(lab, sizeof lab, t[i], xunit);
        svg_add(b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", fx(f, t[i]), f->B + 17, lab);
    }
    svg_add(b, "</g>\n");
    double yt[32];
    int nyt;
    if (f->logy) {   // decades (and 2, 5 within them when there are few)
        nyt = 0;
        const bool fine = f->y1 - f->y0 < 2.5;
        for (int e = (int)floor(f->y0); e <= (int)ceil(f->y1) && nyt < 30; e++)
            for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
                if (!fine && m > 1) continue;
                const double v = m * pow(10.0, e);
                if (log10(v) >= f->y0 && log10(v) <= f->y1 && nyt < 30) yt[nyt++] = v;
            }
    } else {
        nyt = plot_ticks(f->y0, f->y1, 6, yt, 32);
    }
    svg_add(b, "<g class=\"yticks\" stroke=\"#e5e5e5\">\n");
    for (int i = 0; i < nyt; i++) svg_add(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->L, fy(f, yt[i]), f->R, fy(f, yt[i]));
    svg_add(b, "</g>\n<g text-anchor=\"end\">\n");
    const double yunit = f->logy ? 1 : tick_unit(yt, nyt);
    for (int i = 0; i < nyt; i++) {
        tick_label(lab, sizeof lab, yt[i], yunit);
        svg_add(b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", f->L - 6, fy(f, yt[i]) + 4, lab);
    }
    svg_add(b, "</g>\n");
    svg_add(b, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1f\" fill=\"none\" stroke=\"black\"/>\n", f->L, f->T, f->L, f->B, f->R, f->B);
    if (opt->xlabel) {
        svg_add(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (f->L + f->R) / 2, H - 14);
        svg_text(b, opt->xlabel);
        svg_add(b, "</text>\n");
    }
    if (opt->ylabel) {
        svg_add(b, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">", (f->T + f->B) / 2);
        svg_text(b, opt->ylabel);
        svg_add(b, f->logy ? " (log scale)</text>\n" : "</text>\n");
    }
}

// One series: its line, error bars and (when few, or asked) point markers.
static void draw_series(Svg *b, const Frame *f, const PlotSeries *s, int i, bool markers) {
    const char *col = COLOURS[i % NCOL];
    svg_add(b, "<g class=\"series\" stroke=\"%s\">\n<polyline fill=\"none\" stroke-width=\"1.8\" points=\"", col);
    int drawn = 0;
    for (int k = 0; k < s->n; k++)
        if (drawable(f, s->x[k], s->y[k])) svg_add(b, "%s%.1f,%.1f", drawn++ ? " " : "", fx(f, s->x[k]), fy(f, s->y[k]));
    svg_add(b, "\"/>\n");
    for (int k = 0; k < s->n && s->err; k++) {
        const double x = s->x[k], y = s->y[k], e = fabs(s->err[k]);
        if (!isfinite(x) || !isfinite(y) || !isfinite(e) || e == 0 || (f->logy && y - e <= 0)) continue;
        const double px = fx(f, x), ya = fy(f, y - e), yb = fy(f, y + e);
        svg_add(b, "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke-width=\"1.2\"/>\n",
                px, ya, px, yb, px - 4, ya, px + 4, ya, px - 4, yb, px + 4, yb);
    }
    svg_add(b, "</g>\n");
    if (markers || drawn <= 40)
        for (int k = 0; k < s->n; k++)
            if (drawable(f, s->x[k], s->y[k])) marker(b, i / NCOL, fx(f, s->x[k]), fy(f, s->y[k]), col);
}

// The legend, one row a series, in the corner whose box covers the fewest points (top
// right first on ties).
static void draw_legend(Svg *b, const Frame *f, const PlotSeries *s, int ns) {
    double lw = 0;
    for (int i = 0; i < ns; i++) lw = fmax(lw, 7.0 * (double)strlen(s[i].label ? s[i].label : ""));
    lw = fmin(lw + 40, (f->R - f->L) * 0.6);
    const double lh = 18.0 * ns + 8;
    const double cx[4] = {f->R - lw - 8, f->L + 8, f->R - lw - 8, f->L + 8}, cy[4] = {f->T + 8, f->T + 8, f->B - lh - 8, f->B - lh - 8};
    int best = 0;
    long best_n = -1;
    for (int c = 0; c < 4; c++) {
        long cnt = 0;
        for (int i = 0; i < ns; i++)
            for (int k = 0; k < s[i].n; k++) {
                if (!drawable(f, s[i].x[k], s[i].y[k])) continue;
                const double px = fx(f, s[i].x[k]), py = fy(f, s[i].y[k]);
                cnt += px >= cx[c] - 12 && px <= cx[c] + lw + 12 && py >= cy[c] - 12 && py <= cy[c] + lh + 12;
            }
        if (best_n < 0 || cnt < best_n) { best_n = cnt; best = c; }
    }
    const double lx = cx[best], ly = cy[best];
    svg_add(b, "<g class=\"legend\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"white\" "
               "fill-opacity=\"0.85\" stroke=\"#999\"/>\n", lx, ly, lw, lh);
    for (int i = 0; i < ns; i++) {
        const char *col = COLOURS[i % NCOL];
        const double yy = ly + 16 + 18 * i;
        svg_add(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", lx + 8,
                yy - 4, lx + 28, yy - 4, col);
        marker(b, i / NCOL, lx + 18, yy - 4, col);
        svg_add(b, "<text x=\"%.1f\" y=\"%.1f\">", lx + 34, yy);
        svg_text(b, s[i].label ? s[i].label : "");
        svg_add(b, "</text>\n");
    }
    svg_add(b, "</g>\n");
}

char *plot_svg(const PlotSeries *s, int ns, const PlotOptions *o) {
    const PlotOptions opt = o ? *o : (PlotOptions){0};
    const int W = opt.width > 0 ? opt.width : 760, H = opt.height > 0 ? opt.height : 460;
    Frame f;
    if (data_range(s, ns, &opt, &f)) {
        hyp_set_error("plot: nothing to draw (no finite%s value in %d series)", opt.logy ? " positive" : "", ns);
        return NULL;
    }
    f.L = 78, f.R = W - 24.0, f.T = opt.title ? 44 : 20, f.B = H - 56.0;
    Svg b = {hyp_malloc(4096), 0, 4096};
    b.s[0] = 0;
    svg_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H, W, H);
    if (opt.title) {
        svg_add(&b, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", W / 2);
        svg_text(&b, opt.title);
        svg_add(&b, "</text>\n");
    }
    draw_axes(&b, &f, &opt, H);
    for (int i = 0; i < ns; i++) draw_series(&b, &f, &s[i], i, opt.markers);
    draw_legend(&b, &f, s, ns);
    svg_add(&b, "</svg>\n");
    return b.s;
}
