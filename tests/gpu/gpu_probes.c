// gpu_probes.c: large-size checks of the CUDA backend that CI cannot run (scripts/gpu-check.sh,
// step 4): grids past 65535 rows, buffers past 2^31 elements, a paper-size GEMM, LayerNorm at
// 250k x 768. Each probe compares the GPU with the CPU backend (the spec) and prints one line
//   probe NAME: ok|FAIL  detail
// and the GEMM probe its rate. --small runs the same code at sizes the simulator can run
// (scripts/gpu-check.sh --dry-run does, with bin-sim/gpu_probes).
//   gpu_probes [--small] [rows|big|gemm|all]
//   gpu_probes params-equal A.h5 B.h5      every /params dataset bitwise equal (exit 0) or not (1)
#include "kernels/kernels.h"
#include "autograd/h5io.h"
#include "autograd/util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Backend *G, *C;
static int failures;

static void result(const char *name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void result(const char *name, bool ok, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("probe %-28s %s  %s\n", name, ok ? "ok  " : "FAIL", buf);
    fflush(stdout);
    if (!ok) failures++;
}

static uint64_t rng = 88172645463325252ull;
static float urand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float *hrand(size_t n) {
    float *x = hyp_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = urand();
    return x;
}
static void *up(const void *h, size_t bytes) {
    void *d = G->alloc(bytes);
    G->copy(d, h, bytes, COPY_H2D);
    return d;
}
static float *down(const float *d, size_t n) {
    float *h = hyp_malloc(n * sizeof(float));
    G->synchronize();
    G->copy(h, d, n * sizeof(float), COPY_D2H);
    return h;
}
static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}

// ---- more rows than a grid's y (or a 1-D grid of warps-per-row) can cover
static void probe_rows(bool small) {
    const long rows = small ? 66000 : 250000;
    const int D = small ? 64 : 768;
    const size_t n = (size_t)rows * D;
    float *x = hrand(n), *w = hrand(D), *b = hrand(D), *gy = hrand(n);
    float *y = hyp_malloc(n * sizeof(float)), *mean = hyp_malloc(rows * sizeof(float)), *rstd = hyp_malloc(rows * sizeof(float));
    float *gx = calloc(n, sizeof(float)), *gw = calloc(D, sizeof(float)), *gb = calloc(D, sizeof(float));
    float *dx = up(x, n * 4), *dw = up(w, D * 4), *db = up(b, D * 4), *dgy = up(gy, n * 4);
    float *dy = G->alloc(n * 4), *dm = G->alloc(rows * 4), *dr = G->alloc(rows * 4);
    float *dgx = G->alloc(n * 4), *dgw = G->alloc(D * 4), *dgb = G->alloc(D * 4);
    G->memset0(dgx, n * 4); G->memset0(dgw, D * 4); G->memset0(dgb, D * 4);
    C->layernorm_fwd(y, mean, rstd, x, w, b, rows, D, 1e-12f);
    C->layernorm_bwd(gx, gw, gb, gy, x, mean, rstd, w, rows, D);
    double t0 = hyp_now();
    G->layernorm_fwd(dy, dm, dr, dx, dw, db, rows, D, 1e-12f);
    G->layernorm_bwd(dgx, dgw, dgb, dgy, dx, dm, dr, dw, rows, D);
    G->synchronize();
    const double ms = (hyp_now() - t0) * 1e3;
    float *hy = down(dy, n), *hgx = down(dgx, n), *hgw = down(dgw, D);
    const double e1 = rel(hy, y, n), e2 = rel(hgx, gx, n), e3 = rel(hgw, gw, D);
    result("layernorm_rows", e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "%ld x %d: y %.2g gx %.2g gw %.2g (fwd+bwd %.2f ms)",
           rows, D, e1, e2, e3, ms);
    // cross-entropy backward puts rows on grid.y (capped at 65535): the rows past it loop
    const int Cc = 8;
    const size_t nc = (size_t)rows * Cc;
    float *logits = hrand(nc), *lse = hyp_malloc(rows * 4), *g = calloc(nc, 4), loss;
    int32_t *t = hyp_malloc(rows * 4);
    for (long r = 0; r < rows; r++) t[r] = (int32_t)(r % Cc);
    float *dl = up(logits, nc * 4), *dlse = G->alloc(rows * 4), *dg = G->alloc(nc * 4), *dloss = G->alloc(4);
    float one = 1.0f, *done = up(&one, 4);
    int32_t *dt = up(t, rows * 4);
    G->memset0(dg, nc * 4);
    C->cross_entropy_fwd(&loss, lse, logits, t, rows, Cc);
    C->cross_entropy_bwd(g, &one, logits, lse, t, rows, Cc);
    G->cross_entropy_fwd(dloss, dlse, dl, dt, rows, Cc);
    G->cross_entropy_bwd(dg, done, dl, dlse, dt, rows, Cc);
    float *hg = down(dg, nc), *hloss = down(dloss, 1);
    const double e4 = rel(hg, g, nc), e5 = fabs(hloss[0] - loss) / fabs(loss);
    result("cross_entropy_rows", e4 < 1e-5 && e5 < 1e-5, "%ld rows: grad %.2g loss %.2g", rows, e4, e5);
    G->free(dx); G->free(dw); G->free(db); G->free(dgy); G->free(dy); G->free(dm); G->free(dr);
    G->free(dgx); G->free(dgw); G->free(dgb); G->free(dl); G->free(dlse); G->free(dg); G->free(dloss);
    G->free(done); G->free(dt);
    free(x); free(w); free(b); free(gy); free(y); free(mean); free(rstd); free(gx); free(gw); free(gb);
    free(hy); free(hgx); free(hgw); free(logits); free(lse); free(g); free(t); free(hg); free(hloss);
}

