// dense.c: the streaming device top-k scan (dense.h).
#include "search/dense.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int device_scan(DocStore *s, const DeviceScan *sc, uint64_t *keys, int32_t *bad) {
    const Backend *be = backend_get(sc->dev);
    int d = docstore_dim(s), B = sc->B, k = sc->k;
    long span = sc->hi - sc->lo, rows = sc->block_rows < span ? sc->block_rows : (span > 0 ? span : 1);
    // Resident rows: the device copy on CUDA, the fp32 matrix (or NULL: read blocks) on the CPU.
    const void *res = docstore_device(s, sc->dev, sc->resident);
    if (!res && sc->dev != HYP_CPU) return -1;
    bool bf16 = sc->dev != HYP_CPU && sc->resident == STORE_BF16;
    float *host = !res ? hyp_malloc((size_t)rows * d * sizeof(float)) : NULL;   // CPU: (rows, d) read blocks
    float *xbuf = bf16 || !res ? be->alloc((size_t)rows * d * sizeof(float)) : NULL;   // (rows, d) fp32 block
    float *S = be->alloc((size_t)B * rows * sizeof(float));                             // (B, rows)
    size_t kb = (size_t)B * k * sizeof(uint64_t);
    uint64_t *kin = be->alloc(kb ? kb : 8), *kout = be->alloc(kb ? kb : 8);             // (B, k) each
    be->memset0(kin, kb);
    int32_t *skip = NULL, *dbad = NULL;                                                  // (B) each
    if (sc->skip) {
        skip = be->alloc((size_t)B * sizeof(int32_t));
        be->copy(skip, sc->skip, (size_t)B * sizeof(int32_t), COPY_H2D);
    }
    if (sc->check_bad) {
        for (int b = 0; b < B; b++) bad[b] = INT32_MAX;
        dbad = be->alloc((size_t)B * sizeof(int32_t));
        be->copy(dbad, bad, (size_t)B * sizeof(int32_t), COPY_H2D);
    }
    double t0 = hyp_now(), last = t0;
    int rc = 0;
    for (long r0 = sc->lo; r0 < sc->hi; r0 += rows) {
        long n = sc->hi - r0 < rows ? sc->hi - r0 : rows;
        const float *X;
        if (!res) {
            if ((rc = docstore_rows(s, r0, n, host))) break;
            be->copy(xbuf, host, (size_t)n * d * sizeof(float), COPY_H2D);
            X = xbuf;
        } else if (bf16) {
            be->bf16_to_f32(xbuf, (const uint16_t *)res + (size_t)r0 * d, (long)((size_t)n * d));
            X = xbuf;
        } else {
            X = (const float *)res + (size_t)r0 * d;
        }
        sc->score(sc->user, X, n, S);
        KERNEL(be, topk_rows, "topk_rows")(kout, kin, S, B, n, n, k, (int32_t)r0, skip, dbad);
        uint64_t *t = kin;
        kin = kout;
        kout = t;
        double now = hyp_now();
        if (sc->progress && (now - last > 2.0 || r0 + n == sc->hi)) {
            be->synchronize();
            now = hyp_now();
            double rate = (r0 + n - sc->lo) / (now - t0 > 0 ? now - t0 : 1e-9);
            fprintf(stderr, "\r%s: %ld/%ld documents x %d queries | %.0f docs/s per query | eta %.0f s   ", sc->what,
                    r0 + n - sc->lo, span, B, rate, (sc->hi - r0 - n) / (rate > 0 ? rate : 1));
            if (r0 + n == sc->hi) fputc('\n', stderr);
            last = now;
        }
    }
    if (!rc) {
        be->copy(keys, kin, kb, COPY_D2H);
        if (dbad) be->copy(bad, dbad, (size_t)B * sizeof(int32_t), COPY_D2H);
    }
    free(host);
    if (xbuf) be->free(xbuf);
    be->free(S);
    be->free(kin);
    be->free(kout);
    if (skip) be->free(skip);
    if (dbad) be->free(dbad);
    return rc;
}

// ---------------------------------------------------------------- q-nets on a device
void qnet_dev_weights(QNetDevWeights *w, const QNet *q, Device dev) {
    memset(w, 0, sizeof *w);
    const Backend *be = w->be = backend_get(dev);
    for (int j = 0; j <= q->layers; j++) {
        for (int t = 0; t < (j < q->layers ? 2 : 1); t++) {
            const Tensor *x = t == 0 ? q->W[j] : q->b[j];
            HYP_CHECK(x->dtype == HYP_F32, "q-net weights must be fp32");
            const float *p = tensor_f32(x);
            if (x->device != dev) {   // one upload (through the host from another device)
                float *h = hyp_malloc(tensor_bytes(x)), *m = be->alloc(tensor_bytes(x));
                tensor_to_host(x, h);
                be->copy(m, h, tensor_bytes(x), COPY_H2D);
                free(h);
                w->own[w->nown++] = m;
                p = m;
            }
            if (t == 0) w->W[j] = p;
            else w->b[j] = p;
        }
    }
}

void qnet_dev_weights_free(QNetDevWeights *w) {
    for (int i = 0; i < w->nown; i++) w->be->free(w->own[i]);
    memset(w, 0, sizeof *w);
}

void qnet_dev_group(QNetDev *qd, const QNetDevWeights *w, int b0, int nb) {
    size_t d = (size_t)qd->d;
    qd->nb = nb;
    for (int j = 0; j < qd->layers; j++) {
        qd->W[j] = w->W[j] + (size_t)b0 * d * d;
        qd->b[j] = w->b[j] + (size_t)b0 * d;
    }
    qd->W[qd->layers] = w->W[qd->layers] + (size_t)b0 * d;
}

void qnet_dev_block(void *user, const float *X, long n, float *S) {
    QNetDev *q = user;
    const Backend *be = q->be;
    int d = q->d, L = q->layers;
    long long nd = (long long)n * d, dd = (long long)d * d;
    const float *x = X;
    for (int j = 0; j < L; j++) {
        float *z = q->z[j % 2];
        be->gemm(false, true, (int)n, d, d, 1.0f, x, j == 0 ? 0 : nd, q->W[j], dd, 0.0f, z, nd, q->nb, HYP_MATMUL_F32);
        if (j == L - 1)
            KERNEL(be, qnet_out_dot, "qnet_out_dot")(S, z, q->b[j], q->W[L], q->nb, n, d, q->eps);
        else
            be->qnet_act_fwd(z, z, q->b[j], x, j == 0, q->nb, n, d, q->eps);   // z <- h + x
        x = z;
    }
}

