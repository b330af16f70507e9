// buckets.c: gradient buckets whose all-reduce starts during backward (buckets.h).
#include "train/buckets.h"
#include "autograd/util.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void buckets_init(GradBuckets *g, ParamSet *ps, Comm *comm, Device dev, double bucket_mb) {
    memset(g, 0, sizeof *g);
    g->comm = comm;
    g->ps = ps;
    g->dev = dev;
    g->first = hyp_malloc(ps->n * sizeof(int));
    g->last = hyp_malloc(ps->n * sizeof(int));
    g->ready = hyp_malloc(ps->n * sizeof(int));
    g->order = hyp_malloc(ps->n * sizeof(int));
    g->min_use = hyp_malloc(ps->n * sizeof(int));
    g->off = hyp_malloc(ps->n * sizeof(size_t));
    size_t cap = (size_t)(bucket_mb * (1u << 20) / sizeof(float)), off = 0, in = 0;
    for (int i = 0; i < ps->n; i++) {
        g->off[i] = off;
        size_t m = tensor_numel(ps->params[i]);
        if (g->n == 0 || (in > 0 && in + m > cap)) {
            g->first[g->n] = i;
            g->n++;
            in = 0;
        }
        g->last[g->n - 1] = i;
        in += m;
        off += m;
    }
}

void buckets_free(GradBuckets *g) {
    free(g->first); free(g->last); free(g->ready); free(g->order); free(g->min_use); free(g->off);
}

static int param_of(const GradBuckets *g, const Tensor *x) {
    if (!x || !x->name || x->dtype != HYP_F32) return -1;
    const float *p = x->data;
    if (p < g->ps->data || p >= g->ps->data + g->ps->numel) return -1;
    size_t off = (size_t)(p - g->ps->data);
    int lo = 0, hi = g->ps->n - 1;
    while (lo < hi) {   // last parameter whose offset <= off
        int mid = (lo + hi + 1) / 2;
        if (g->off[mid] <= off) lo = mid; else hi = mid - 1;
    }
    return g->off[lo] == off ? lo : -1;
}

static int by_ready_desc(const void *a, const void *b, void *u) {
    const int *r = u, x = *(const int *)a, y = *(const int *)b;
    return r[x] != r[y] ? (r[x] < r[y] ? 1 : -1) : x - y;
}

// Before the last micro-batch's backward: when each bucket becomes final.
void buckets_plan(GradBuckets *g, const Tape *tape) {
    for (int i = 0; i < g->ps->n; i++) g->min_use[i] = INT_MAX;
    for (int k = 0; k < tape->n; k++)
        for (int j = 0; j < tape->nodes[k].n_in; j++) {
            int p = param_of(g, tape->nodes[k].in[j]);
            if (p >= 0 && g->min_use[p] == INT_MAX) g->min_use[p] = k;
        }
    for (int b = 0; b < g->n; b++) {
        g->ready[b] = INT_MAX;
        for (int p = g->first[b]; p <= g->last[b]; p++)
            if (g->min_use[p] < g->ready[b]) g->ready[b] = g->min_use[p];
        g->order[b] = b;
    }
    qsort_r(g->order, (size_t)g->n, sizeof(int), by_ready_desc, g->ready);
    g->next = 0;
    g->failed = 0;
    g->seconds = 0;
}

void buckets_launch(Ctx *c, int done_from, void *u) {
    (void)c;
    GradBuckets *g = u;
    while (g->next < g->n && g->ready[g->order[g->next]] >= done_from) {
        int b = g->order[g->next++];
        size_t off = g->off[g->first[b]], end = g->last[b] + 1 < g->ps->n ? g->off[g->last[b] + 1] : g->ps->numel;
        double t0 = hyp_now();
        if (!g->failed && comm_allreduce_async(g->comm, g->ps->grad + off, end - off, COMM_MEAN, g->dev)) g->failed = 1;
        g->seconds += hyp_now() - t0;
    }
}