// ---- one buffer of more than 2^31 floats: 64-bit indexing in the element-wise maps and reductions
static void probe_big(bool small) {
    const long n = small ? (1L << 20) + 1029 : (1L << 31) + 1029;
    float *x = G->alloc((size_t)n * 4), *y = G->alloc((size_t)n * 4), *s = G->alloc(4);
    G->fill(x, 1.5f, n);
    G->fill(y, -0.25f, n);
    G->axpy(n, 2.0f, x, y);                  // y = 2.75 everywhere
    G->sum_squares(s, x, n);                 // 2.25 n
    const long at[] = {0, (1L << 31) - 1 < n ? (1L << 31) - 1 : n / 2, (1L << 31) < n ? (1L << 31) : n / 2 + 1, n - 1};
    bool ok = true;
    char where[256] = "";
    for (int i = 0; i < 4; i++) {
        float v;
        G->synchronize();
        G->copy(&v, y + at[i], 4, COPY_D2H);
        if (v != 2.75f) { ok = false; snprintf(where, sizeof where, "y[%ld] = %g", at[i], v); }
    }
    float hs;
    G->copy(&hs, s, 4, COPY_D2H);
    const double want = 2.25 * (double)n, es = fabs(hs - want) / want;
    result("elementwise_2^31", ok && es < 1e-6, "%ld elements: samples %s, sum of squares rel err %.2g %s", n,
           ok ? "2.75" : "wrong", es, where);
    G->free(x); G->free(y); G->free(s);
}

