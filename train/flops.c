#include "train/flops.h"
#include "kernels/kernels.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HYP_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

double step_tokens(const StepShape *s) {
    return (double)s->queries * s->q_len + (double)s->queries * s->items * s->d_len;
}

double step_flops(const StepShape *s) {
    const double h = s->hidden, L = s->bert_layers;
    const double linear = 2.0 * (4.0 * h * h + 2.0 * h * s->ffn) * L;          // a token, forward
    const double nq = s->queries, nd = (double)s->queries * s->items;
    const double attn_q = 4.0 * s->q_len * h * L, attn_d = 4.0 * s->d_len * h * L;   // a token, forward
    const double bert_q = nq * s->q_len * (linear + attn_q), bert_d = nd * s->d_len * (linear + attn_d);
    // scored pairs: every query's own passages, plus with in-batch CE the batch's positives
    const double pairs = nd + (s->in_batch ? nq * nq : 0.0);
    double head = 0;   // hyperhead + q-net (or BE-Base's dot products), forward
    if (s->qnet_layers > 0) {
        const double T = s->q_len, Lq = s->qnet_layers;
        const double tensors = 2.0 * Lq + 1.0;                      // L+1 matrices, L biases
        const double rows = Lq * h + 1.0 + Lq;                      // their output rows (out)
        head = nq * (tensors * T * 4.0 * h * h + rows * (4.0 * h * T + 2.0 * h * h));
        head += pairs * (2.0 * h * h * Lq + 2.0 * h);
    } else {
        head = pairs * 2.0 * h;
    }
    if (s->frozen_encoder) return bert_q + 3.0 * head;
    return 3.0 * (bert_q + bert_d + head);
}

static double cpu_sgemm_rate(void) {
    static double rate = -1;
    if (rate >= 0) return rate;
    const int n = 1024;
    float *a = hyp_malloc((size_t)n * n * sizeof(float)), *b = hyp_malloc((size_t)n * n * sizeof(float)),
          *c = hyp_malloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        const double t0 = hyp_now();
        hyp_cpu_backend.gemm(false, false, n, n, n, 1.0f, a, 0, b, 0, 0.0f, c, 0, 1, HYP_MATMUL_F32);
        const double dt = hyp_now() - t0;
        if (dt < best) best = dt;
    }
    free(a); free(b); free(c);
    rate = 2.0 * n * n * n / best;
    return rate;
}

#ifdef HYP_HAVE_CUDA
// Dense peaks (NVIDIA's data sheets, SXM parts; no sparsity): fp32 on CUDA cores, and the
// TF32 and BF16 tensor-core rates.
static const struct { const char *name; double fp32, tf32, bf16; } GPUS[] = {
    {"H200", 67e12, 494.7e12, 989.4e12}, {"H100", 67e12, 494.7e12, 989.4e12},
    {"A100", 19.5e12, 156e12, 312e12},   {"L40S", 91.6e12, 183.2e12, 362.1e12},
};
#endif

double device_peak_flops(Device d, MatmulPrecision prec, char *what, size_t n) {
    if (d == HYP_CPU) {
        const double r = cpu_sgemm_rate();
        snprintf(what, n, "cpu sgemm %.0f GFLOP/s measured", r / 1e9);
        return r;
    }
#ifdef HYP_HAVE_CUDA
    char name[256];
    hyp_cuda_device_name(name, sizeof name);
    const char *tf = getenv("HYP_CUDA_TF32");   // lets HYP_MATMUL_F32 GEMMs use TF32 (gemm.cu)
    const bool tf32 = prec == HYP_MATMUL_TF32 || (prec == HYP_MATMUL_F32 && tf && tf[0] && strcmp(tf, "0") != 0);
    for (size_t i = 0; i < sizeof GPUS / sizeof GPUS[0]; i++)
        if (strstr(name, GPUS[i].name)) {
            const double p = prec == HYP_MATMUL_BF16 ? GPUS[i].bf16 : tf32 ? GPUS[i].tf32 : GPUS[i].fp32;
            snprintf(what, n, "%s %s %.1f TFLOP/s", name, prec == HYP_MATMUL_BF16 ? "bf16" : tf32 ? "tf32" : "fp32",
                     p / 1e12);
            return p;
        }
    snprintf(what, n, "%s: not in the peak table", name);
#else
    snprintf(what, n, "no CUDA backend");
#endif
    return 0;
}