// ---- the paper's biggest GEMMs: 64 queries x 9 passages x 196 tokens through BERT-base's FFN
static void probe_gemm(bool small) {
    const int M = small ? 1000 : 64 * 9 * 196, K = 768;
    const int Ns[2] = {768, 3072};
    for (int ni = 0; ni < 2; ni++) {
        const int N = Ns[ni];
        float *a = hrand((size_t)M * K), *b = hrand((size_t)K * N);
        float *da = up(a, (size_t)M * K * 4), *db = up(b, (size_t)K * N * 4), *dc = G->alloc((size_t)M * N * 4);
        const int check_rows = 16;
        float *want = hyp_malloc((size_t)check_rows * N * 4);
        int rows[16];
        for (int r = 0; r < check_rows; r++) rows[r] = (int)((long)r * (M - 1) / (check_rows - 1));
        for (int r = 0; r < check_rows; r++)   // the CPU reference on sampled rows, in double
            for (int j = 0; j < N; j++) {
                double acc = 0;
                for (int k = 0; k < K; k++) acc += (double)a[(size_t)rows[r] * K + k] * b[(size_t)k * N + j];
                want[(size_t)r * N + j] = (float)acc;
            }
        for (int prec = 0; prec < 2; prec++) {
            const MatmulPrecision p = prec ? HYP_MATMUL_BF16 : HYP_MATMUL_F32;
            G->gemm(false, false, M, N, K, 1.0f, da, 0, db, 0, 0.0f, dc, 0, 1, p);   // warm-up (plans)
            G->synchronize();
            const int reps = small ? 1 : 10;
            const double t0 = hyp_now();
            for (int it = 0; it < reps; it++) G->gemm(false, false, M, N, K, 1.0f, da, 0, db, 0, 0.0f, dc, 0, 1, p);
            G->synchronize();
            const double s = (hyp_now() - t0) / reps;
            float *got = hyp_malloc((size_t)check_rows * N * 4);
            for (int r = 0; r < check_rows; r++) G->copy(got + (size_t)r * N, dc + (size_t)rows[r] * N, (size_t)N * 4, COPY_D2H);
            const double e = rel(got, want, (size_t)check_rows * N);
            char name[64];
            snprintf(name, sizeof name, "gemm_%s_%dx%dx%d", prec ? "bf16" : "fp32", M, N, K);
            result(name, e < (prec ? 1e-2 : 1e-4), "rel err %.2g, %.2f ms, %.1f TFLOP/s", e, s * 1e3,
                   2.0 * M * N * K / s / 1e12);
            free(got);
        }
        G->free(da); G->free(db); G->free(dc);
        free(a); free(b); free(want);
    }
}

static int params_equal(const char *pa, const char *pb) {
    H5File *a = h5_open(pa), *b = h5_open(pb);
    if (!a || !b) { fprintf(stderr, "gpu_probes: %s\n", hyp_last_error()); return 2; }
    char **na = NULL, **nb = NULL;
    const int ca = h5_list(a, "/params", &na), cb = h5_list(b, "/params", &nb);
    if (ca <= 0 || ca != cb) { printf("params differ: %d vs %d datasets\n", ca, cb); return 1; }
    int diff = 0;
    for (int i = 0; i < ca; i++) {
        char name[1024];
        snprintf(name, sizeof name, "/params/%s", na[i]);
        int nd1, nd2, s1[HYP_MAX_DIMS], s2[HYP_MAX_DIMS];
        float *x = h5_read_f32(a, name, &nd1, s1), *y = h5_read_f32(b, name, &nd2, s2);
        size_t n = 1;
        for (int k = 0; k < nd1; k++) n *= (size_t)s1[k];
        if (!x || !y || nd1 != nd2 || memcmp(s1, s2, sizeof(int) * nd1) || memcmp(x, y, n * 4)) {
            if (diff < 5) printf("params differ: %s\n", name);
            diff++;
        }
        free(x); free(y);
    }
    printf("params: %d datasets, %d differ\n", ca, diff);
    h5_close(a); h5_close(b);
    return diff ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "params-equal")) return params_equal(argv[2], argv[3]);
    bool small = false;
    const char *which = "all";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small")) small = true;
        else if (!strcmp(argv[i], "rows") || !strcmp(argv[i], "big") || !strcmp(argv[i], "gemm") || !strcmp(argv[i], "all"))
            which = argv[i];
        else { fprintf(stderr, "usage: gpu_probes [--small] [rows|big|gemm|all] | params-equal A.h5 B.h5\n"); return 2; }
    }
    if (!hyp_cuda_available()) {
        fprintf(stderr, "gpu_probes: no usable GPU: %s\n", hyp_cuda_why_unavailable());
        return 2;
    }
    G = backend_get(HYP_CUDA);
    C = backend_get(HYP_CPU);
    printf("gpu_probes: backends %s%s\n", hyp_backends_compiled(), small ? " (--small sizes)" : "");
    if (!strcmp(which, "rows") || !strcmp(which, "all")) probe_rows(small);
    if (!strcmp(which, "big") || !strcmp(which, "all")) probe_big(small);
    if (!strcmp(which, "gemm") || !strcmp(which, "all")) probe_gemm(small);
    printf("gpu_probes: %d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
